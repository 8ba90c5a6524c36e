"""YAML with line numbers, and pydantic validation whose errors name file, line, dotted path and the fix.

``load_yaml(path)`` returns the data and a :class:`Positions` map from dotted paths to 1-based lines.
``validate(model, data, positions, ...)`` turns a pydantic ``ValidationError`` into a :class:`SpecError`
that names the file, the line, the dotted path, the offending value, what is allowed and a did-you-mean.

Every spec, architecture and workload file goes through here, bounded before it can cost much: at most
``MAX_FILE_BYTES`` read, lists and mappings nested at most ``MAX_DEPTH`` levels (checked while composing, before
Python's recursion limit), aliases adding at most ``MAX_ALIAS_NODES`` nodes (checked before the data is built),
and no alias inside its own anchor. Each refusal is a SpecError naming the file and line.
"""

from __future__ import annotations

import difflib
import re
import typing
from pathlib import Path
from typing import Any, TypeVar

import pydantic
import yaml

from ntframe.errors import SpecError

M = TypeVar("M", bound=pydantic.BaseModel)
Loc = tuple[str | int, ...]


MAX_FILE_BYTES = 16 * 1024 * 1024
"""Largest YAML file read (the shipped files are a few KB; a large layer list is well under 1 MB)."""
MORE_ERRORS = 3
"""Errors listed after the first of a validation (the rest are counted)."""
MAX_DEPTH = 100
"""Deepest nesting of lists and mappings (the shipped files nest at most 11 levels: a Timeloop v0.3 tree)."""
MAX_ALIAS_NODES = 1_000_000
"""Most nodes that aliases may add to a document when expanded (a file has no need of more; an alias bomb
of a few hundred bytes expands to billions)."""


class _Loader(yaml.SafeLoader):
    """Safe loader that also accepts Timeloop v0.4 node tags (``!Container``, ``!Component``, ...), refuses
    nesting deeper than ``MAX_DEPTH`` and notes the line of every alias in a list."""

    def __init__(self, text: str, file: str) -> None:
        super().__init__(text)
        self.file, self.depth = file, 0
        self.alias_lines: dict[tuple[int, int], int] = {}    # (id(list node), index) -> line of the alias

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) and isinstance(index, int):
            self.alias_lines[(id(parent), index)] = event.start_mark.line + 1
        if not isinstance(event, yaml.CollectionStartEvent):
            return super().compose_node(parent, index)
        if self.depth >= MAX_DEPTH:
            raise SpecError(f"lists and mappings nested more than {MAX_DEPTH} levels deep; at most {MAX_DEPTH} "
                            f"are allowed (ntframe's own files nest about 10)",
                            file=self.file, line=event.start_mark.line + 1)
        self.depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def _tagged(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.MappingNode):
        data = loader.construct_mapping(node, deep=True)
        return {"_tag": suffix, **data}
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    return loader.construct_scalar(node)


_Loader.add_multi_constructor("!", _tagged)


class Positions:
    """Dotted path -> where it was written: a line of the file (1-based), or another origin (a ``--set``
    argument, an override given to the Python API) for the paths an override replaced."""

    def __init__(self, file: str, lines: dict[Loc, int], origins: dict[Loc, str] | None = None) -> None:
        self.file, self._lines, self._origins = file, lines, dict(origins or {})

    def where(self, loc: Loc) -> tuple[str, int | None]:
        """(file or origin, line) of ``loc``, or of its nearest ancestor that was written somewhere."""
        loc = tuple(loc)
        while True:
            if loc in self._origins:
                return self._origins[loc], None
            if loc in self._lines:
                return self.file, self._lines[loc]
            if not loc:
                return self.file, None
            loc = loc[:-1]

    def line(self, loc: Loc) -> int | None:
        """Line of ``loc`` in the file, or of its nearest ancestor that appears there."""
        return self.where(loc)[1]

    def sub(self, prefix: Loc) -> "Positions":
        """Positions of a sub-tree, re-rooted at ``prefix``."""
        n, prefix = len(prefix), tuple(prefix)
        return Positions(self.file, {k[n:]: v for k, v in self._lines.items() if k[:n] == prefix},
                         {k[n:]: v for k, v in self._origins.items() if k[:n] == prefix})

    def replaced(self, loc: Loc, origin: str) -> None:
        """``loc`` (and everything below it) now comes from ``origin`` instead of the file."""
        loc, n = tuple(loc), len(loc)
        for table in (self._lines, self._origins):
            for key in [k for k in table if k[:n] == loc]:
                del table[key]
        self._origins[loc] = origin

    def error(self, message: str, loc: Loc) -> SpecError:
        file, line = self.where(loc)
        return SpecError(message, file=file, line=line, path=dotted(loc))


def dotted(loc: Loc) -> str:
    return ".".join(str(p) for p in loc)


def _index(root: yaml.Node, loader: _Loader) -> dict[Loc, int]:
    """The line of every path, walking each node once: an alias is given its own line and not walked again
    (the paths inside it fall back to that line). Refuses an alias inside its own anchor, and aliases that
    would add more than ``MAX_ALIAS_NODES`` nodes to the data."""
    lines: dict[Loc, int] = {}
    sizes: dict[int, int | None] = {}        # id(node) -> nodes it expands to; None while it is being walked
    added = 0                                # nodes the aliases add

    def walk(node: yaml.Node, loc: Loc, line: int) -> int:
        nonlocal added
        lines[loc] = line
        if id(node) in sizes:
            size = sizes[id(node)]
            if size is None:
                raise SpecError("an alias (*) inside its own anchor (&): a structure that contains itself; "
                                "ntframe's files must be trees", file=loader.file, line=line, path=dotted(loc))
            added += size
            if added > MAX_ALIAS_NODES:
                raise SpecError(f"the document expands to more than {MAX_ALIAS_NODES:,} nodes through YAML "
                                f"aliases (anchors & and *); write the repeated values out, or alias smaller "
                                f"parts", file=loader.file, line=line)
            return size
        sizes[id(node)] = None
        size = 1
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                key_line = key_node.start_mark.line + 1
                if not isinstance(key_node, yaml.ScalarNode):
                    raise SpecError("a mapping key must be a plain value (a name or a number), not a list or "
                                    "a mapping", file=loader.file, line=key_line, path=dotted(loc))
                size += 1 + walk(value_node, loc + (key_node.value,), key_line)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                size += walk(item, loc + (i,), loader.alias_lines.get((id(node), i), item.start_mark.line + 1))
        sizes[id(node)] = size
        return size

    walk(root, (), root.start_mark.line + 1)
    return lines


def parse_yaml(text: str, file: str) -> tuple[Any, Positions]:
    """Parse YAML text; malformed YAML raises a SpecError with the line and the parser's reason, and so do
    documents beyond the limits of this module."""
    lines: dict[Loc, int] = {}
    try:
        loader = _Loader(text, file)
        try:
            node = loader.get_single_node()
            if node is not None:
                lines = _index(node, loader)
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        raise SpecError(f"malformed YAML: {exc.problem or exc}", file=file, line=line) from None
    except yaml.YAMLError as exc:
        raise SpecError(f"malformed YAML: {exc}", file=file) from None
    return data, Positions(file, lines)


def load_yaml(path: str | Path) -> tuple[Any, Positions]:
    """Read and parse a YAML file; a missing or unreadable file is a SpecError naming it."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:          # read at most one byte more than allowed: pipes have no size
            raw = fh.read(MAX_FILE_BYTES + 1)
        text = raw.decode("utf-8") if len(raw) <= MAX_FILE_BYTES else None
    except FileNotFoundError:
        raise SpecError("file not found", file=str(path)) from None
    except IsADirectoryError:
        raise SpecError("is a directory, not a YAML file", file=str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"cannot read file: {exc}", file=str(path)) from None
    if text is None:
        raise SpecError(f"file larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB; spec, architecture and "
                        f"workload files may be at most {MAX_FILE_BYTES:,} bytes", file=str(path))
    return parse_yaml(text, str(path))


# --- pydantic errors -> SpecError -------------------------------------------------------------------------

def _unwrap(annotation: Any) -> list[type[pydantic.BaseModel]]:
    """The pydantic model classes inside an annotation (Optional, list, dict, Union...)."""
    if isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel):
        return [annotation]
    found: list[type[pydantic.BaseModel]] = []
    for arg in typing.get_args(annotation):
        found.extend(_unwrap(arg))
    return found


def _discriminated(models: list[type[pydantic.BaseModel]], tag: str) -> type[pydantic.BaseModel] | None:
    """The union member whose Literal-typed field admits ``tag`` (pydantic puts the tag in error locations)."""
    for m in models:
        for f in m.model_fields.values():
            if typing.get_origin(f.annotation) is typing.Literal and tag in typing.get_args(f.annotation):
                return m
    return None


def _model_at(model: type[pydantic.BaseModel], loc: Loc) -> type[pydantic.BaseModel] | None:
    """Follow a raw pydantic error location (field names, list indices, dict keys, union tags) through the
    nested model classes; None where it leaves them."""
    candidates: list[type[pydantic.BaseModel]] = [model]
    for part in loc:
        if len(candidates) > 1:
            if isinstance(part, str):
                chosen = _discriminated(candidates, part)
                if chosen is None:
                    return None
                candidates = [chosen]
            continue                                   # an index into a list of union members
        current = candidates[0]
        if isinstance(part, str) and part in current.model_fields:
            candidates = _unwrap(current.model_fields[part].annotation)
            if not candidates:
                return None
        elif not isinstance(part, int):
            if _discriminated([current], str(part)) is current:
                continue                               # the tag of the member we are in
            return None
    return candidates[0] if len(candidates) == 1 else None


def _clean_loc(loc: Loc, data: Any) -> Loc:
    """Drop what pydantic adds to a location that is not in the data (union tags and member names)."""
    out: list[str | int] = []
    current = data
    for part in loc:
        if isinstance(current, dict) and part in current:
            out.append(part)
            current = current[part]
        elif isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current):
            out.append(part)
            current = current[part]
        elif isinstance(current, dict) and not any(isinstance(p, str) and p in current
                                                   for p in loc[len(out):]):
            out.append(part)                           # a missing or unknown key: keep it, stop here
            break
    return tuple(out)


def _allowed_keys(model: type[pydantic.BaseModel]) -> list[str]:
    return [f.alias or name for name, f in model.model_fields.items()]


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def format_validation_error(exc: pydantic.ValidationError, model: type[pydantic.BaseModel],
                            positions: Positions, prefix: Loc = (), owner: str | None = None,
                            extra_allowed: list[str] | None = None, data: Any = None) -> SpecError:
    """The first error of ``exc`` as a SpecError (the others are listed after it)."""
    messages = []
    first_loc: Loc = prefix
    errors = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")  # unknown keys first
    for i, err in enumerate(errors):
        raw = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        loc = _clean_loc(raw, data) if data is not None else raw
        full = prefix + loc
        kind = err["type"]
        if kind == "extra_forbidden":
            parent = _model_at(model, raw[:-1])
            allowed = (_allowed_keys(parent) if parent else []) + (extra_allowed or [] if len(loc) == 1 else [])
            key = str(loc[-1])
            msg = f"unknown key '{key}'"
            if owner and len(loc) == 1:
                msg += f" ({owner})"
            if allowed:
                msg += f"; allowed keys: {', '.join(sorted(set(allowed)))}"
                close = difflib.get_close_matches(key, allowed, n=1)
                if close:
                    msg += f"; did you mean '{close[0]}'?"
        elif kind == "union_tag_invalid":
            ctx = err.get("ctx") or {}
            key = str(ctx.get("discriminator", "type")).strip("'")
            tag = str(ctx.get("tag"))
            expected = re.findall(r"'([^']*)'", str(ctx.get("expected_tags", "")))
            loc, full = loc + (key,), full + (key,)
            msg = f"unknown {key} '{tag}'; allowed: {', '.join(expected)}{did_you_mean(tag, expected)}"
        elif kind == "missing":
            msg = f"missing required key '{loc[-1]}'" if loc else "missing value"
        else:
            msg = f"{err['msg']}"
            if "input" in err and kind not in ("model_type", "dict_type"):
                msg += f" (got {_short(err['input'])})"
            expected = re.findall(r"'([^']*)'", str((err.get("ctx") or {}).get("expected", "")))
            if kind in ("literal_error", "enum") and isinstance(err.get("input"), str) and expected:
                msg += did_you_mean(err["input"], expected)
            elif kind in ("model_type", "dict_type"):
                msg += f" (got {type(err.get('input')).__name__})"
        file, line = positions.where(loc)
        where = f"{file}:{line}" if line else file
        messages.append(f"{where}: at '{dotted(full) or '<top>'}': {msg}")
        if i == 0:
            first_loc = full
            first_msg, first_file, first_line = msg, file, line
    others = [m for m in dict.fromkeys(messages[1:]) if m != messages[0]]     # once each (union members repeat)
    shown = others[:MORE_ERRORS]
    more = "".join("\n  also " + m for m in shown)
    if len(others) > len(shown):
        more += f"\n  and {len(others) - len(shown)} more"
    return SpecError(first_msg + more, file=first_file, line=first_line, path=dotted(first_loc) or "<top>")


def validate(model: type[M], data: Any, positions: Positions, *, prefix: Loc = (), owner: str | None = None,
             extra_allowed: list[str] | None = None) -> M:
    """Validate ``data`` against ``model``; on failure raise the formatted SpecError."""
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as exc:
        raise format_validation_error(exc, model, positions, prefix, owner, extra_allowed, data) from None


def did_you_mean(value: str, allowed: list[str]) -> str:
    close = difflib.get_close_matches(value, allowed, n=1)
    return f"; did you mean '{close[0]}'?" if close else ""


__all__ = ["Positions", "load_yaml", "parse_yaml", "validate", "did_you_mean", "dotted"]
