"""The modules compiled to C by mypyc, and how to tell (docs/design.md, "Compiled core").

The hot path (the core's computation and the decoders) is written as typed Python and,
when built with `MARKETFLOW_COMPILE=1` (`make compile`, the Docker image), also compiled
by mypyc into extension modules that sit beside their source and are imported instead of
it. Without them the package runs the same source interpreted. `MARKETFLOW_INTERPRETED=1`
makes a process import the source even where the extensions are built (profilers and
debuggers see Python frames only then); `marketflow/__init__.py` applies it.

Nothing here imports the rest of marketflow: `setup.py` reads `MODULES` at build time.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
from collections.abc import Sequence
from types import ModuleType

# Environment variables: the build's switch (setup.py) and the process's (above)
VARIABLES = ("MARKETFLOW_COMPILE", "MARKETFLOW_INTERPRETED")

MODULES = (
    "marketflow.alerts.history",
    "marketflow.core.frames",
    "marketflow.core.output",
    "marketflow.core.partition",
    "marketflow.core.pipeline",
    "marketflow.core.records",
    "marketflow.core.rules",
    "marketflow.core.sectorbook",
    "marketflow.core.sectors",
    "marketflow.core.southbound",
    "marketflow.core.timeutil",
    "marketflow.ingest.batches",
    "marketflow.ingest.files",
    "marketflow.stream.partials",
    "marketflow.stream.runtime",
)


class _SourceFirst(importlib.abc.MetaPathFinder):
    """Finds `MODULES` as their `.py` source, ahead of the extension beside it."""

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if fullname not in MODULES:
            return None
        leaf = fullname.rpartition(".")[2] + ".py"
        for entry in path or ():
            source = os.path.join(entry, leaf)
            if os.path.isfile(source):
                return importlib.util.spec_from_file_location(fullname, source)
        return None


def use_source() -> None:
    """Import `MODULES` from their source from now on (before any of them is imported)."""
    if not any(isinstance(finder, _SourceFirst) for finder in sys.meta_path):
        sys.meta_path.insert(0, _SourceFirst())


def _origin(name: str) -> str | None:
    module = sys.modules.get(name)
    if module is not None:
        return getattr(module, "__file__", None)
    spec = importlib.util.find_spec(name)
    return spec.origin if spec is not None else None


def compiled() -> list[str]:
    """The modules of `MODULES` this process imports (or has imported) compiled."""
    return [name for name in MODULES
            if (_origin(name) or "").endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))]


def stale() -> list[str]:
    """Compiled modules whose source changed after the build (a development checkout:
    rebuild with `make compile`). mypyc puts the code of all of them in one shared
    library (`<hash>__mypyc`); each module's own extension is a small shim that a rebuild
    leaves alone when unchanged, so the build's time is the newest of the two."""
    done = compiled()
    for name in done:
        importlib.import_module(name)
    shared = [getattr(module, "__file__", None) for key, module in list(sys.modules.items())
              if key.endswith("__mypyc")]
    built = max((os.path.getmtime(path) for path in shared if path), default=0.0)
    out = []
    for name in done:
        extension = _origin(name) or ""
        source = os.path.join(os.path.dirname(extension), name.rpartition(".")[2] + ".py")
        if (os.path.isfile(source)
                and os.path.getmtime(source) > max(built, os.path.getmtime(extension))):
            out.append(name)
    return out


def describe() -> str:
    """One line for a start-up log: how the hot path runs in this process."""
    done = compiled()
    if not done:
        return "hot path interpreted (no mypyc build, or MARKETFLOW_INTERPRETED=1)"
    if len(done) < len(MODULES):
        return f"hot path partly compiled ({len(done)} of {len(MODULES)} modules, mypyc)"
    return f"hot path compiled ({len(done)} modules, mypyc)"
