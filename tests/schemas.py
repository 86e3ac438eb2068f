"""JSON Schemas of every record (`schemas/` at the repository root), as validators.

Test-only: the schemas live beside the code in the repository, not in the installed
package, and jsonschema is a `dev` dependency.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

from jsonschema import Draft202012Validator
from referencing import Registry, Resource

BASE = "https://marketflow.invalid/schemas/"


def schemas_dir() -> Path:
    return Path(__file__).resolve().parents[1] / "schemas"


@functools.cache
def _registry() -> Registry:
    resources = []
    for path in sorted(schemas_dir().glob("*.schema.json")):
        document = json.loads(path.read_text())
        resources.append((document["$id"], Resource.from_contents(document)))
    return Registry().with_resources(resources)


@functools.cache
def validator(name: str) -> Draft202012Validator:
    """`validator("tick")` for schemas/tick.schema.json, with `$ref`s resolved locally."""
    document = json.loads((schemas_dir() / f"{name}.schema.json").read_text())
    return Draft202012Validator(document, registry=_registry())


SNAPSHOT_SCHEMAS = {"index": "index-snapshot", "stock": "stock-snapshot",
                    "sector": "sector-snapshot", "market": "market-snapshot",
                    "southbound": "southbound-snapshot"}
