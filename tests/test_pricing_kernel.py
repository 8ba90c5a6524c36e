"""The native cost model's compiled batch pricing (``ntframe/mapping/kernels.py``) gives numpy's figures to the
last bit.

For the operations of ``tests/test_mapper_speed_equality.py`` (strided and plain convolutions, FC layers, an LSTM,
every training phase) on every shipped architecture and on three made here (two levels without and with a network
between the vaults, four levels), sampled batches of 1, 7, 64 and 600 mappings with random bypasses are priced by
the kernel and by :func:`ntframe_plugins.native_cost.price` with DRAM lines of 64 bytes and of one element, with and
without the spatial reduction's adds: energy and cycles must be equal (``np.array_equal``, not close). Also: a batch
that does not factorise the bounds goes to numpy, ``NTFRAME_JIT=0`` turns the kernel off, a failing kernel costs no
result, and the kernel is compiled for one set of argument types only (its compile time is paid once).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from ntframe.api import load_architecture
from ntframe.hardware.architecture import Architecture
from ntframe.mapping.constraints import for_operation
from ntframe.mapping.mapspace import MappingBatch, Problem
from ntframe.mapping.space import Space
from ntframe.testing import TINY_ARCH
from ntframe.workload.ir import Operation
from ntframe_plugins import native_cost
from ntframe_plugins.native_cost import CompiledPricing, NativeCostModel, NativeCostOptions, price
from tests.conftest import ROOT, compiled_or_skip
from tests.test_mapper_speed_equality import ops

SIZES = (1, 7, 64, 600)
OPTIONS = [NativeCostOptions(dram_line_bytes=line, spatial_reduction_adders=adders)
           for line in (64, 0) for adders in (True, False)]
SHIPPED = sorted(p.relative_to(ROOT / "arch_specs").as_posix() for p in (ROOT / "arch_specs").glob("*/*.yaml"))
NETWORK = ("    - !Component\n      name: noc\n      class: network\n"
           "      attributes: {hop_energy_pJ_per_bit: 0.5, link_bandwidth_bytes_per_cycle: 2}\n"
           "      sources: {hop_energy_pJ_per_bit: \"[A]\", link_bandwidth_bytes_per_cycle: \"[A]\"}\n"
           "    - !Container\n      name: vaults\n      spatial: {meshX: 2}\n")
PE_BUFFER = ("    - !Component\n      name: pe_buffer\n      class: SRAM\n"
             "      attributes: {capacity_bytes: 2048, bandwidth_bytes_per_cycle: 32, read_energy_pJ_per_bit: 0.08,\n"
             "                   write_energy_pJ_per_bit: 0.09}\n"
             "      sources: {capacity_bytes: \"[A]\", bandwidth_bytes_per_cycle: \"[A]\", read_energy_pJ_per_bit: "
             "\"[A]\",\n                write_energy_pJ_per_bit: \"[A]\"}\n"
             "    - !Container\n      name: lanes\n      spatial: {meshX: 2}\n")
MADE = {"two-levels": TINY_ARCH,
        "two-levels-network": TINY_ARCH.replace("  nodes:\n", "  nodes:\n" + NETWORK),
        "four-levels": (ROOT / "arch_specs" / "neurotrainer" / "hmc2-32vault.yaml").read_text().replace(
            "    - !Component\n      name: pe_rf\n", PE_BUFFER + "    - !Component\n      name: pe_rf\n")}


@pytest.fixture(scope="module")
def kernels():
    return compiled_or_skip(native_cost.PRICING)


def architecture(name: str, folder) -> Architecture:
    if name in MADE:
        path = folder / f"{name}.yaml"
        path.write_text(MADE[name])
        return load_architecture(path)
    return load_architecture(ROOT / "arch_specs" / name)


def at_precision(op: Operation, arch: Architecture) -> Operation:
    """The operation with the architecture's precision for its phase (where it has energies for other widths
    only)."""
    bits = arch.precision_bits[op.phase]
    return dataclasses.replace(op, tensors=tuple(dataclasses.replace(t, precision_bits=bits) for t in op.tensors))


def batches(problem: Problem, arch: Architecture, seed: int) -> list[MappingBatch]:
    """Sampled mappings that fit (random bypasses below the outermost level), in batches of every size."""
    space = Space(problem, arch, for_operation(problem, arch))
    whole = space.decode(*space.sample(np.random.default_rng(seed), sum(SIZES)))
    edges = np.cumsum((0,) + SIZES)
    return [whole.take(slice(a, b)) for a, b in zip(edges[:-1], edges[1:])]


@pytest.mark.parametrize("arch_name", SHIPPED + sorted(MADE))
def test_the_kernel_prices_as_numpy_to_the_last_bit(kernels, arch_name, tmp_path):
    arch = architecture(arch_name, tmp_path)
    bypassed = 0
    for seed, op in enumerate(ops().values()):
        problem = Problem(at_precision(op, arch))
        for batch in batches(problem, arch, seed):
            bypassed += int((~batch.keep[:, 1:]).sum())
            analysis = None
            for options in OPTIONS:
                want = price(problem, batch, arch, analysis, line_bytes=options.dram_line_bytes,
                             reduction_adders=options.spatial_reduction_adders)
                analysis = want["analysis"]
                compiled = CompiledPricing(problem, arch, options.dram_line_bytes, options.spatial_reduction_adders)
                got = compiled.price(kernels, batch)
                assert got is not None, f"{op.name}: the kernel did not price the batch"
                energy, cycles = got
                where = f"{op.name} on {arch_name}, {len(batch)} mappings, {options}"
                assert np.array_equal(energy, want["energy_pJ"]), where
                assert np.array_equal(cycles, want["cycles"]), where
                model = NativeCostModel(options)
                assert all(np.array_equal(x, y) for x, y in zip(model.evaluate_batch(problem, batch, arch), got))
    assert bypassed                                            # bypasses are exercised
    assert len(kernels.price_batch.signatures) == 1           # one compile, whatever the batch


def test_a_batch_that_does_not_factorise_the_bounds_is_priced_by_numpy(kernels):
    """A split that does not divide a bound leaves fractional shares, which numpy rounds in a matrix product:
    the kernel declines and evaluate_batch gives numpy's figures."""
    arch = load_architecture(ROOT / "arch_specs" / "neurotrainer" / "hmc2-32vault.yaml")
    problem = Problem(ops()["c2.forward"])
    batch = batches(problem, arch, 5)[2]
    S = batch.S.copy()
    S[:, 0, 0] = 3                                          # the batch dimension (8) split 3 ways at the vaults
    odd = MappingBatch(batch.T, S, batch.R, batch.keep)
    assert CompiledPricing(problem, arch).price(kernels, odd) is None
    want = price(problem, odd, arch)
    energy, cycles = NativeCostModel().evaluate_batch(problem, odd, arch)
    assert np.array_equal(energy, want["energy_pJ"]) and np.array_equal(cycles, want["cycles"])


def test_the_kernel_can_be_turned_off(monkeypatch):
    monkeypatch.setenv("NTFRAME_JIT", "0")
    assert native_cost.PRICING.get() is None
    arch = load_architecture(ROOT / "arch_specs" / "tiny" / "1vault-8x8.yaml")
    problem = Problem(at_precision(ops()["c1.forward"], arch))
    batch = batches(problem, arch, 1)[2]
    want = price(problem, batch, arch)
    energy, cycles = NativeCostModel().evaluate_batch(problem, batch, arch)
    assert np.array_equal(energy, want["energy_pJ"]) and np.array_equal(cycles, want["cycles"])


def test_a_failing_kernel_costs_no_result(monkeypatch):
    """If numba cannot compile or run the kernel, numpy prices, with one warning naming the switch, and the kernel
    is not tried again in the process."""

    class Broken:
        @staticmethod
        def price_batch(*_):
            raise RuntimeError("cannot compile")

    monkeypatch.delenv("NTFRAME_JIT", raising=False)
    monkeypatch.setattr(native_cost.PRICING, "_loaded", Broken)
    monkeypatch.setattr(native_cost.PRICING, "failure", None)
    arch = load_architecture(ROOT / "arch_specs" / "neurotrainer" / "hmc2-32vault.yaml")
    problem = Problem(ops()["fc.backward_weight"])
    batch = batches(problem, arch, 2)[2]
    want = price(problem, batch, arch)
    model = NativeCostModel()
    with pytest.warns(RuntimeWarning, match="NTFRAME_JIT=0"):
        energy, cycles = model.evaluate_batch(problem, batch, arch)
    assert np.array_equal(energy, want["energy_pJ"]) and np.array_equal(cycles, want["cycles"])
    assert native_cost.PRICING.get() is None
    assert native_cost.PRICING.failure == "RuntimeError: cannot compile"
