"""Reading a small YAML configuration file: bounded size, `yaml.safe_load`, clear errors."""

from __future__ import annotations

from pathlib import Path

import yaml

MAX_YAML_BYTES = 1 << 20  # 1 MiB: rules and scenario files are a few kilobytes


class YamlFileError(ValueError):
    """A YAML file that cannot be read; the message starts with the path."""


def read_yaml(path: Path, max_bytes: int = MAX_YAML_BYTES) -> object:
    """The document of a UTF-8 YAML file; YamlFileError if it cannot be read, is larger
    than `max_bytes` or is not valid YAML."""
    try:
        with path.open("rb") as file:
            data = file.read(max_bytes + 1)
    except OSError as error:
        raise YamlFileError(f"{path}: cannot read: {error.strerror}") from None
    if len(data) > max_bytes:
        raise YamlFileError(f"{path}: too large: more than {max_bytes:,} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise YamlFileError(f"{path}: not UTF-8 text: {error}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise YamlFileError(f"{path}: not valid YAML: {error}") from None
