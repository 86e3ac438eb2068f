"""marketflow: a streaming market-flow monitor for Hong Kong equities."""

import os as _os

__version__ = "0.1.0"

if _os.environ.get("MARKETFLOW_INTERPRETED") == "1":  # see marketflow/native.py
    from marketflow import native as _native

    _native.use_source()
