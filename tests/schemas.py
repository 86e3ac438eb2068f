"""JSON Schemas of every record (`schemas/` at the repository root), as validators, and
the generator of the schemas that come from pydantic models.

Test and development only: the schemas live beside the code in the repository, not in
the installed package, and jsonschema is a `dev` dependency. Most schemas are written by
hand; those of configuration files read through pydantic models are generated from the
models: `make schemas` (`python -m tests.schemas`) rewrites them, and a unit test fails
when the committed files differ.
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
# Keywords of a generated schema in this order (the order of the hand-written schemas);
# pydantic sorts them alphabetically.
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
    """The schemas generated from pydantic models, by file name in `schemas_dir()`."""
    from marketflow.core.rules_spec import RulesFile

    return {
        "rules.schema.json": _standalone(RulesFile.model_json_schema(), "rules.schema.json",
                                         "Alert rules file"),
    }


def render_schema(document: dict[str, Any]) -> str:
    """A schema as committed: two-space indented JSON and a final newline."""
    return json.dumps(document, indent=2) + "\n"


def _standalone(generated: dict[str, Any], name: str, title: str) -> dict[str, Any]:
    """Pydantic's schema as a draft 2020-12 document: `$schema`, `$id` and `title` first,
    model definitions inlined, no generated titles, no docstrings of the models."""
    definitions = generated.get("$defs", {})

    def clean(node: Any, is_model: bool = False) -> Any:
        if isinstance(node, list):
            return [clean(item) for item in node]
        if not isinstance(node, dict):
            return node
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            return clean(definitions[ref.removeprefix("#/$defs/")], is_model=True)
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key in ("$defs", "title") or (key == "description" and is_model):
                continue
            if key == "properties":
                out[key] = {prop: clean(schema) for prop, schema in value.items()}
            elif key in ("default", "const", "enum"):
                out[key] = value
            else:
                out[key] = clean(value)
        return _ordered(out)

    body = clean(generated, is_model=True)
    return _ordered({"$schema": DRAFT, "$id": BASE + name, "title": title, **body})


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
