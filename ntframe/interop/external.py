"""Running external simulators: finding their binaries, running them as subprocesses (argv lists, timeouts,
a working folder), and failing with the exact command to rerun and the inputs kept."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path

from ntframe.errors import ToolError


def find_binary(env: str, names: list[str], what: str, fix: str) -> str:
    """The program named by environment variable ``env`` (a file, or a folder holding one of ``names``), else
    the first of ``names`` on PATH; a ToolError naming ``env`` when there is none."""
    value = os.environ.get(env)
    if value:
        path = Path(value)
        candidates = [path] if path.is_file() else [path / n for n in names]
        for c in candidates:
            if c.is_file() and os.access(c, os.X_OK):
                return str(c)
        raise ToolError(f"{env}={value} does not name an executable {what}", fix=fix)
    for n in names:
        found = shutil.which(n)
        if found:
            return found
    raise ToolError(f"{what} not found (looked for {env} and {', '.join(names)} on PATH)", fix=fix)


def workdir(prefix: str) -> Path:
    """A fresh folder for a run's inputs and outputs (kept when the run fails)."""
    base = os.environ.get("NTFRAME_WORK_DIR")
    if base:
        Path(base).mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=prefix, dir=base))


def cleanup(folder: Path) -> None:
    """Remove a successful run's folder, unless ``NTFRAME_KEEP_FILES`` asks to keep every one (failed runs are
    always kept: their callers raise before cleaning up)."""
    if not os.environ.get("NTFRAME_KEEP_FILES"):
        shutil.rmtree(folder, ignore_errors=True)


def run_tool(argv: list[str], cwd: Path, timeout_s: float, what: str) -> subprocess.CompletedProcess:
    """Run ``argv`` in ``cwd``; on a crash or a timeout raise a ToolError that keeps the folder and prints the
    command to rerun."""
    rerun = f"cd {shlex.quote(str(cwd))} && {shlex.join(argv)}"
    try:
        done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise ToolError(f"{what} did not finish within {timeout_s:g} s; inputs kept in {cwd}", fix=f"rerun: {rerun}")
    except OSError as exc:
        raise ToolError(f"{what} could not start: {exc}; inputs kept in {cwd}", fix=f"rerun: {rerun}") from None
    if done.returncode != 0:
        tail = (done.stdout[-400:] + done.stderr[-400:]).strip().replace("\n", " | ")
        raise ToolError(f"{what} failed with exit code {done.returncode}: {tail}; inputs kept in {cwd}",
                        fix=f"rerun: {rerun}")
    return done


def parse_failure(what: str, cwd: Path, reason: str, argv: list[str]) -> ToolError:
    return ToolError(f"{what} output could not be read ({reason}); files kept in {cwd}",
                     fix=f"rerun: cd {shlex.quote(str(cwd))} && {shlex.join(argv)}")
