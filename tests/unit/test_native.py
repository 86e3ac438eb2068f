"""The compiled hot path and the switch back to its source (marketflow/native.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from marketflow import native

PROBE = ("import json, importlib; from marketflow import native; "
         "print(json.dumps([importlib.import_module(m).__file__ for m in native.MODULES]))")


def origins(interpreted: str) -> list[str]:
    env = dict(os.environ, MARKETFLOW_INTERPRETED=interpreted)
    done = subprocess.run([sys.executable, "-c", PROBE], env=env, check=True,
                          capture_output=True, text=True)
    return json.loads(done.stdout)


def test_interpreted_imports_every_compiled_module_from_its_source() -> None:
    files = origins("1")
    assert len(files) == len(native.MODULES)
    assert all(path.endswith(".py") for path in files), files


def test_this_process_runs_what_was_built() -> None:
    """Built (`make compile`, as `make test` does): every module of the list is compiled,
    none older than its source; not built: all interpreted."""
    files = origins("0")
    compiled = [path for path in files if not path.endswith(".py")]
    if os.environ.get("MARKETFLOW_INTERPRETED") == "1" or not compiled:
        assert native.describe().startswith("hot path interpreted")
        return
    assert len(compiled) == len(native.MODULES), files
    assert native.stale() == []
