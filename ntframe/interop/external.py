"""Running external simulators: finding their binaries, running them as subprocesses, and failing with the exact
command to rerun and the inputs kept.

* **Process groups and timeouts**: every program runs from an argv list (never a shell) in a session of its own
  (:func:`run_group`); at its timeout, or on any exception in ntframe while it runs (``KeyboardInterrupt``
  included), its whole process group is stopped (SIGTERM, SIGKILL after a short grace), so a wrapper script's
  children die with it; whatever it leaves running after it exits is killed too.
* **Output to files**: its stdout and stderr go to ``stdout.txt`` and ``stderr.txt`` in its folder, never into
  memory; errors quote only their tail (:func:`tail`); statistics files are read up to a size
  (:func:`read_stats`).
* **Errors**: a crash, a timeout, output that does not parse (:func:`parse_failure`) or a figure that cannot be
  true (:func:`check_figures`) raise a :class:`ToolError` that names the folder, kept, and the command to rerun.
* **Identity**: :func:`program_identity` (resolved path and SHA-256 of the binary and of its configuration files)
  is what the components put in the mapping cache's keys (``Component.cache_identity``).
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import shlex
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path
from typing import IO, Mapping

from ntframe.errors import ToolError

GRACE_S = 2.0
"""Seconds a program's group has between SIGTERM and SIGKILL at its timeout."""
INTERRUPT_GRACE_S = 0.5
"""The same when ntframe itself is interrupted: shorter than the grace of a stopped worker process
(:data:`ntframe.parallel.STOP_GRACE_S`), so that the group is dead before the worker that started it."""
MAX_FIGURE = 1e18
"""Largest figure (cycles, counts, pJ) a simulator may report for one run: 1e18 cycles are 30 years at 1 GHz,
1e18 pJ a megajoule; above it the output is garbage, not a result."""
TAIL_BYTES = 64 * 1024
"""At most this much of a program's stdout or stderr is read back (its end)."""
STATS_LIMIT = 64 * 1024 * 1024
"""Largest statistics file read (a real one is well under a megabyte)."""


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
    """A fresh folder for a run's inputs and outputs (kept when the run fails), in ``NTFRAME_WORK_DIR`` or the
    system's temporary folder. ``prefix`` (it usually holds an operation's name, which may be an ONNX node's
    ``/features/features.0/Conv``) is cut to 60 characters of ``[A-Za-z0-9._-]``, others becoming ``_``."""
    base = os.environ.get("NTFRAME_WORK_DIR")
    if base:
        Path(base).mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=re.sub(r"[^A-Za-z0-9._-]", "_", prefix)[:60], dir=base))


def cleanup(folder: Path) -> None:
    """Remove a successful run's folder, unless ``NTFRAME_KEEP_FILES`` asks to keep every one (failed runs are
    always kept: their callers raise before cleaning up)."""
    if not os.environ.get("NTFRAME_KEEP_FILES"):
        shutil.rmtree(folder, ignore_errors=True)


def rerun(cwd: Path, argv: list[str]) -> str:
    """The fix of every failure: the shell command that reruns ``argv`` in ``cwd``."""
    return f"rerun: cd {shlex.quote(str(cwd))} && {shlex.join(argv)}"


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except OSError:          # the group is gone (or holds only zombies)
        pass


def _stop(proc: subprocess.Popen, first: int, grace_s: float) -> None:
    """Send ``first`` to the program's group, and SIGKILL after ``grace_s``; reap the program."""
    _signal_group(proc.pid, first)
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        pass
    _signal_group(proc.pid, signal.SIGKILL)
    proc.wait()


def _default_sigint() -> None:
    """In the child before its program starts: SIGINT back to its default. A process started in the background by
    a non-interactive shell (``ntframe run ... &``, a sweep's script) ignores SIGINT, and its children inherit
    that; the programs must not, since a budget stops them with SIGINT (timeloop-mapper then writes its best
    mapping)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run_group(argv: list[str], cwd: Path, stdout: IO | int, stderr: IO | int, timeout_s: float, *,
              stop_signal: int = signal.SIGTERM, grace_s: float = GRACE_S) -> tuple[int, bool]:
    """Run ``argv`` in ``cwd`` in a new session (its own process group), stdin closed, output to ``stdout`` and
    ``stderr``; returns (exit code, whether it hit ``timeout_s``). At the timeout its group gets ``stop_signal``,
    then SIGKILL after ``grace_s``; on an exception while waiting (KeyboardInterrupt included) SIGTERM, then
    SIGKILL after :data:`INTERRUPT_GRACE_S`, and the exception goes on; after it exits, whatever is left of its group is killed. OSError when it
    cannot start."""
    ignored = signal.getsignal(signal.SIGINT) is signal.SIG_IGN      # ntframe started in the background (`&`, nohup)
    proc = subprocess.Popen(argv, cwd=cwd, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr,
                            start_new_session=True, preexec_fn=_default_sigint if ignored else None)
    timed_out = False
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        timed_out = True
        _stop(proc, stop_signal, grace_s)
    except BaseException:
        _stop(proc, signal.SIGTERM, INTERRUPT_GRACE_S)
        raise
    finally:
        _signal_group(proc.pid, signal.SIGKILL)     # what the program left behind (a group outlives its leader)
    return proc.returncode, timed_out


def tail(path: Path, max_bytes: int = TAIL_BYTES) -> str:
    """The last ``max_bytes`` of a file, as text ('' when it cannot be read)."""
    try:
        with open(path, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - max_bytes))
            return f.read().decode(errors="replace")
    except OSError:
        return ""


def quoted_tail(text: str, lines: int = 20, max_bytes: int = 4096) -> str:
    """The end of a program's output for an error message: its last ``lines`` lines within ``max_bytes``, on
    one line."""
    kept = [ln.strip() for ln in text[-max_bytes:].splitlines() if ln.strip()][-lines:]
    return " | ".join(kept)


def run_tool(argv: list[str], cwd: Path, timeout_s: float, what: str) -> None:
    """Run ``argv`` in ``cwd`` (:func:`run_group`), its output in ``cwd/stdout.txt`` and ``cwd/stderr.txt``; on
    a crash or a timeout raise a ToolError that keeps the folder and gives the command to rerun."""
    try:
        with open(cwd / "stdout.txt", "wb") as out, open(cwd / "stderr.txt", "wb") as err:
            code, timed_out = run_group(argv, cwd, out, err, timeout_s)
    except OSError as exc:
        raise ToolError(f"{what} could not start: {exc}; inputs kept in {cwd}", fix=rerun(cwd, argv)) from None
    if timed_out:
        raise ToolError(f"{what} did not finish within {timeout_s:g} s (its option timeout_s) and was stopped with "
                        f"its process group; inputs kept in {cwd}", fix=rerun(cwd, argv))
    if code != 0:
        said = quoted_tail(tail(cwd / "stderr.txt")) or quoted_tail(tail(cwd / "stdout.txt"))
        raise ToolError(f"{what} {exit_description(code)}: {said or 'no output'}; inputs kept in {cwd}",
                        fix=rerun(cwd, argv))


def exit_description(code: int) -> str:
    """'failed with exit code N', or 'was killed by SIGNAME' for a negative exit code."""
    if code >= 0:
        return f"failed with exit code {code}"
    try:
        return f"was killed by {signal.Signals(-code).name}"
    except ValueError:
        return f"was killed by signal {-code}"


def read_stats(path: Path, limit: int = STATS_LIMIT) -> str:
    """A statistics file's text: OSError when it is missing, ValueError when it is larger than ``limit`` or not
    UTF-8 (both for :func:`parse_failure`)."""
    size = path.stat().st_size
    if size > limit:
        raise ValueError(f"{path.name} holds {size:,} bytes, more than the {limit:,} read of a statistics file")
    return path.read_text()


def parse_failure(what: str, cwd: Path, reason: str, argv: list[str]) -> ToolError:
    return ToolError(f"{what} output could not be read ({reason}); files kept in {cwd}", fix=rerun(cwd, argv))


def check_figures(what: str, cwd: Path, argv: list[str], figures: Mapping[str, object],
                  positive: tuple[str, ...] = ()) -> None:
    """Raise a ToolError (folder kept, rerun command) for the first figure a simulator reported that cannot be
    true: not a number, not finite, negative, above :data:`MAX_FIGURE`, or 0 although it is in ``positive``
    (e.g. the cycles of a run given requests)."""
    for name, value in figures.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            problem = "not a number"
        elif not math.isfinite(value):
            problem = "not finite"
        elif value < 0:
            problem = "negative"
        elif value > MAX_FIGURE:
            problem = f"above {MAX_FIGURE:g}, impossible"
        elif value == 0 and name in positive:
            problem = "zero, although the run was given work"
        else:
            continue
        raise ToolError(f"{what} reported {name} = {value!r} ({problem}); files kept in {cwd}", fix=rerun(cwd, argv))


_SHA256: dict[tuple[str, int, int], str] = {}
"""SHA-256 of files by (resolved path, size, mtime_ns): each hashed once per process."""


def file_sha256(path: Path) -> str:
    """The file's SHA-256 (hex), memoised in :data:`_SHA256`."""
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _SHA256:
        with open(path, "rb") as f:
            _SHA256[key] = hashlib.file_digest(f, "sha256").hexdigest()
    return _SHA256[key]


def program_identity(program: str | Path, **files: Path) -> dict[str, str]:
    """What identifies an external program's results: its resolved path and the SHA-256 of the file, and the
    same (``<name>`` and ``<name>_sha256``) of each file in ``files`` (configurations, libraries)."""
    out: dict[str, str] = {}
    for name, path in {"program": Path(program), **files}.items():
        resolved = path.resolve()
        out[name] = str(resolved)
        out["sha256" if name == "program" else f"{name}_sha256"] = file_sha256(resolved)
    return out
