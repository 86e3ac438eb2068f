"""Optional native build of marketflow's hot path with mypyc (docs/design.md, "Compiled core").

Everything else about the package is in pyproject.toml. With `MARKETFLOW_COMPILE=1` the
modules below are compiled to C extensions by mypyc (part of mypy) from the same typed
Python source; without it the package is pure Python and behaves the same, only slower.
`make compile` builds them in place for development (`make setup` does it), the Docker
image builds them into its wheel.
"""

from __future__ import annotations

import os
import runpy

from setuptools import setup

# The modules (marketflow/native.py's MODULES: the core's computation and the decoders,
# not the adapters for Faust, Kafka, Redis or the CLI), read without importing marketflow.
MODULES = runpy.run_path("services/marketflow/native.py")["MODULES"]

if os.environ.get("MARKETFLOW_COMPILE") == "1":
    from mypyc.build import mypycify

    paths = ["services/" + name.replace(".", "/") + ".py" for name in MODULES]
    setup(ext_modules=mypycify(paths, opt_level="3"))
else:
    setup()
