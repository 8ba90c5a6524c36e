"""The mapping cache: a search result kept on disk under a content hash of everything it depends on.

Key = SHA-256 of (the operation's shape key, the architecture's content hash, the mapper's plugin, version
and options, the budget's evaluations, the seed, the cost model's plugin, version and options). Repeated layer
shapes within a run are served from memory by the runner; the cache serves re-runs and other specs with the
same shapes. Searches cut short by their seconds cap are not cached (their result depends on the machine).
Folder: ``NTFRAME_CACHE_DIR``, else ``~/.cache/ntframe``; ``mapper: {cache: false}`` turns it off.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

CACHE_SCHEMA = 6
"""Part of every key: bump it when a change to ntframe alters what a search or a cost model returns for the same
inputs (the reference plugins' versions follow ntframe's, which a development change does not bump), so
results cached before the change are not served after it. 2: the native search's descent phase; 3: the native
cost model charges spatial-reduction adders; 4: the bounded search, and zigzag-loma under constraints; 5: the
native cost model's DRAM bytes are the trace's lines, hmc-analytic's stratified sampling (issue 13); 6: the
searches re-rank their finalists by the cost model's evaluate."""


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

    def get(self, key: str) -> dict[str, Any] | None:
        if self.folder is None:
            return None
        try:
            data = json.loads(self._path(key).read_text())
        except (OSError, ValueError):
            self.misses += 1
            return None
        self.hits += 1
        return data

    def put(self, key: str, value: dict[str, Any]) -> None:
        if self.folder is None:
            return
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
            with os.fdopen(fd, "w") as fh:
                json.dump(value, fh)
            os.replace(tmp, path)
        except OSError:
            pass        # a cache that cannot be written only costs speed
