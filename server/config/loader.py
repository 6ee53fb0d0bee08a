"""Loading vigie.yaml: safe YAML with line marks, pydantic validation, errors by line.

Every problem reads `FILE:LINE: field.path: reason` and all of them travel together in one
`ConfigError`. The YAML node tree is composed with `yaml.SafeLoader` and turned into plain
data by hand, which records the line of every key and list item; a pydantic error's `loc`
is then mapped to the deepest location that exists in the file (an unknown key: its line;
a missing key: the line of the mapping that lacks it).

Reasons never quote a value from the file: pydantic's `input` is dropped, YAML errors keep
their problem text but not their snippet, and the models build their own messages.

The models live in `server/config/models.py` and are re-exported here.
"""

from __future__ import annotations

import difflib
import os
import typing
from collections.abc import Mapping, Sequence
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from server.config.models import (
    AuditConfig,
    Camera,
    Cell,
    ClusterConfig,
    Commune,
    Kiosk,
    MetricsConfig,
    OnvifConfig,
    RtspConfig,
    ServerConfig,
    SessionConfig,
    User,
    VigieConfig,
    Wall,
)
from server.config.types import PROBLEMS_ERROR, Loc, format_path

__all__ = [
    "AuditConfig",
    "Camera",
    "Cell",
    "ClusterConfig",
    "Commune",
    "ConfigError",
    "Kiosk",
    "MetricsConfig",
    "OnvifConfig",
    "RtspConfig",
    "ServerConfig",
    "SessionConfig",
    "User",
    "VigieConfig",
    "Wall",
    "load_config",
    "parse_config",
]

_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"
_MERGE_TAG = "tag:yaml.org,2002:merge"
_MAX_VALUES = 1_000_000  # aliases can expand a small file into a huge tree

_REASONS = {  # clearer words for pydantic's most common errors (none of them quote input)
    "missing": "required key is missing",
    "string_type": "expected text (quote the value: YAML reads 0x3 or 2024-01-01 as other types)",
    "model_type": "expected a mapping of keys and values",
    "list_type": "expected a list",
    "tuple_type": "expected a list",
}


class ConfigError(Exception):
    """Everything wrong with a configuration file, one `FILE:LINE: path: reason` per line."""

    def __init__(self, errors: Sequence[str]) -> None:
        self.errors: list[str] = list(errors)
        super().__init__("\n".join(self.errors))


def load_config(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> VigieConfig:
    """Read and validate a configuration file; `env` (default os.environ) holds secrets."""
    filename = os.fspath(path)
    try:
        with open(filename, "rb") as file:
            raw = file.read()
    except OSError as exc:
        raise ConfigError(
            [f"{filename}: cannot read the file ({exc.strerror or 'I/O error'})"]
        ) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError([f"{filename}:{line}: the file is not UTF-8 text"]) from None
    base_dir = os.path.dirname(os.path.abspath(filename))
    return parse_config(text, filename, env=env, base_dir=base_dir)


def parse_config(
    text: str,
    filename: str,
    env: Mapping[str, str] | None = None,
    base_dir: str | None = None,
) -> VigieConfig:
    """Validate configuration text; `filename` is only used in messages and `source_path`.

    `base_dir` (default: the current folder) anchors relative `password_file` paths and
    the audit journal's `path` (see `AuditConfig.resolved_path()`).
    """
    data, lines = _read_yaml(text, filename)
    if data is None:
        raise ConfigError([f"{filename}:1: the file is empty: at least `communes` is required"])
    context = {
        "env": os.environ if env is None else env,
        "base_dir": base_dir or os.getcwd(),
        "source": filename,
    }
    try:
        return VigieConfig.model_validate(data, context=context)
    except ValidationError as exc:
        raise ConfigError(_explain_all(exc, filename, lines)) from None


# ---------------------------------------------------------------------------- YAML


def _read_yaml(text: str, filename: str) -> tuple[Any, dict[Loc, int]]:
    """The document as plain data, and the line (1-based) of every key and list item."""
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return None, {(): 1}
        tree = _Tree(loader)
        data = tree.convert(root, ())
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        reason = ", ".join(part for part in (exc.context, exc.problem) if part)
        raise ConfigError([f"{filename}:{line}: invalid YAML: {reason}"]) from None
    except yaml.YAMLError:
        raise ConfigError([f"{filename}:1: invalid YAML"]) from None
    finally:
        loader.dispose()
    if tree.errors:
        raise ConfigError([f"{filename}:{line}: {reason}" for line, reason in sorted(tree.errors)])
    tree.lines[()] = root.start_mark.line + 1
    return data, tree.lines


class _Tree:
    """Turns a composed node tree into dicts, lists and scalars, noting where each key is."""

    def __init__(self, loader: yaml.SafeLoader) -> None:
        self.loader = loader
        self.lines: dict[Loc, int] = {}
        self.errors: list[tuple[int, str]] = []
        self._open: set[int] = set()  # nodes being converted: an alias back to one loops
        self._count = 0

    def convert(self, node: Node, loc: Loc) -> Any:
        self._count += 1
        if self._count > _MAX_VALUES:
            raise yaml.MarkedYAMLError(
                problem="too many values (aliases expanding?)", problem_mark=node.start_mark
            )
        if isinstance(node, ScalarNode):
            return self._scalar(node)
        if id(node) in self._open:
            self._error(node, "an alias refers to a value that contains it")
            return None
        if node.tag not in (_MAP_TAG, _SEQ_TAG):
            self._error(node, f"unsupported tag {node.tag}")
            return None
        self._open.add(id(node))
        try:
            if isinstance(node, SequenceNode):
                return [self._item(item, loc + (index,)) for index, item in enumerate(node.value)]
            return self._mapping(node, loc)
        finally:
            self._open.discard(id(node))

    def _item(self, node: Node, loc: Loc) -> Any:
        self.lines[loc] = node.start_mark.line + 1
        return self.convert(node, loc)

    def _scalar(self, node: ScalarNode) -> Any:
        try:
            return self.loader.construct_object(node)
        except yaml.MarkedYAMLError as exc:
            self._error(node, exc.problem or "invalid value")
        except (ValueError, TypeError):  # e.g. `!!int abc`; the message would quote the value
            self._error(node, f"the value does not fit its tag {node.tag}")
        return None

    def _mapping(self, node: MappingNode, loc: Loc) -> dict[str, Any]:
        """A mapping; `<<` merge keys give defaults that the mapping's own keys override."""
        data: dict[str, Any] = {}
        merged: list[Node] = []
        own: list[tuple[str, Node, Node]] = []
        first_line: dict[str, int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                merged.extend(
                    value_node.value if isinstance(value_node, SequenceNode) else [value_node]
                )
                continue
            key = self._scalar(key_node) if isinstance(key_node, ScalarNode) else None
            line = key_node.start_mark.line + 1
            if not isinstance(key, str):
                self._error(key_node, "a key must be text (quote it)")
            elif key in first_line:
                self._error(
                    key_node, f"duplicate key {key!r} (first written on line {first_line[key]})"
                )
            else:
                first_line[key] = line
                own.append((key, key_node, value_node))
        for source in reversed(merged):  # the first merged mapping wins over later ones
            if not isinstance(source, MappingNode):
                self._error(source, "a merge key (<<) takes a mapping or a list of mappings")
                continue
            merged_data = self.convert(source, loc)
            if isinstance(merged_data, dict):
                data.update(merged_data)
        for key, key_node, value_node in own:
            self.lines[loc + (key,)] = key_node.start_mark.line + 1
            data[key] = self.convert(value_node, loc + (key,))
        return data

    def _error(self, node: Node, reason: str) -> None:
        self.errors.append((node.start_mark.line + 1, reason))


# ---------------------------------------------------------------------------- errors


def _explain_all(exc: ValidationError, filename: str, lines: dict[Loc, int]) -> list[str]:
    found: list[tuple[int, str, str]] = []
    for error in exc.errors(include_url=False, include_input=False):
        for loc, reason in _explain(error):
            found.append((_line_of(loc, lines), format_path(loc), reason))
    found.sort(key=lambda item: item[0])
    return [
        f"{filename}:{line}: {path}: {reason}" if path else f"{filename}:{line}: {reason}"
        for line, path, reason in found
    ]


def _explain(error: Mapping[str, Any]) -> list[tuple[Loc, str]]:
    """(location, reason) pairs for one pydantic error, never quoting the input."""
    loc: Loc = tuple(error["loc"])
    kind = error["type"]
    context = error.get("ctx") or {}
    if kind == PROBLEMS_ERROR:
        return [(loc + tuple(sub), reason) for sub, reason in context["problems"]]
    if kind == "value_error":
        return [(loc, str(context["error"]))]
    if kind == "extra_forbidden":
        return [(loc, _unknown_key(loc))]
    return [(loc, _REASONS.get(kind, error["msg"]))]


def _unknown_key(loc: Loc) -> str:
    model = _model_at(loc[:-1])
    if model is None or not isinstance(loc[-1], str):
        return "unknown key"
    known = list(model.model_fields)
    close = difflib.get_close_matches(loc[-1], known, n=1)
    if close:
        return f"unknown key; did you mean {close[0]!r}?"
    return f"unknown key; expected one of: {', '.join(known)}"


def _model_at(loc: Loc) -> type[BaseModel] | None:
    """The model that validates the mapping at `loc`, found through field annotations."""
    model: type[BaseModel] | None = VigieConfig
    for part in loc:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part) if model is not None else None
        model = _model_in(field.annotation) if field is not None else None
    return model


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for argument in typing.get_args(annotation):
        model = _model_in(argument)
        if model is not None:
            return model
    return None


def _line_of(loc: Loc, lines: dict[Loc, int]) -> int:
    """The line of the deepest part of `loc` written in the file."""
    for depth in range(len(loc), -1, -1):
        line = lines.get(loc[:depth])
        if line is not None:
            return line
    return 1
