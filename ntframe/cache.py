"""The mapping cache: a search result kept on disk under a content hash of everything it depends on.

Key = SHA-256 of (the operation's shape key, the architecture's content hash, the mapper's plugin, version
and options, the budget's evaluations, the seed, the cost model's plugin, version and options). Repeated layer
shapes within a run are served from memory by the runner; the cache serves re-runs and other specs with the
same shapes. Searches cut short by their seconds cap are not cached (their result depends on the machine).
Folder: ``NTFRAME_CACHE_DIR``, else ``~/.cache/ntframe``; ``mapper: {cache: false}`` turns it off.

An entry that cannot be read, is not a JSON object, or that the caller's ``validate`` refuses is a miss and is
deleted (the next ``put`` writes it again): a damaged cache costs time, never a traceback or a wrong figure.
Entries are written whole (a temporary file, then a rename) with the permissions the umask gives new files.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import tempfile
import typing
from pathlib import Path
from typing import Any, Callable, TypeVar

CACHE_SCHEMA = 10
"""Part of every key: bump it when a change to ntframe alters what a search or a cost model returns for the same
inputs (the reference plugins' versions follow ntframe's, which a development change does not bump), so
results cached before the change are not served after it. 2: the native search's descent phase; 3: the native
cost model charges spatial-reduction adders; 4: the bounded search, and zigzag-loma under constraints; 5: the
native cost model's DRAM bytes are the trace's lines, hmc-analytic's stratified sampling (issue 13); 6: the
searches re-rank their finalists by the cost model's evaluate; 7: entries sealed with their SHA-256, components'
cache identities in the keys; 8: the native model's DRAM estimate from the trace's boxes, and the trace's
strided gaps and rounded shares (its counted lines); the re-ranking's ties broken by the fewest DRAM steps; 9: the
bounded search's iterated descent when it is not certified; 10: mapping entries hold the mapper's ties, which
the memory backend decides."""


T = TypeVar("T")
_umask: int | None = None


def new_file_mode() -> int:
    """The mode ``open`` would give a new file under the process's umask (read once, at the first write)."""
    global _umask
    if _umask is None:
        _umask = os.umask(0)
        os.umask(_umask)
    return 0o666 & ~_umask


@functools.lru_cache(maxsize=None)
def _fields(cls: type) -> dict[str, Callable[[Any], Any]]:
    """A dataclass's fields and the converter of each one's resolved annotation (resolving them is slow: once
    per class)."""
    hints = typing.get_type_hints(cls)
    return {f.name: _converter(hints[f.name]) for f in dataclasses.fields(cls)}


def from_json(cls: type[T], data: Any) -> T:
    """The dataclass ``cls`` built from what :func:`ntframe.results.to_jsonable` made of one, every field checked
    against its annotation (a list for a tuple, any number for a float, a whole number for an int); TypeError if
    ``data`` does not have that shape. Made for ``MappingCache.get``'s ``validate``."""
    if not isinstance(data, dict):
        raise TypeError(f"{cls.__name__}: expected an object, got {type(data).__name__}")
    fields = _fields(cls)
    unknown = set(data) - set(fields)
    if unknown:
        raise TypeError(f"{cls.__name__}: unknown fields {sorted(unknown)}")
    return cls(**{name: fields[name](value) for name, value in data.items()})


def _wrong(annotation: Any, value: Any) -> TypeError:
    return TypeError(f"{value!r:.40} is not {annotation}")


@functools.lru_cache(maxsize=None)
def _converter(annotation: Any) -> Callable[[Any], Any]:
    """What turns a JSON value into ``annotation`` or raises TypeError (made once per annotation: only
    dataclasses, tuples, dicts, int, float, str, bool and Any are known; any other raises on use)."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is Any:
        return lambda value: value
    if dataclasses.is_dataclass(annotation):
        return lambda value: from_json(annotation, value)
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        item = _converter(args[0])

        def variadic(value: Any) -> tuple:
            if not isinstance(value, list):
                raise _wrong(annotation, value)
            return tuple(item(v) for v in value)
        return variadic
    if origin is tuple:
        items = tuple(_converter(a) for a in args)

        def fixed(value: Any) -> tuple:
            if not isinstance(value, list) or len(value) != len(items):
                raise _wrong(annotation, value)
            return tuple(convert(v) for convert, v in zip(items, value))
        return fixed
    if origin is dict:
        key, item = _converter(args[0]), _converter(args[1])

        def mapping(value: Any) -> dict:
            if not isinstance(value, dict):
                raise _wrong(annotation, value)
            return {key(k): item(v) for k, v in value.items()}
        return mapping
    if annotation is float:
        def real(value: Any) -> Any:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise _wrong(annotation, value)
            return value
        return real
    if annotation is int:
        def whole(value: Any) -> int:
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not (isinstance(value, int) or value.is_integer()):
                raise _wrong(annotation, value)
            return int(value)
        return whole
    if annotation in (str, bool):
        def exact(value: Any) -> Any:
            if not isinstance(value, annotation):
                raise _wrong(annotation, value)
            return value
        return exact

    def unknown(value: Any) -> Any:
        raise _wrong(annotation, value)
    return unknown


def cache_folder() -> Path:
    env = os.environ.get("NTFRAME_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "ntframe"


class MappingCache:
    def __init__(self, folder: Path | None) -> None:
        self.folder = folder / "mappings" if folder is not None else None
        self.hits = self.misses = 0

    @staticmethod
    def key(parts: dict[str, Any]) -> str:
        text = json.dumps({"schema": CACHE_SCHEMA, **parts}, sort_keys=True, default=repr, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    def _path(self, key: str) -> Path:
        assert self.folder is not None
        return self.folder / key[:2] / f"{key}.json"

    def holds(self, key: str) -> bool:
        """Whether an entry is there (not counted as a hit or a miss; ``get`` may still find it unreadable)."""
        return self.folder is not None and self._path(key).is_file()

    def get(self, key: str, validate: Callable[[dict[str, Any]], T] | None = None) -> dict[str, Any] | T | None:
        """The entry under ``key`` (with ``validate``: what it returns for the entry), or None. An entry that
        cannot be read, whose SHA-256 seal does not match its content (damaged since it was written), is not a
        JSON object, or that ``validate`` raises on (or returns None for) is a miss, and is deleted."""
        if self.folder is None:
            return None
        path = self._path(key)
        value = None
        try:
            sealed = json.loads(path.read_bytes())
            payload = sealed["payload"]
            if hashlib.sha256(payload.encode()).hexdigest() == sealed["sha256"]:     # not damaged since written
                data = json.loads(payload)
                if isinstance(data, dict):
                    value = data if validate is None else validate(data)
        except Exception:       # missing, unreadable, not JSON, damaged, nested too deep, or refused by validate
            pass
        if value is None:
            self.misses += 1
            try:
                path.unlink(missing_ok=True)
            except OSError:
                pass            # a read-only cache: still a miss
            return None
        self.hits += 1
        return value

    def put(self, key: str, value: dict[str, Any]) -> None:
        if self.folder is None:
            return
        path = self._path(key)
        tmp: str | None = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
            payload = json.dumps(value, allow_nan=False)
            with os.fdopen(fd, "w") as fh:
                json.dump({"sha256": hashlib.sha256(payload.encode()).hexdigest(), "payload": payload}, fh)
            os.chmod(tmp, new_file_mode())      # mkstemp makes it 0600 whatever the umask
            os.replace(tmp, path)
            tmp = None
        except (OSError, ValueError):
            pass        # a cache that cannot be written (or a value that is not strict JSON) only costs speed
        finally:
            if tmp is not None:
                Path(tmp).unlink(missing_ok=True)
