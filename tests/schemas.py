"""JSON Schemas of every record (`schemas/` at the repository root), as validators, and
the generator of the schemas that come from the code.

Test and development only: the schemas live beside the code in the repository, not in
the installed package, and jsonschema is a `dev` dependency. Most schemas are written by
hand; that of the rules file is generated from the code that checks rules files
(`marketflow.core.rules_spec.rules_schema`): `make schemas` (`python -m tests.schemas`)
rewrites it, and a unit test fails when the committed file differs.
"""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource

BASE = "https://marketflow.invalid/schemas/"
DRAFT = "https://json-schema.org/draft/2020-12/schema"
REGENERATE = "make schemas (python -m tests.schemas)"
# Keywords of a generated schema in this order (the order of the hand-written schemas)
_KEYWORD_ORDER = ("$schema", "$id", "title", "type", "additionalProperties", "required",
                  "properties", "items", "const", "enum", "pattern", "minItems", "minimum",
                  "anyOf", "oneOf", "default", "description")


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


def generated_schemas() -> dict[str, dict[str, Any]]:
    """The schemas generated from the code, by file name in `schemas_dir()`."""
    from marketflow.core.rules_spec import rules_schema

    return {
        "rules.schema.json": _standalone(rules_schema(), "rules.schema.json",
                                         "Alert rules file"),
    }


def render_schema(document: dict[str, Any]) -> str:
    """A schema as committed: two-space indented JSON and a final newline."""
    return json.dumps(document, indent=2) + "\n"


def _standalone(body: dict[str, Any], name: str, title: str) -> dict[str, Any]:
    """A schema body as a draft 2020-12 document: `$schema`, `$id` and `title` first, the
    keywords of every object in `_KEYWORD_ORDER`."""

    def order(node: Any, in_properties: bool = False) -> Any:
        if isinstance(node, list):
            return [order(item) for item in node]
        if not isinstance(node, dict):
            return node
        out = {key: (value if key in ("default", "const", "enum")
                     else order(value, in_properties=key == "properties"))
               for key, value in node.items()}
        return out if in_properties else _ordered(out)

    return _ordered({"$schema": DRAFT, "$id": BASE + name, "title": title, **order(body)})


def _ordered(node: dict[str, Any]) -> dict[str, Any]:
    rank = {key: n for n, key in enumerate(_KEYWORD_ORDER)}
    return dict(sorted(node.items(), key=lambda item: rank.get(item[0], len(rank))))


def write_schemas(directory: Path | None = None) -> list[Path]:
    """Write every generated schema into `directory` (default `schemas_dir()`)."""
    directory = schemas_dir() if directory is None else directory
    written = []
    for name, document in generated_schemas().items():
        path = directory / name
        path.write_text(render_schema(document), encoding="utf-8")
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    """`python -m tests.schemas [--check]`: regenerate (or only compare) the schemas."""
    args = sys.argv[1:] if argv is None else argv
    if args not in ([], ["--check"]):
        print("usage: python -m tests.schemas [--check]", file=sys.stderr)
        return 2
    if args == ["--check"]:
        stale = [name for name, document in generated_schemas().items()
                 if not (schemas_dir() / name).is_file()
                 or (schemas_dir() / name).read_text(encoding="utf-8")
                 != render_schema(document)]
        for name in stale:
            print(f"schemas/{name} is out of date; run {REGENERATE}", file=sys.stderr)
        return 1 if stale else 0
    for path in write_schemas():
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
