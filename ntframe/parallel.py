"""Independent pieces of work in forked worker processes: the distinct operations of a run are mapped and
simulated on every core, their results gathered in the order asked, so that the number of workers changes the
time and nothing else.

Workers are forked (Linux): they inherit the resolved spec, the plugins and the work list, and only each piece's
result travels back (pickled). Where ``fork`` is not available the work runs in this process. A worker that dies
(killed, out of memory, a crash in a plugin's native code) costs nothing already computed: the pieces it left
undone are run again one at a time, each in a process of its own, and a piece whose own process dies is
reported as failed by ``died``; the others go on.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from ntframe.errors import SpecError

_WORK: tuple[Callable[[int], Any], int] | None = None       # in a worker: the function and the pieces' count


def default_jobs() -> int:
    """Workers when the caller does not say: ``NTFRAME_JOBS``, else the cores this process may use."""
    env = os.environ.get("NTFRAME_JOBS", "").strip()
    if env:
        if not env.isdigit() or int(env) < 1:
            raise SpecError(f"environment variable NTFRAME_JOBS={env!r}: expected a whole number of worker "
                            f"processes, at least 1 (1 = run in this process)")
        return int(env)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:                                          # not Linux
        return os.cpu_count() or 1


def can_fork() -> bool:
    return "fork" in multiprocessing.get_all_start_methods()


def _init(fn: Callable[[int], Any], count: int) -> None:
    global _WORK
    _WORK = (fn, count)


def _call(index: int) -> Any:
    assert _WORK is not None
    return _WORK[0](index)


def run_pieces(fn: Callable[[int], Any], count: int, jobs: int, *, order: Sequence[int] | None = None,
               done: Callable[[int, Any], None] | None = None,
               died: Callable[[int], Any] = lambda i: None) -> list[Any]:
    """``[fn(0), ..., fn(count - 1)]``, computed by up to ``jobs`` forked workers (in this process when ``jobs``
    is 1, there is one piece, or fork is unavailable). ``order``: the order to start them in (the longest first
    balances the workers); ``done(i, result)`` is called in this process as each piece finishes; ``died(i)`` gives
    the result of a piece whose process died. An exception ``fn`` raises is raised here."""
    order = list(order) if order is not None else list(range(count))
    results: list[Any] = [None] * count
    if jobs <= 1 or count <= 1 or not can_fork():
        for i in order:
            results[i] = fn(i)
            if done:
                done(i, results[i])
        return results
    context = multiprocessing.get_context("fork")
    left = list(order)
    with ProcessPoolExecutor(min(jobs, count), mp_context=context, initializer=_init,
                             initargs=(fn, count)) as pool:
        running = {pool.submit(_call, i): i for i in left}
        try:
            while running:
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    i = running.pop(future)
                    results[i] = future.result()
                    left.remove(i)
                    if done:
                        done(i, results[i])
        except BrokenProcessPool:
            pass
    for i in left:                                  # a worker died: the rest again, each in a process of its own
        with ProcessPoolExecutor(1, mp_context=context, initializer=_init, initargs=(fn, count)) as alone:
            try:
                results[i] = alone.submit(_call, i).result()
            except BrokenProcessPool:
                results[i] = died(i)
        if done:
            done(i, results[i])
    return results


__all__ = ["can_fork", "default_jobs", "run_pieces"]
