"""The ``astra-sim`` interconnect model: the Chakra traces it writes (byte for byte ASTRA-sim's own generator's),
its inputs and its reading of the output on a stand-in program, its refusals, and — when ``NTFRAME_ASTRASIM`` names
a real ASTRA-sim build — the live program against the ``native`` model."""

from __future__ import annotations

import os
import stat

import pytest

from ntframe.errors import ToolError
from ntframe.system import Collective, Links, Topology
from ntframe_plugins.astrasim_interconnect import AstraSim, AstraSimOptions, chakra_trace
from ntframe_plugins.interconnect_native import NativeInterconnect, NativeInterconnectOptions
from tests.conftest import ROOT

GOLDEN = ROOT / "tests" / "golden" / "astrasim"
MiB = 2 ** 20


@pytest.mark.parametrize("kind", ["all_reduce", "all_gather", "all_to_all", "reduce_scatter"])
def test_chakra_traces_are_the_generators_byte_for_byte(kind):
    """tests/golden/astrasim/et: ASTRA-sim's generator scripts (examples/workload/microbenchmarks/
    generator_scripts/<kind>.py --npus-count 4 --coll-size 1, protobuf 4.21) wrote these for cubes 0 and 1."""
    for cube in (0, 1):
        expected = (GOLDEN / "et" / f"{kind}.{cube}.et").read_bytes()
        assert chakra_trace(cube, f"{kind}_4npus_1MB", kind, MiB) == expected


def fake_astrasim(folder, lines: str, code: int = 0):
    """A stand-in for AstraSim_Analytical_Congestion_Aware that prints ``lines`` and copies its inputs aside."""
    exe = folder / "AstraSim_Analytical_Congestion_Aware"
    exe.write_text(f"#!/bin/sh\ncp network.yml system.json {folder}/\nls workload > {folder}/workload.txt\n"
                   f"printf '{lines}'\nexit {code}\n")
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    return exe


def test_inputs_and_output_through_a_stand_in_program(tmp_path, monkeypatch):
    """4 cubes in a ring (2 links to each neighbour, 30 GB/s each way): ASTRA-sim is given the pair's 60 GB/s less
    the packets' header and tail (128 of every 144 bytes), in its GB of 2^30 bytes, 4.6 ns a hop, the ring
    algorithm, one trace per cube; the time is the slowest cube's, the energy the ring's traffic (the native
    model's for the same algorithm)."""
    monkeypatch.setenv("NTFRAME_ASTRASIM", str(fake_astrasim(tmp_path, "sys[0], Comm time: 1000\\n"
                                                             "sys[1], Comm time: 1200\\nsys[2], Comm time: 1100\\n"
                                                             "sys[3], Comm time: 900\\n")))
    monkeypatch.setenv("NTFRAME_WORK_DIR", str(tmp_path / "work"))
    ring = Topology("ring", 4)
    request = Collective("all_reduce", 16 * MiB, (0, 1, 2, 3))
    cost = AstraSim().collective(ring, request)
    assert cost.time_s == pytest.approx(1200e-9) and cost.algorithm == "ring"
    native = NativeInterconnect(NativeInterconnectOptions(algorithm="ring")).collective(ring, request)
    assert cost.energy_pJ == native.energy_pJ and cost.link_bytes == native.link_bytes
    network = (tmp_path / "network.yml").read_text()
    bandwidth = float(network.split("bandwidth: [ ")[1].split(" ]")[0])
    assert bandwidth == pytest.approx(2 * 30e9 * 128 / 144 / 2 ** 30, rel=1e-12)
    assert "topology: [ Ring ]" in network and "npus_count: [ 4 ]" in network and "latency: [ 4.6 ]" in network
    system = (tmp_path / "system.json").read_text()
    assert '"all-reduce-implementation": [\n  "ring"\n ]' in system and '"endpoint-delay": 1' in system
    assert (tmp_path / "workload.txt").read_text().split() == [f"all_reduce.{i}.et" for i in range(4)]
    assert not any((tmp_path / "work").iterdir())                 # a run that succeeded leaves nothing


def test_a_failing_or_silent_program_is_reported_with_its_files_kept(tmp_path, monkeypatch):
    monkeypatch.setenv("NTFRAME_WORK_DIR", str(tmp_path / "work"))
    request = Collective("all_reduce", MiB, (0, 1, 2, 3))
    monkeypatch.setenv("NTFRAME_ASTRASIM", str(fake_astrasim(tmp_path, "assertion failed\\n", code=134)))
    with pytest.raises(ToolError, match="failed with exit code 134: .*assertion failed") as err:
        AstraSim().collective(Topology("ring", 4), request)
    assert "rerun: cd " in err.value.fix
    monkeypatch.setenv("NTFRAME_ASTRASIM", str(fake_astrasim(tmp_path, "sys[0], Comm time: 5\\n")))
    with pytest.raises(ToolError, match=r"Comm time' for cubes \[0\] of 0-3"):
        AstraSim().collective(Topology("ring", 4), request)
    monkeypatch.setenv("NTFRAME_ASTRASIM", str(tmp_path / "nowhere"))
    with pytest.raises(ToolError, match="NTFRAME_ASTRASIM=.*does not name an executable"):
        AstraSim().check_available()


def test_what_astra_sim_and_ntframe_do_not_share_is_refused():
    model = AstraSim()
    with pytest.raises(ValueError, match="topology torus2d is not translated"):
        model._translate(Topology("torus2d", 4), Collective("all_reduce", MiB, (0, 1, 2, 3)))
    with pytest.raises(ValueError, match="this group is 2 of 4"):
        model._translate(Topology("ring", 4), Collective("all_reduce", MiB, (0, 1)))
    with pytest.raises(ValueError, match="send is not translated"):
        model._translate(Topology("ring", 4), Collective("send", MiB, (0, 1)))
    with pytest.raises(ValueError, match="all-to-all on a ring"):
        model._translate(Topology("ring", 4), Collective("all_to_all", MiB, (0, 1, 2, 3)))
    network, algorithm, size = model._translate(Topology("ring", 4), Collective("all_gather", 4 * MiB, (0, 1, 2, 3)))
    assert (algorithm, size) == ("ring", MiB)          # ASTRA-sim's all-gather size is each cube's share
    assert model._translate(Topology("ring", 2), Collective("all_reduce", MiB, (0, 1)))[0].startswith(
        "topology: [ FullyConnected ]")                 # its congestion-aware Ring of 2 aborts


LIVE = os.environ.get("NTFRAME_ASTRASIM")


@pytest.mark.skipif(not LIVE, reason="NTFRAME_ASTRASIM is not set (the folder of ASTRA-sim's analytical-backend "
                                     "programs, built from astra-sim/astra-sim)")
@pytest.mark.parametrize("backend", ["congestion_aware", "congestion_unaware"])
def test_live_astra_sim_agrees_with_the_native_model(backend):
    """On HMC links (30 GB/s, 4.6 ns, packets of 128 bytes), ring all-reduce and reduce-scatter on 4 and 8 cubes
    in a ring, direct all-reduce and all-to-all on 4 fully connected cubes: within 0.5 % of the native model."""
    cases = [(Topology("ring", p), kind) for p in (4, 8) for kind in ("all_reduce", "reduce_scatter")]
    cases += [(Topology("fully_connected", 4, Links(per_cube=3)), kind) for kind in ("all_reduce", "all_to_all")]
    model = AstraSim(AstraSimOptions(backend=backend))
    for topology, kind in cases:
        request = Collective(kind, 16 * MiB, tuple(range(topology.cubes)))
        theirs = model.collective(topology, request)
        ours = NativeInterconnect(NativeInterconnectOptions(algorithm=theirs.algorithm)).collective(topology, request)
        assert theirs.time_s == pytest.approx(ours.time_s, rel=0.005), (topology.kind, topology.cubes, kind)
