"""Independent pieces of work in forked worker processes: the distinct operations of a run are mapped and
simulated on every core, their results gathered in the order asked, so that the number of workers changes the
time and nothing else; and each piece is bounded in time, so a plugin that hangs costs only its own piece.

Workers are forked (Linux): they inherit the resolved spec, the plugins and the work list; a worker takes one
piece at a time over a pipe and only each piece's result travels back (pickled). A worker that dies (killed, out
of memory, a crash in a plugin's native code) costs only the piece in its hands: ``died`` gives that piece's
result and a fresh worker takes the next. A piece that runs longer than ``timeout_s``, and every piece still
running or waiting when the ``deadline`` passes, has its worker stopped (SIGTERM, which a worker turns into
``KeyboardInterrupt`` so that a plugin's clean-up runs, e.g. killing its simulator's process group; SIGKILL
``STOP_GRACE_S`` later) and gets ``late``'s result. Without a time bound, one job runs in this process; where
``fork`` is not available everything does, unbounded.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from collections import deque
from collections.abc import Callable, Sequence
from multiprocessing.connection import wait
from typing import Any

from ntframe.errors import SpecError

STOP_GRACE_S = 2.0
"""Seconds a stopped worker has to clean up (its plugin's subprocesses) before it is killed."""


def jobs_value(text: str) -> int | None:
    """``text`` as a number of worker processes (a whole number, at least 1), or None: the one rule for ``-j``
    and ``NTFRAME_JOBS``."""
    return int(text) if text.isdigit() and int(text) >= 1 else None


def default_jobs() -> int:
    """Workers when the caller does not say: ``NTFRAME_JOBS``, else the cores this process may use."""
    env = os.environ.get("NTFRAME_JOBS", "").strip()
    if env:
        jobs = jobs_value(env)
        if jobs is None:
            raise SpecError(f"environment variable NTFRAME_JOBS={env!r}: expected a whole number of worker "
                            f"processes, at least 1 (1: one at a time)")
        return jobs
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:                                          # not Linux
        return os.cpu_count() or 1


def can_fork() -> bool:
    return "fork" in multiprocessing.get_all_start_methods()


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"stopped by the parent (signal {signum})")


def _worker(fn: Callable[[int], Any], conn: Any, parent: int) -> None:
    """A worker's loop: a piece's index in, ``("ok", result)`` or ``("raise", exception)`` out; None, or its
    parent's end, ends it."""
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, signal.SIG_IGN)            # Ctrl-C is the parent's to handle
    while True:
        try:
            while not conn.poll(1.0):
                if os.getppid() != parent:                  # orphaned (the parent was killed): nothing to do
                    return
            i = conn.recv()
        except (EOFError, OSError):
            return
        if i is None:
            return
        try:
            answer: tuple[str, Any] = ("ok", fn(i))
        except KeyboardInterrupt:
            return
        except BaseException as exc:                       # the parent raises it (a bug, not a plugin's failure)
            answer = ("raise", exc)
        try:
            conn.send(answer)
        except Exception as exc:                           # an answer that does not pickle
            conn.send(("raise", RuntimeError(f"piece {i}: its result could not be sent back: {exc!r}")))


class _Worker:
    def __init__(self, context: Any, fn: Callable[[int], Any]) -> None:
        self.conn, child = context.Pipe()
        self.process = context.Process(target=_worker, args=(fn, child, os.getpid()))   # not daemonic: plugins may fork
        self.process.start()
        child.close()
        self.piece: int | None = None
        self.started = 0.0

    def give(self, i: int) -> None:
        self.piece, self.started = i, time.monotonic()
        self.conn.send(i)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it has not ended within STOP_GRACE_S."""
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(STOP_GRACE_S)
            if self.process.is_alive():
                self.process.kill()
        self.process.join()
        self.conn.close()

    def close(self) -> None:
        try:
            self.conn.send(None)
        except OSError:
            pass
        self.process.join(STOP_GRACE_S)
        self.stop()


def run_pieces(fn: Callable[[int], Any], count: int, jobs: int, *, order: Sequence[int] | None = None,
               done: Callable[[int, Any], None] | None = None,
               died: Callable[[int], Any] = lambda i: None,
               timeout_s: float | None = None, deadline: float | None = None,
               late: Callable[[int, str], Any] = lambda i, why: None) -> list[Any]:
    """``[fn(0), ..., fn(count - 1)]``, computed by up to ``jobs`` forked workers. ``order``: the order to start
    them in (the longest first balances the workers); ``done(i, result)`` is called in this process as each piece
    finishes (with the result ``died`` or ``late`` gave, for those); ``died(i)``: the result of a piece whose
    worker died; ``timeout_s``: the most seconds a piece may take; ``deadline`` (a ``time.monotonic()`` value):
    when every piece not finished is stopped; ``late(i, why)``: the result of a piece stopped by either. Without
    ``timeout_s`` and ``deadline``, one job (or one piece) runs in this process. An exception ``fn`` raises is
    raised here."""
    order = list(order) if order is not None else list(range(count))
    results: list[Any] = [None] * count
    bounded = timeout_s is not None or deadline is not None
    if not can_fork() or (not bounded and (jobs <= 1 or count <= 1)):
        for i in order:
            results[i] = fn(i)
            if done:
                done(i, results[i])
        return results
    context = multiprocessing.get_context("fork")
    pending = deque(order)
    workers: list[_Worker] = []

    def finish(i: int, result: Any) -> None:
        results[i] = result
        if done:
            done(i, result)

    try:
        while pending or any(w.piece is not None for w in workers):
            idle = [w for w in workers if w.piece is None]
            while pending and (idle or len(workers) < min(jobs, count)):
                worker = idle.pop() if idle else _Worker(context, fn)
                if worker not in workers:
                    workers.append(worker)
                worker.give(pending.popleft())
            busy = [w for w in workers if w.piece is not None]
            now = time.monotonic()
            ends = [w.started + timeout_s for w in busy] if timeout_s is not None else []
            if deadline is not None:
                ends.append(deadline)
            ready = wait([w.conn for w in busy] + [w.process.sentinel for w in busy],
                         timeout=max(0.0, min(ends) - now) if ends else None)
            for worker in busy:
                i = worker.piece
                assert i is not None
                if worker.conn in ready or worker.process.sentinel in ready:
                    try:
                        kind, value = worker.conn.recv()
                    except (EOFError, OSError):             # it died with the piece in its hands
                        worker.stop()
                        workers.remove(worker)
                        finish(i, died(i))
                        continue
                    worker.piece = None
                    if kind == "raise":
                        raise value
                    finish(i, value)
                elif timeout_s is not None and time.monotonic() >= worker.started + timeout_s:
                    worker.stop()
                    workers.remove(worker)
                    finish(i, late(i, f"it did not finish within {timeout_s:g} s"))
            if deadline is not None and time.monotonic() >= deadline:
                for worker in [w for w in workers if w.piece is not None]:
                    worker.stop()
                    workers.remove(worker)
                    finish(worker.piece, late(worker.piece, "the run's deadline passed while it ran"))
                while pending:
                    i = pending.popleft()
                    finish(i, late(i, "the run's deadline passed before it started"))
    finally:
        for worker in workers:
            if worker.piece is None:
                worker.close()
            else:
                worker.stop()
    return results


__all__ = ["STOP_GRACE_S", "can_fork", "default_jobs", "jobs_value", "run_pieces"]
