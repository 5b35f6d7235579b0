"""Reading a stack file strictly: UTF-8, bounded in size, no aliases, no duplicate keys.

A stack file is the single source of truth, so whatever YAML lets pass silently is a
mistake here: a key given twice (YAML keeps the last), an alias (``*a``) that expands a
400-byte file into gigabytes, bytes that are not UTF-8. Each is one error line naming
the file and where.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import ConstructorError

from peakready.errors import ConfigError

#: No stack file needs more; a larger one is refused before it is parsed.
MAX_BYTES = 256 * 1024


class _StrictLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` without aliases and without duplicate keys."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise ConstructorError(
                None, None, "aliases (*name) are not allowed in a stack file", event.start_mark
            )
        return super().compose_node(parent, index)

    def construct_mapping(self, node: Any, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise ConstructorError(
                    None, None, f"key {key!r} is given twice", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _StrictLoader.construct_mapping
)


def read_yaml(path: Path) -> Any:
    """The YAML document of ``path``; ``ConfigError`` (one line) for any defect."""
    try:
        size = path.stat().st_size
        if not path.is_file():
            raise ConfigError(f"{path}: expected a stack file, found something else")
        if size > MAX_BYTES:
            raise ConfigError(f"{path}: {size} bytes, expected a stack file of at most {MAX_BYTES}")
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such stack file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it: {exc.strerror}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(
            f"{path}: line {line}: byte {raw[exc.start]:#04x} is not UTF-8 (expected a UTF-8 file)"
        ) from None
    try:
        return yaml.load(text, Loader=_StrictLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}:" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{path}:{where} not valid YAML: {problem}") from None
