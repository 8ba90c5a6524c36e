"""The compiled pass through full vault queues (ntframe.memory.hmc_stream.queue_rounds, then the streaming pass
from the times it finds) against the vectorised model's rounds: the same figures to the last bit wherever it
answers, and it answers on most traces whose queues fill."""

from __future__ import annotations

import numpy as np
import pytest

from ntframe.memory import hmc_bank
from ntframe.memory.hmc_bank import HMCParams, simulate

pytest.importorskip("numba", reason="numba not installed: pip install 'ntframe[fast]' for the compiled pass")


def test_queue_rounds_equal_the_vectorised_rounds_on_random_traces(kern, monkeypatch):
    """Bursty traces over few vaults and banks (queues of 4-64 fill), both entry rules, both page policies,
    reads and writes, one or several transfer sizes: every figure equals the vectorised model's exactly wherever
    the compiled rounds answer; they answer on a good share of the traces that fill a queue."""
    rng = np.random.default_rng(11)
    full = answered = 0
    for trial in range(150):
        n = int(rng.integers(20, 2500))
        vaults, banks, rows = (int(rng.choice(c)) for c in ([1, 2, 4, 32], [1, 2, 8], [1, 2, 4, 64, 4096]))
        time = np.sort(rng.integers(0, max(1, n // int(rng.choice([1, 4, 16]))), n)).astype(float)
        vault, bank, row = rng.integers(0, vaults, n), rng.integers(0, banks, n), rng.integers(0, rows, n)
        if rng.random() < 0.5:                                # rows in runs, as traces have them
            row = np.repeat(rng.integers(0, rows, n // 8 + 1), 8)[:n]
        write = rng.random(n) < rng.choice([0, 0.3, 0.7])
        nbytes = 64 if rng.random() < 0.7 else rng.choice([32, 64, 128], n)
        p = HMCParams(front_end=str(rng.choice(["per-vault", "single"])), links=0,
                      queue_per_vault=int(rng.choice([4, 16, 64])),
                      page_policy=str(rng.choice(["open", "open", "closed"])))
        monkeypatch.setattr(hmc_bank, "_kernels", lambda: None)
        vectorised = simulate(time, vault, bank, row, write, nbytes, p)
        monkeypatch.undo()
        issue = time
        first = hmc_bank._stream(kern, issue, vault, bank, row, write, nbytes, p, None)
        rounds = hmc_bank._stream(kern, issue, vault, bank, row, write, nbytes, p, None, rounds=True)
        if first is None and rounds is not None:
            full += 1
        if rounds is not None:
            answered += 1
            assert rounds == vectorised, (trial, p)
        assert simulate(time, vault, bank, row, write, nbytes, p, compiled=True) == vectorised, (trial, p)
    assert full >= 30 and answered >= 60, (full, answered)


def test_queue_rounds_on_one_bank(kern, monkeypatch):
    """200 reads to one bank, each another row, one a cycle: the 64-request vault queue fills, and the compiled
    rounds give the vectorised model's figures."""
    p = HMCParams()
    n = 200
    args = (np.arange(n, dtype=float), np.zeros(n, int), np.zeros(n, int), np.arange(n), np.zeros(n, int), 64, p)
    monkeypatch.setattr(hmc_bank, "_kernels", lambda: None)
    vectorised = simulate(*args)
    monkeypatch.undo()
    assert hmc_bank._stream(kern, *args, None) is None
    assert hmc_bank._stream(kern, *args, None, rounds=True) == vectorised
