"""The ``astra-sim`` interconnect model: ASTRA-sim 2.0's analytical network backend (astra-sim/astra-sim) through a
subprocess, for the collectives and topologies both it and ntframe describe.

The program: ``AstraSim_Analytical_Congestion_Aware`` (default) or ``..._Congestion_Unaware`` (``backend``), found
through ``NTFRAME_ASTRASIM`` (the program, or the folder holding them) or ``PATH``. ASTRA-sim is served by no
package index: build it from source (``docs/compare.md``); ntframe never needs it.

**Inputs**, written into a fresh folder per collective (kept, with the command that reruns it, when the run fails):

* the workload: one Chakra execution trace per cube (``<kind>.<cube>.et``), a single collective node of the
  request's size, written by :func:`chakra_trace` without the protobuf library — byte for byte what ASTRA-sim's own
  generator scripts write (``tests/golden/astrasim/et``);
* the network (``network.yml``): ``ring`` → ``Ring`` (collectives by ``ring``), ``fully_connected`` →
  ``FullyConnected`` (by ``direct``); a 2-cube ring is written as ``FullyConnected`` (the same two cubes and
  links; ASTRA-sim's congestion-aware ``Ring`` of 2 aborts). Bandwidth: a neighbour pair's links (parallel links x
  lanes x lane rate), scaled by the request's data over its bytes on the wire (HMC packets' header and tail, which
  ASTRA-sim does not model), written in ASTRA-sim's GB/s of 2^30 bytes; latency: the links' ns per hop;
* the system (``system.json``): the algorithm for every collective, the collective as one chunk
  (``preferred-dataset-splits`` 1, one active chunk), ``endpoint-delay`` 1 ns (0 aborts), and a local memory of
  ``local_mem_bw_GBps`` (10^6 by default: ASTRA-sim charges each reduction step 3 x size / that bandwidth, which
  ntframe counts as the cubes' work, not the links').

**Sizes**: ntframe's convention (:mod:`ntframe.system.collectives`) becomes ASTRA-sim's — its all-gather size is
each cube's share (N/P), the others the buffer (N).

**Output**: the time is the largest ``sys[N], Comm time: <ns>`` over the cubes; every cube must report one. The
energy is the algorithm's traffic on the links (:func:`ntframe.system.wire_traffic`: ASTRA-sim reports none), the
same as the ``native`` model's for the same algorithm.

Not translated (refused with the reason): ``chain``, ``mesh2d``, ``torus2d`` and ``host_star``; a group that is not
every cube; ``send``; an all-to-all on a ring (ASTRA-sim's ring all-to-all forwards around the ring, which is another
algorithm than ntframe's ``direct``).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, PositiveFloat

import ntframe
from ntframe.components import InterconnectModel
from ntframe.errors import ToolError
from ntframe.interop.external import (cleanup, find_binary, parse_failure, program_identity, read_stats, rerun,
                                      run_tool, workdir)
from ntframe.system import Collective, CollectiveCost, Topology, algorithm_steps, wire_traffic

PROGRAMS = {"congestion_aware": "AstraSim_Analytical_Congestion_Aware",
            "congestion_unaware": "AstraSim_Analytical_Congestion_Unaware"}
FIX = ("build astra-sim/astra-sim (its analytical backend: build/astra_analytical/build.sh) and set "
       "NTFRAME_ASTRASIM=/path/to/build/astra_analytical/build/bin")
COMM_TYPE = {"all_reduce": 0, "all_gather": 2, "all_to_all": 6, "reduce_scatter": 7}
"""Chakra's CollectiveCommType values (et_def.proto)."""
NETWORK = {"ring": ("Ring", "ring"), "fully_connected": ("FullyConnected", "direct")}
"""ntframe topology -> (ASTRA-sim topology, the algorithm both use)."""
ASTRA_GB = 2 ** 30
"""ASTRA-sim reads the network's GB/s as 2^30 bytes a second (astra-network-analytical NetworkFunction.cpp)."""
COMM_TIME = re.compile(r"sys\[(\d+)\],? Comm time: (\d+(?:\.\d+)?)")


class AstraSimOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    backend: Literal["congestion_aware", "congestion_unaware"] = "congestion_aware"
    """Which analytical backend: congestion-aware (links shared by the messages on them) or unaware."""
    local_mem_bw_GBps: PositiveFloat = 1e6
    """system.json's local-mem-bw (decimal GB/s): ASTRA-sim charges each reduction step 3 x size / it."""
    timeout_s: PositiveFloat = 300.0
    """A run taking longer is stopped (its process group) and reported."""


# --- Chakra execution traces, without protobuf ---------------------------------------------------------------

def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number: int, value: int | bytes) -> bytes:
    """A protobuf field: a varint (wire type 0) or length-delimited bytes (wire type 2)."""
    if isinstance(value, bytes):
        return _varint(number << 3 | 2) + _varint(len(value)) + value
    return _varint(number << 3) + _varint(value)


def chakra_trace(node_id: int, name: str, kind: str, size_bytes: int) -> bytes:
    """One cube's Chakra execution trace holding one collective: GlobalMetadata(version 0.0.4), then a Node
    (type COMM_COLL_NODE) with the attributes is_cpu_op false, comm_type and comm_size, each message prefixed by
    its length — as ASTRA-sim's generator scripts write them."""
    def attribute(attr: str, field: int, value: int) -> bytes:
        return _field(10, _field(1, attr.encode()) + _field(field, value))

    metadata = _field(1, b"0.0.4")
    node = ((_field(1, node_id) if node_id else b"") + _field(2, name.encode()) + _field(3, 7)
            + attribute("is_cpu_op", 27, 0) + attribute("comm_type", 9, COMM_TYPE[kind])
            + attribute("comm_size", 9, size_bytes))
    return _varint(len(metadata)) + metadata + _varint(len(node)) + node


# --- the model -----------------------------------------------------------------------------------------------

class AstraSim(InterconnectModel):
    name = "astra-sim"
    description = "ASTRA-sim 2.0's analytical network backend (subprocess; ring and fully connected systems)"
    Options = AstraSimOptions

    def _program(self) -> str:
        return find_binary("NTFRAME_ASTRASIM", [PROGRAMS[self.options.backend]], PROGRAMS[self.options.backend], FIX)

    def check_available(self) -> None:
        self._program()

    def cache_identity(self) -> dict[str, str]:
        return program_identity(self._program())

    def collective(self, topology: Topology, request: Collective) -> CollectiveCost:
        network, algorithm, size = self._translate(topology, request)
        steps = algorithm_steps(request, topology, algorithm)
        if steps is None:                 # _translate chose an algorithm that applies: a bug if not
            raise ValueError(f"{request.kind}: algorithm {algorithm} does not apply")
        energy_pJ, per_edge = wire_traffic(topology, steps)
        p = topology.cubes
        if p == 1 or request.bytes == 0:
            return CollectiveCost(0.0, energy_pJ, algorithm, len(steps), per_edge, ("astra-sim: nothing to send",))
        program = self._program()
        folder = workdir(f"ntframe-astrasim-{request.kind}-")
        (folder / "workload").mkdir()
        for cube in range(p):
            (folder / "workload" / f"{request.kind}.{cube}.et").write_bytes(
                chakra_trace(cube, f"{request.kind}_{p}npus", request.kind, size))
        (folder / "network.yml").write_text(network)
        (folder / "system.json").write_text(json.dumps(self._system(algorithm), indent=1))
        (folder / "remote_memory.json").write_text(json.dumps({"memory-type": "NO_MEMORY_EXPANSION"}))
        argv = [program, f"--workload-configuration=workload/{request.kind}", "--system-configuration=system.json",
                "--remote-memory-configuration=remote_memory.json", "--network-configuration=network.yml",
                "--logging-folder=log"]
        what = f"ASTRA-sim ({self.options.backend}) on {request.kind} of {request.bytes:g} bytes among {p} cubes"
        run_tool(argv, folder, self.options.timeout_s, what)
        try:
            text = read_stats(folder / "stdout.txt")
        except (OSError, ValueError) as exc:
            raise parse_failure(what, folder, str(exc), argv) from None
        times = {int(cube): float(ns) for cube, ns in COMM_TIME.findall(text)}
        if sorted(times) != list(range(p)):
            raise parse_failure(what, folder, f"'sys[N], Comm time' for cubes {sorted(times)} of 0-{p - 1}", argv)
        time_ns = max(times.values())
        if not time_ns > 0:
            raise ToolError(f"{what} reported {time_ns} ns; files kept in {folder}", fix=rerun(folder, argv))
        cleanup(folder)
        return CollectiveCost(time_ns * 1e-9, energy_pJ, algorithm, len(steps), per_edge,
                              (f"astra-sim {self.options.backend}: time from ASTRA-sim, energy from the algorithm's "
                               "traffic on the links",))

    def _translate(self, topology: Topology, request: Collective) -> tuple[str, str, int]:
        """(network.yml, the algorithm, ASTRA-sim's collective size) for ``request`` on ``topology``."""
        kind = topology.kind
        if kind not in NETWORK:
            raise ValueError(f"astra-sim: topology {kind} is not translated (ring and fully_connected are)")
        if request.kind not in COMM_TYPE:
            raise ValueError(f"astra-sim: {request.kind} is not translated (collectives among every cube are)")
        if sorted(request.group) != list(range(topology.cubes)):
            raise ValueError(f"astra-sim runs a collective among every cube; this group is {len(request.group)} of "
                             f"{topology.cubes}")
        name, algorithm = NETWORK["fully_connected" if topology.cubes == 2 else kind]
        if request.kind == "all_to_all" and algorithm == "ring":
            raise ValueError("astra-sim: an all-to-all on a ring is another algorithm there (forwarded around the "
                             "ring) than ntframe's direct one")
        p, links = topology.cubes, topology.links
        share = request.bytes / p                         # what every step of both algorithms sends
        efficiency = share / links.wire_bytes(share) if share else 1.0
        bandwidth = topology.parallel * links.bandwidth_GBps * 1e9 * efficiency / ASTRA_GB
        size = int(round(share if request.kind == "all_gather" else request.bytes))
        network = (f"topology: [ {name} ]\nnpus_count: [ {p} ]\nbandwidth: [ {bandwidth!r} ]  # GB/s of 2^30 bytes\n"
                   f"latency: [ {links.latency_ns!r} ]  # ns\n")
        return network, algorithm, size

    def _system(self, algorithm: str) -> dict:
        """system.json: ``algorithm`` (ntframe's name is ASTRA-sim's for ring and direct) for every collective."""
        return {"scheduling-policy": "LIFO", "endpoint-delay": 1, "active-chunks-per-dimension": 1,
                "preferred-dataset-splits": 1, "all-reduce-implementation": [algorithm],
                "all-gather-implementation": [algorithm], "reduce-scatter-implementation": [algorithm],
                "all-to-all-implementation": [algorithm], "collective-optimization": "localBWAware",
                "local-mem-bw": self.options.local_mem_bw_GBps, "boost-mode": 0}


@ntframe.hookimpl
def ntframe_register_interconnects(register):
    register(AstraSim)
