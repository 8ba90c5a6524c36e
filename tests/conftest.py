from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "small-cnn.yaml"


def ntframe_cmd(*args: str, env: dict | None = None, cwd: Path | None = None, timeout: float = 120):
    """Run the installed ``ntframe`` console script (as a user would) and return the CompletedProcess."""
    exe = shutil.which("ntframe", path=str(Path(sys.executable).parent)) or shutil.which("ntframe")
    assert exe, "the ntframe console script is not installed"
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([exe, *args], capture_output=True, text=True, env=full_env, cwd=cwd, timeout=timeout)


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    """Every test gets its own mapping cache folder (never the user's)."""
    monkeypatch.setenv("NTFRAME_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture
def host():
    from ntframe.host import PluginHost
    return PluginHost().load()


def compiled_or_skip(loader):
    """The module of an optional compiled kernel (:class:`ntframe.jit.OptionalKernel`), or the test skips, saying
    why: numba is not installed, or NTFRAME_JIT=0."""
    pytest.importorskip("numba", reason=f"numba not installed: pip install 'ntframe[fast]' for {loader.what}")
    module = loader.get()
    if module is None:
        pytest.skip(f"{loader.what}: turned off (NTFRAME_JIT=0)")
    return module


@pytest.fixture()
def kern():
    """The bank model's compiled pass (:mod:`ntframe.memory.hmc_stream`)."""
    from ntframe.memory import hmc_bank
    return compiled_or_skip(hmc_bank.STREAM)
