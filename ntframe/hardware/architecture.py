"""Architecture specs in Timeloop/Accelergy vocabulary, validated and flattened into a level list.

A spec file holds ``architecture: {version, name, clock_GHz, precision_bits, nodes: [...]}``. ``nodes`` is a
Timeloop v0.4-style list from the outside in: ``!Container`` nodes (optionally ``spatial: {meshX, meshY}``,
which multiplies the instances of everything below) and ``!Component`` nodes with a ``class`` (``DRAM``,
``SRAM``, ``regfile`` storage, or ``compute``) and ``attributes``. Each component carries ``sources``: for every
attribute, where its number comes from (tags [P] paper, [S] third-party summary, [I] inference, [A] assumption).

Flattened, the storage components become :class:`StorageLevel` s (outermost first); each has a ``fanout``, the
number of its instances under one instance of the storage level above (for the outermost level: under the
root). The last component must be the compute unit.

``Architecture.content_sha256`` identifies what the architecture means: the flattened levels, compute units and
network with every number (and the spec's ``cubes`` and precision overrides), not the file's bytes. Comments,
key order, descriptions, sources, the architecture's ``name`` and the file's name do not change it, so they
change no result (it seeds the mapping search and keys the mapping cache); ``file_sha256`` is the bytes' hash.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt, model_validator

from ntframe.workload.ir import Phase
from ntframe.yamlio import load_yaml, validate


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Spatial(_Strict):
    meshX: PositiveInt = 1
    meshY: PositiveInt = 1


class StorageAttributes(_Strict):
    capacity_bytes: PositiveInt | None = None
    """Capacity of one instance; omitted means unbounded (DRAM)."""
    bandwidth_GBps: PositiveFloat | None = None
    """Bandwidth of one instance in GB/s (10^9 bytes per second); or give ``bandwidth_bytes_per_cycle``."""
    bandwidth_bytes_per_cycle: PositiveFloat | None = None
    read_energy_pJ_per_bit: float = Field(ge=0)
    write_energy_pJ_per_bit: float = Field(ge=0)

    @model_validator(mode="after")
    def _one_bandwidth(self) -> "StorageAttributes":
        if (self.bandwidth_GBps is None) == (self.bandwidth_bytes_per_cycle is None):
            raise ValueError("give exactly one of bandwidth_GBps and bandwidth_bytes_per_cycle")
        return self


class ComputeAttributes(_Strict):
    mac_energy_pJ: dict[PositiveInt, float]
    """Energy of one multiply-accumulate, by operand precision in bits."""
    add_energy_pJ: dict[PositiveInt, float]
    """Energy of one add/compare, by operand precision in bits."""
    ops_per_cycle: PositiveInt = 1


class Container(_Strict):
    tag: Literal["Container"] = Field(alias="_tag")
    name: str
    spatial: Spatial = Spatial()
    description: str = ""
    sources: dict[str, str] = {}


class StorageComponent(_Strict):
    tag: Literal["Component"] = Field(alias="_tag")
    name: str
    class_: Literal["DRAM", "SRAM", "regfile"] = Field(alias="class")
    attributes: StorageAttributes
    spatial: Spatial = Spatial()
    description: str = ""
    sources: dict[str, str]


class NetworkAttributes(_Strict):
    hop_energy_pJ_per_bit: float = Field(ge=0)
    """Energy to move one bit across one link of the mesh (router included)."""
    link_bandwidth_bytes_per_cycle: PositiveFloat
    """Bandwidth of one directional link."""


class NetworkComponent(_Strict):
    tag: Literal["Component"] = Field(alias="_tag")
    name: str
    class_: Literal["network"] = Field(alias="class")
    attributes: NetworkAttributes
    description: str = ""
    sources: dict[str, str]


class ComputeComponent(_Strict):
    tag: Literal["Component"] = Field(alias="_tag")
    name: str
    class_: Literal["compute"] = Field(alias="class")
    attributes: ComputeAttributes
    spatial: Spatial = Spatial()
    description: str = ""
    sources: dict[str, str]


def _node_kind(value: object) -> str:
    if isinstance(value, dict):
        if value.get("_tag") == "Container":
            return "container"
        return {"compute": "compute", "network": "network"}.get(str(value.get("class")), "storage")
    return "storage"


class ArchitectureBody(_Strict):
    version: Literal[0.4, "0.4"]
    name: str
    clock_GHz: PositiveFloat
    precision_bits: dict[Phase, PositiveInt]
    description: str = ""
    sources: dict[str, str] = {}
    nodes: list[dict]


class ArchitectureFile(_Strict):
    architecture: ArchitectureBody


@dataclass(frozen=True)
class StorageLevel:
    name: str
    cls: str
    fanout: int                  # instances under one instance of the level above (root for level 0)
    instances: int               # instances in the whole system
    capacity_bytes: int | None
    bytes_per_cycle: float
    read_energy_pJ_per_bit: float
    write_energy_pJ_per_bit: float
    bandwidth_GBps: float        # per instance


@dataclass(frozen=True)
class ComputeUnit:
    name: str
    fanout: int                  # units under one instance of the innermost storage level
    instances: int
    mac_energy_pJ: dict[int, float]
    add_energy_pJ: dict[int, float]
    ops_per_cycle: int

    def energy_pJ(self, action: str, bits: int) -> float:
        table = self.mac_energy_pJ if action == "mac" else self.add_energy_pJ
        if bits in table:
            return table[bits]
        raise KeyError(f"compute unit '{self.name}' has no {action} energy for {bits}-bit operands "
                       f"(has {sorted(table)})")


@dataclass(frozen=True)
class Interconnect:
    """The logic-die network between the instances of the outermost storage level (the vaults): a 2D mesh.
    Data that several vaults need is read once from DRAM and sent to the others; partial sums that several
    vaults produce are sent to one and added there."""

    name: str
    mesh: tuple[int, int]           # routers in X and Y (cubes extend Y)
    hop_energy_pJ_per_bit: float
    link_bandwidth_bytes_per_cycle: float

    @property
    def average_hops(self) -> float:
        """Mean Manhattan distance between two uniformly chosen routers of the mesh."""
        x, y = self.mesh
        return (x - 1 / x) / 3 + (y - 1 / y) / 3

    @property
    def links(self) -> int:
        """Directional links of the mesh."""
        x, y = self.mesh
        return 2 * (x * (y - 1) + y * (x - 1))


@dataclass(frozen=True)
class Architecture:
    name: str
    clock_GHz: float
    precision_bits: dict[Phase, int]
    levels: tuple[StorageLevel, ...]
    compute: ComputeUnit
    source: str
    content_sha256: str             # what the architecture means (see the module docstring)
    network: Interconnect | None = None
    file_sha256: str = ""           # the file's bytes

    @property
    def fanouts(self) -> tuple[int, ...]:
        """Fan-out into each storage level, then into the compute units: len(levels) + 1 entries."""
        return tuple(level.fanout for level in self.levels) + (self.compute.fanout,)

    @property
    def peak_ops_per_cycle(self) -> int:
        return self.compute.instances * self.compute.ops_per_cycle


def _mesh(spatial: Spatial) -> int:
    return spatial.meshX * spatial.meshY


def load_architecture(path: str | Path, *, cubes: int = 1,
                      precision_override: dict[Phase, int] | None = None) -> Architecture:
    """Read, validate and flatten an architecture file. ``cubes`` multiplies the outermost fan-out."""
    path = Path(path)
    data, pos = load_yaml(path)
    spec = validate(ArchitectureFile, data, pos)
    body = spec.architecture
    storage: list[StorageLevel] = []
    compute: ComputeUnit | None = None
    pending_fanout, total = cubes, cubes
    kinds = {"container": Container, "storage": StorageComponent, "compute": ComputeComponent,
             "network": NetworkComponent}
    network_node: tuple[NetworkComponent, tuple] | None = None
    network: Interconnect | None = None
    for i, raw in enumerate(body.nodes):
        loc = ("architecture", "nodes", i)
        if compute is not None:
            raise pos.error("the compute component must be the last node", loc)
        kind = _node_kind(raw)
        if not isinstance(raw, dict) or raw.get("_tag") not in ("Container", "Component"):
            raise pos.error("each node must be a !Container or a !Component mapping", loc)
        node = validate(kinds[kind], raw, pos.sub(loc), prefix=loc)
        if isinstance(node, NetworkComponent):
            if storage or network_node:
                raise pos.error("a network component is supported once, before the outermost storage level "
                                "(it connects that level's instances, e.g. the vaults)", loc)
            missing = [k for k in node.attributes.model_dump() if k not in node.sources]
            if missing:
                raise pos.error(f"attributes without a source: {', '.join(missing)}", loc + ("sources",))
            network_node = (node, loc)
            continue
        mesh = _mesh(node.spatial)
        if network_node and not storage and isinstance(node, Container) and mesh > 1:
            net, _ = network_node
            network = Interconnect(net.name, (node.spatial.meshX, node.spatial.meshY * cubes),
                                   net.attributes.hop_energy_pJ_per_bit, net.attributes.link_bandwidth_bytes_per_cycle)
        pending_fanout *= mesh
        total *= mesh
        if isinstance(node, (StorageComponent, ComputeComponent)):
            missing = [k for k, v in node.attributes.model_dump(exclude_none=True, exclude_unset=True).items()
                       if k not in node.sources]
            if missing:
                raise pos.error(f"attributes without a source: {', '.join(missing)} (every number needs "
                                f"its source or an [A] assumption tag in 'sources')", loc + ("sources",))
        if isinstance(node, StorageComponent):
            a = node.attributes
            bpc = a.bandwidth_bytes_per_cycle or a.bandwidth_GBps / body.clock_GHz  # type: ignore[operator]
            gbps = a.bandwidth_GBps or a.bandwidth_bytes_per_cycle * body.clock_GHz  # type: ignore[operator]
            storage.append(StorageLevel(node.name, node.class_, pending_fanout, total, a.capacity_bytes, bpc,
                                        a.read_energy_pJ_per_bit, a.write_energy_pJ_per_bit, gbps))
            pending_fanout = 1
        elif isinstance(node, ComputeComponent):
            a = node.attributes
            compute = ComputeUnit(node.name, pending_fanout, total, dict(a.mac_energy_pJ), dict(a.add_energy_pJ),
                                  a.ops_per_cycle)
    if compute is None or not storage:
        raise pos.error("an architecture needs at least one storage component and a final compute component",
                        ("architecture", "nodes"))
    precision = dict(body.precision_bits)
    missing_phases = [p.value for p in Phase if p not in precision]
    if missing_phases:
        raise pos.error(f"precision_bits lacks phases: {', '.join(missing_phases)}",
                        ("architecture", "precision_bits"))
    precision.update(precision_override or {})
    for phase, bits in precision.items():
        for table in (compute.mac_energy_pJ, compute.add_energy_pJ):
            if bits not in table:
                raise pos.error(f"phase {phase.value} uses {bits}-bit operands but compute '{compute.name}' has "
                                f"energies only for {sorted(table)} bits", ("architecture", "nodes"))
    meaning = {"clock_GHz": body.clock_GHz, "cubes": cubes,
               "precision_bits": {phase.value: bits for phase, bits in precision.items()},
               "levels": [asdict(level) for level in storage], "compute": asdict(compute),
               "network": asdict(network) if network else None}
    digest = hashlib.sha256(json.dumps(meaning, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    if network_node and network is None:
        raise pos.error("the network component must be followed by the container whose instances it connects "
                        "(with spatial: {meshX, meshY})", network_node[1])
    return Architecture(body.name, body.clock_GHz, precision, tuple(storage), compute, str(path), digest, network,
                        hashlib.sha256(path.read_bytes()).hexdigest())


__all__ = ["Architecture", "StorageLevel", "ComputeUnit", "load_architecture"]
