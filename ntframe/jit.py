"""Optional compiled kernels (numba, the ``fast`` extra): loaded on first use, switched off by ``NTFRAME_JIT=0``,
and never the cause of a lost result.

A kernel module (the bank model's streaming pass :mod:`ntframe.memory.hmc_stream`, the native cost model's
pricing :mod:`ntframe.mapping.kernels`) computes the same figures as the numpy code it stands in for. Its
:class:`OptionalKernel` imports it the first time it is asked (numba is imported then, not with ntframe), and
when it fails to compile, load or run, the caller reports the failure once (:meth:`OptionalKernel.failed`): a
warning names the switch and the fix, and the numpy code serves for the rest of the process.

Compiled code is cached on disk (``NUMBA_CACHE_DIR``, by default ``~/.cache/ntframe-jit``): compiled code, not
results, kept apart from the mapping cache (``NTFRAME_CACHE_DIR``) so that emptying that (a cold run) does not
also cost the compiles (a few seconds each) again.

**Compiling is not searching.** numba compiles a kernel (or loads it from its cache) at its first call with each
new signature: on a fresh install that takes 20-40 s, inside the first operations' searches. The searches' time
caps (``mapper.budget.seconds``) count :func:`clock`, which leaves those calls out, so a first run that compiles
gives the same mappings as the next one (it did not: the small CNN's first run had two searches stopped by the
cap with no structure mapped).
"""

from __future__ import annotations

import importlib
import os
import time
import warnings
from pathlib import Path
from types import ModuleType


_UNLOADED = object()
_compiling_s = 0.0          # seconds this process spent in kernel calls that compiled (or loaded) a signature


def clock() -> float:
    """``time.monotonic()`` less the seconds this process spent in kernel calls that compiled a new signature:
    the clock of the searches' time caps."""
    return time.monotonic() - _compiling_s


class _TimedKernel:
    """A numba dispatcher whose calls that add a signature (a compile, or a load from numba's cache) are counted
    out of :func:`clock`; its other attributes (``signatures``, ``py_func``...) are the dispatcher's."""

    def __init__(self, kernel) -> None:
        self._kernel = kernel

    def __call__(self, *args, **kwargs):
        global _compiling_s
        kernel = self._kernel
        known = len(kernel.signatures)
        started = time.monotonic()
        try:
            return kernel(*args, **kwargs)
        finally:
            if len(kernel.signatures) != known:
                _compiling_s += time.monotonic() - started

    def __getattr__(self, name: str):
        return getattr(self._kernel, name)


class _Timed:
    """A kernel module whose numba dispatchers are wrapped in :class:`_TimedKernel` (other names as they are)."""

    def __init__(self, module: ModuleType) -> None:
        self._module = module

    def __getattr__(self, name: str):
        value = getattr(self._module, name)
        if hasattr(value, "signatures"):
            value = _TimedKernel(value)
        setattr(self, name, value)          # looked up once
        return value


def enabled() -> bool:
    """False when ``NTFRAME_JIT=0`` turns every compiled kernel off."""
    return os.environ.get("NTFRAME_JIT", "1") != "0"


def status() -> tuple[bool, str]:
    """For ``ntframe doctor``: whether the compiled kernels can run, and what to do if not."""
    if not enabled():
        return False, "turned off by NTFRAME_JIT=0 (the numpy code only: the same figures)"
    try:
        import numba
    except ImportError:
        return False, "numba not installed: pip install 'ntframe[fast]' (the same figures, several times faster)"
    return True, f"numba {numba.__version__}"


class OptionalKernel:
    """One compiled kernel module: ``module`` (its dotted name), ``what`` it is and ``instead``, the numpy code
    that serves without it (for the warning)."""

    def __init__(self, module: str, what: str, instead: str) -> None:
        self.module, self.what, self.instead = module, what, instead
        self.failure: str | None = None     # why it failed in this process (then numpy alone)
        self._loaded: object = _UNLOADED

    def get(self) -> "ModuleType | _Timed | None":
        """The kernel module when numba is installed, ``NTFRAME_JIT`` is not ``0`` and it has not failed in this
        process; else None (the numpy code serves: the same figures)."""
        if self.failure is not None or not enabled():
            return None
        if self._loaded is _UNLOADED:
            if "NUMBA_CACHE_DIR" not in os.environ:                      # read when numba is imported
                os.environ["NUMBA_CACHE_DIR"] = str(Path.home() / ".cache" / "ntframe-jit")
            try:
                self._loaded = _Timed(importlib.import_module(self.module))
            except ImportError:
                self._loaded = None
        return self._loaded     # type: ignore[return-value]

    def failed(self, exc: BaseException) -> None:
        """The kernel failed (numba could not compile or load it, or it raised): warn once, name the switch, and
        leave the numpy code to serve for the rest of the process. Never costs a result."""
        first = self.failure is None
        self.failure = self.failure or f"{type(exc).__name__}: {exc}".split("\n")[0]
        if first:
            warnings.warn(f"ntframe: {self.what} failed ({self.failure}); using {self.instead} (the same figures, "
                          "slower). Set NTFRAME_JIT=0 to skip it, or reinstall numba (pip install 'ntframe[fast]').",
                          RuntimeWarning, stacklevel=3)


__all__ = ["OptionalKernel", "clock", "enabled", "status"]
