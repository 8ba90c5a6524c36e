"""Where spec-relative files and ntframe's shipped folders (``arch_specs``, ``workloads``) are found."""

from __future__ import annotations

import os
from pathlib import Path

from ntframe.errors import SpecError


def shipped_root() -> Path:
    """The folder holding ``arch_specs/`` and ``workloads/``: ``NTFRAME_DATA`` or the project checkout."""
    env = os.environ.get("NTFRAME_DATA")
    return Path(env) if env else Path(__file__).resolve().parent.parent


def resolve_path(name: str, spec_dir: Path, shipped_folder: str) -> Path:
    """``name`` as an absolute path, relative to the spec's folder, relative to the working folder, or inside
    the shipped folder (with or without the ``.yaml`` suffix), in that order."""
    candidates = [Path(name)] if Path(name).is_absolute() else [spec_dir / name, Path.cwd() / name]
    shipped = shipped_root() / shipped_folder
    candidates += [shipped / name, shipped / f"{name}.yaml"]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise SpecError(f"file '{name}' not found (looked in {', '.join(str(c.parent) for c in candidates[:3])}; "
                    f"shipped files are in {shipped})")
