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
key order, descriptions, sources, the architecture's ``name``, the file's name and figures it does not give (an
optional attribute left out, even one added to the schema later) do not change it, so they
change no result (it seeds the mapping search and keys the mapping cache); ``file_sha256`` is the bytes' hash.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, Callable, Literal

from pydantic import (BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt, StringConstraints, ValidationError,
                      model_validator)

from ntframe.errors import SpecError
from ntframe.hardware.technology import ComponentEstimate, EstimateRequest, Technology, check, energy_attributes
from ntframe.workload.ir import Phase
from ntframe.yamlio import load_yaml, validate


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)    # a figure is a finite number


class Spatial(_Strict):
    meshX: PositiveInt = 1
    meshY: PositiveInt = 1


class StorageAttributes(_Strict):
    capacity_bytes: PositiveInt | None = None
    """Capacity of one instance; omitted means unbounded (DRAM)."""
    bandwidth_GBps: PositiveFloat | None = None
    """Bandwidth of one instance in GB/s (10^9 bytes per second); or give ``bandwidth_bytes_per_cycle``."""
    bandwidth_bytes_per_cycle: PositiveFloat | None = None
    read_energy_pJ_per_bit: float | None = Field(None, ge=0)
    """Required, from the file or from the component's estimator."""
    write_energy_pJ_per_bit: float | None = Field(None, ge=0)
    activation_energy_pJ: float | None = Field(None, ge=0)
    """DRAM: energy of one activate + precharge of a row (memory backends that model banks read it)."""
    array_energy_pJ_per_bit: float | None = Field(None, ge=0)
    """DRAM: energy per bit moved between the array and the logic die (array and TSVs), activations aside."""
    logic_energy_pJ_per_bit: float | None = Field(None, ge=0)
    """DRAM: energy per bit in the logic die's vault controller (what an engine on the logic die pays besides the
    array and TSVs; counted in the ``logic_die`` power scope)."""
    host_link_energy_pJ_per_bit: float | None = Field(None, ge=0)
    """DRAM: energy per bit a host's access pays on top of an engine's (the cube's switch and SerDes links); the
    logic die's engines never pay it (memory backends charge it to host traffic only)."""
    area_um2: float | None = Field(None, ge=0)
    """Area of one instance at the node its figures were measured at (the estimator scales it)."""
    static_power_mW: float | None = Field(None, ge=0)
    """Leakage power of one instance, likewise."""
    timings: dict[str, float] = {}
    """DRAM: timing parameters by name (the hmc-analytic bank model reads the numeric fields of
    ntframe.memory.hmc_bank.HMCParams: tCK_ns, tCL, tRCD, ...)."""

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
    area_um2: float | None = Field(None, ge=0)
    """Area of one instance at the node its figures were measured at (the estimator scales it)."""
    static_power_mW: float | None = Field(None, ge=0)
    """Leakage power of one instance, likewise."""


Factor = PositiveInt | Annotated[str, StringConstraints(pattern=r"^<=\s*[1-9][0-9]*$")]
"""A loop factor in a constraint: exactly ``n``, or at most ``n`` written ``"<=n"``."""


class StorageConstraints(_Strict):
    """What a storage level allows, in Timeloop's constraint vocabulary. Tensors are named as the operations
    name them (``I``, ``W``, ``O``, ``dO``, ``dI``, ``dW``, …) or by role: ``output`` (what the operation writes),
    ``operands`` (what it only reads); dimensions by their letters. A name an operation lacks does not apply to it."""

    keep: list[str] = []
    """Tensors this level must hold (never bypassed)."""
    bypass: list[str] = []
    """Tensors that must pass this level by (never held here)."""
    permutation: list[str] | str = []
    """Loop order at this level, innermost first as in Timeloop (``"RSC"`` or ``[R, S, C]``); the loops listed
    sit innermost in that order, the others above them in any order."""
    factors: dict[str, Factor] = {}
    """Temporal loop factors at this level, per dimension: ``4`` exactly, ``"<=8"`` at most."""

    @model_validator(mode="after")
    def _consistent(self) -> "StorageConstraints":
        both = sorted(set(self.keep) & set(self.bypass))
        if both:
            raise ValueError(f"{', '.join(both)} cannot be both kept and bypassed")
        order = list(self.permutation)
        if len(set(order)) != len(order):
            raise ValueError("permutation names a dimension twice")
        return self


class SpatialConstraints(_Strict):
    """What a fan-out allows (on the ``!Container`` whose instances it spreads work over)."""

    dims: list[str] | None = None
    """Dimensions that may be split across the instances (omitted: any)."""
    factors: dict[str, Factor] = {}
    """Spatial factors per dimension: ``4`` exactly, ``"<=8"`` at most."""
    no_spatial_reduction: bool = False
    """No partial sums across the instances: only dimensions that index what the operation writes may be split."""


class TechnologySpec(_Strict):
    """A process node and supply: on the architecture, the node it is built in (the target its components are
    estimated at); on a component, where the file's figures for it were measured (default: the architecture's)."""

    node_nm: PositiveFloat
    supply_V: PositiveFloat | None = None
    """Omitted: the node's nominal supply (:func:`ntframe.hardware.technology.nominal_supply_V`)."""

    def technology(self) -> Technology:
        return Technology(self.node_nm, self.supply_V)


class Container(_Strict):
    tag: Literal["Container"] = Field(alias="_tag")
    name: str
    spatial: Spatial = Spatial()
    constraints: SpatialConstraints | None = None
    description: str = ""
    sources: dict[str, str] = {}


class StorageComponent(_Strict):
    tag: Literal["Component"] = Field(alias="_tag")
    name: str
    class_: Literal["DRAM", "SRAM", "regfile"] = Field(alias="class")
    attributes: StorageAttributes
    spatial: Spatial = Spatial()
    constraints: StorageConstraints | None = None
    description: str = ""
    technology: TechnologySpec | None = None
    estimator: str = "table"
    """The component estimator (a plugin's) that gives its figures at the architecture's technology."""
    sources: dict[str, str]


class NetworkAttributes(_Strict):
    hop_energy_pJ_per_bit: float = Field(ge=0)
    """Energy to move one bit across one link of the mesh (router included)."""
    link_bandwidth_bytes_per_cycle: PositiveFloat
    """Bandwidth of one directional link."""
    area_um2: float | None = Field(None, ge=0)
    """Area of one router (with its links) at the node its figures were measured at (the estimator scales it)."""
    static_power_mW: float | None = Field(None, ge=0)
    """Leakage power of one router (with its links), likewise."""


class NetworkComponent(_Strict):
    tag: Literal["Component"] = Field(alias="_tag")
    name: str
    class_: Literal["network"] = Field(alias="class")
    attributes: NetworkAttributes
    description: str = ""
    technology: TechnologySpec | None = None
    estimator: str = "table"
    """The component estimator (a plugin's) that gives its figures at the architecture's technology."""
    sources: dict[str, str]


class ComputeComponent(_Strict):
    tag: Literal["Component"] = Field(alias="_tag")
    name: str
    class_: Literal["compute"] = Field(alias="class")
    attributes: ComputeAttributes
    spatial: Spatial = Spatial()
    description: str = ""
    technology: TechnologySpec | None = None
    estimator: str = "table"
    """The component estimator (a plugin's) that gives its figures at the architecture's technology."""
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
    technology: TechnologySpec | None = None
    """The node the architecture is built in; omitted: every component's figures as the file gives them."""
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
    activation_energy_pJ: float | None = None       # DRAM bank-model figures (see StorageAttributes)
    array_energy_pJ_per_bit: float | None = None
    logic_energy_pJ_per_bit: float | None = None
    timings: tuple[tuple[str, float], ...] = ()
    host_link_energy_pJ_per_bit: float | None = None


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
class Estimated:
    """How one component's figures were resolved (Accelergy's ERT rows, with their provenance)."""

    component: str
    component_class: str
    estimator: str                  # "as given" where the architecture names no technology
    plugin: str                     # the estimator's plugin and version, "" where none ran
    measured_at: str                # the technology of the file's figures ("" without one)
    target: str
    energies: dict                  # the energy attributes as the run uses them
    scale: dict
    source: str                     # the estimator's
    sources: dict                   # the file's, per energy attribute
    instances: int = 0              # in the whole system (a network: its routers)
    area_um2: float | None = None   # per instance, at the target (None: unknown)
    static_power_mW: float | None = None


@dataclass(frozen=True)
class MappingRules:
    """The mapping constraints of an architecture (its file's, with a spec's added): per storage level (outermost
    first) and per fan-out row (into each storage level, then into the compute units), ``None`` where free."""

    levels: tuple[StorageConstraints | None, ...]
    rows: tuple[SpatialConstraints | None, ...]

    def any(self) -> bool:
        return any(c is not None for c in self.levels + self.rows)

    def to_dict(self) -> dict:
        return {"levels": [c.model_dump() if c else None for c in self.levels],
                "rows": [c.model_dump() if c else None for c in self.rows]}


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
    constraints: MappingRules | None = None     # None: no constraint beyond levels, fan-outs and capacities
    technology: Technology | None = None
    estimates: tuple[Estimated, ...] = ()       # per component, how its figures were resolved

    @property
    def fanouts(self) -> tuple[int, ...]:
        """Fan-out into each storage level, then into the compute units: len(levels) + 1 entries."""
        return tuple(level.fanout for level in self.levels) + (self.compute.fanout,)

    @property
    def peak_ops_per_cycle(self) -> int:
        return self.compute.instances * self.compute.ops_per_cycle

    def silicon(self) -> dict[str, dict]:
        """Area and static power, summed over every instance, of the logic die (every component but DRAM) and of
        the DRAM: ``{"logic_die": {"area_um2", "static_power_mW", "unknown_area", "unknown_static"}, "dram":
        {...}}``, the ``unknown_*`` lists naming the components whose figure no file or estimator gave (their
        share is left out of the sums, not guessed)."""
        out: dict[str, dict] = {}
        for scope, members in (("logic_die", [e for e in self.estimates if e.component_class != "DRAM"]),
                               ("dram", [e for e in self.estimates if e.component_class == "DRAM"])):
            out[scope] = {
                "area_um2": sum(e.area_um2 * e.instances for e in members if e.area_um2 is not None),
                "static_power_mW": sum(e.static_power_mW * e.instances for e in members
                                       if e.static_power_mW is not None),
                "unknown_area": [e.component for e in members if e.area_um2 is None],
                "unknown_static": [e.component for e in members if e.static_power_mW is None]}
        return out


def _mesh(spatial: Spatial) -> int:
    return spatial.meshX * spatial.meshY


def _merge_factors(a: dict, b: dict) -> dict:
    """Both factor constraints at once; ValueError where they name one dimension differently."""
    for d, f in b.items():
        if d in a and a[d] != f:
            raise ValueError(f"factor of {d} {f} conflicts with {a[d]}")
    return {**a, **b}


def _merge_storage(a: StorageConstraints | None, b: StorageConstraints | None) -> StorageConstraints | None:
    """Both sets of constraints at once (a study's added to the hardware's); ValueError where they conflict."""
    if a is None or b is None:
        return a or b
    order_a, order_b = list(a.permutation), list(b.permutation)
    short, long = sorted((order_a, order_b), key=len)
    if long[:len(short)] != short:
        raise ValueError(f"permutation {''.join(order_b)} conflicts with {''.join(order_a)}")
    return StorageConstraints(keep=sorted(set(a.keep) | set(b.keep)), bypass=sorted(set(a.bypass) | set(b.bypass)),
                              permutation=long, factors=_merge_factors(a.factors, b.factors))


def _merge_spatial(a: SpatialConstraints | None, b: SpatialConstraints | None) -> SpatialConstraints | None:
    if a is None or b is None:
        return a or b
    dims = b.dims if a.dims is None else a.dims if b.dims is None else [d for d in a.dims if d in b.dims]
    return SpatialConstraints(dims=dims, factors=_merge_factors(a.factors, b.factors),
                              no_spatial_reduction=a.no_spatial_reduction or b.no_spatial_reduction)


Estimate = Callable[[str, EstimateRequest], tuple[ComponentEstimate, str]]
"""``(estimator name, request) -> (estimate, "plugin version")``: the host's component estimators."""


def _estimate(node, body: ArchitectureBody, estimate: Estimate | None, pos, loc: tuple,
              instances: int, built_in: Technology | None) -> tuple[object, Estimated]:
    """The component's attributes at the architecture's technology, by its estimator, and the record of it."""
    attributes = node.attributes
    energies = energy_attributes(attributes.model_dump())
    sources = {k: node.sources.get(k, "") for k in energies}
    given = (attributes.area_um2, attributes.static_power_mW)
    if body.technology is None:
        return attributes, Estimated(node.name, node.class_, "as given", "", "", "", energies, {},
                                     "the file's figures (the architecture names no technology)", sources,
                                     instances, *given)
    target = built_in or body.technology.technology()
    measured = (node.technology or body.technology).technology()
    try:
        check(measured)
    except SpecError as exc:
        raise pos.error(f"component '{node.name}': {exc}", loc + ("technology",)) from None
    if estimate is None:
        if node.estimator != "table" or measured != target:
            raise ValueError(f"{body.name}: component '{node.name}' needs the component estimators (estimator "
                             f"'{node.estimator}', {measured.label()} to {target.label()}): load it with "
                             "ntframe.load_architecture, or through a run, which have the plugins")
        return attributes, Estimated(node.name, node.class_, "table", "", measured.label(), target.label(),
                                     energies, {"energy": 1.0, "area": 1.0}, "the file's figures, at the target",
                                     sources, instances, *given)
    request = EstimateRequest(node.name, node.class_, attributes.model_dump(exclude_none=True), measured, target,
                              body.clock_GHz)
    try:
        got, plugin = estimate(node.estimator, request)
    except SpecError as exc:
        raise pos.error(f"component '{node.name}': {exc}", loc + ("estimator",)) from None
    allowed = energy_attributes(dict.fromkeys(type(attributes).model_fields, 0))
    wrong = sorted(k for k, v in got.energies.items() if k not in allowed or not _finite(v))
    wrong += [k for k, v in (("area_um2", got.area_um2), ("static_power_mW", got.static_power_mW))
              if v is not None and not _finite(v)]
    if wrong:
        raise pos.error(f"component '{node.name}': estimator '{node.estimator}' ({plugin}) returned {', '.join(wrong)}"
                        f" not as finite figures, 0 or more, of this component's attributes ({', '.join(allowed)}, "
                        "area_um2, static_power_mW)", loc + ("estimator",))
    energies = {**energies, **got.energies}
    return (attributes.model_copy(update=got.energies),
            Estimated(node.name, node.class_, node.estimator, plugin, measured.label(), target.label(), energies,
                      dict(got.scale), got.source, sources, instances, got.area_um2, got.static_power_mW))


def _finite(value) -> bool:
    values = value.values() if isinstance(value, dict) else [value]
    return all(isinstance(v, (int, float)) and math.isfinite(v) and v >= 0 for v in values)


def load_architecture(path: str | Path, *, cubes: int = 1,
                      precision_override: dict[Phase, int] | None = None,
                      constraints: dict[str, dict] | None = None, estimate: Estimate | None = None,
                      technology: Technology | None = None) -> Architecture:
    """Read, validate and flatten an architecture file. ``cubes`` multiplies the outermost fan-out;
    ``constraints`` (node name -> constraints as a mapping, a spec's) are added to the file's: a storage component
    takes :class:`StorageConstraints`, a container :class:`SpatialConstraints`; ``ValueError`` names the key.
    With a ``technology``, every component's figures come from its estimator (``estimate``, the host's); without
    ``estimate``, a file whose figures would need scaling or a plugin's estimator is refused. ``technology`` (a
    spec's ``architecture.technology``) builds the architecture at another node than the file's: the components'
    figures still come from where the file says they were measured; ``ValueError`` (starting "technology") for a
    file that names no technology, or a node the scaling does not cover."""
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
    extra = dict(constraints or {})
    level_rules: list[StorageConstraints | None] = []
    row_rules: list[SpatialConstraints | None] = []
    pending_rule: SpatialConstraints | None = None
    estimates: list[Estimated] = []
    if body.technology is not None and "technology" not in body.sources:
        raise pos.error("a technology without a source (say in 'sources: {technology: ...}' where the node comes "
                        "from, or tag it [A])", ("architecture", "sources"))
    if body.technology is not None:
        try:
            check(body.technology.technology())
        except SpecError as exc:
            raise pos.error(str(exc), ("architecture", "technology")) from None
    if technology is not None:
        if body.technology is None:
            raise ValueError(f"technology: {path} names no technology its figures were measured at, so they cannot "
                             "be built at another node: add architecture.technology to it (with its source)")
        try:
            check(technology)
        except SpecError as exc:
            raise ValueError(f"technology: {exc}") from None
    for i, raw in enumerate(body.nodes):
        loc = ("architecture", "nodes", i)
        if compute is not None:
            raise pos.error("the compute component must be the last node", loc)
        kind = _node_kind(raw)
        if not isinstance(raw, dict) or raw.get("_tag") not in ("Container", "Component"):
            raise pos.error("each node must be a !Container or a !Component mapping", loc)
        node = validate(kinds[kind], raw, pos.sub(loc), prefix=loc)
        declared = getattr(node, "attributes", None)        # as the file gives them (each needs its source)
        if not isinstance(node, Container):
            if node.technology is not None and "technology" not in node.sources:
                raise pos.error("a technology without a source (say in 'sources: {technology: ...}' where the "
                                "figures were measured, or tag it [A])", loc + ("sources",))
            attributes, record = _estimate(node, body, estimate, pos, loc,
                                           total * _mesh(getattr(node, "spatial", Spatial())), technology)
            node = node.model_copy(update={"attributes": attributes})
            estimates.append(record)
            unset = [k for k in ("read_energy_pJ_per_bit", "write_energy_pJ_per_bit")
                     if isinstance(node, StorageComponent) and getattr(attributes, k) is None]
            if unset:
                raise pos.error(f"component '{node.name}' has no {' and no '.join(unset)}: give them under its "
                                f"attributes, each with its source, or name an estimator that gives them",
                                loc + ("attributes",))
        if isinstance(node, NetworkComponent):
            if storage or network_node:
                raise pos.error("a network component is supported once, before the outermost storage level "
                                "(it connects that level's instances, e.g. the vaults)", loc)
            missing = [k for k in declared.model_dump(exclude_none=True) if k not in node.sources]
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
        own = getattr(node, "constraints", None)
        if own is not None and "constraints" not in node.sources:
            raise pos.error("constraints without a source (say in 'sources: {constraints: ...}' where they come "
                            "from, or tag them [A])", loc + ("sources",))
        if node.name in extra:
            if isinstance(node, ComputeComponent):
                raise ValueError(f"constraints.{node.name}: the compute component takes no constraints (constrain "
                                 "the container above it or a storage level)")
            wanted = SpatialConstraints if isinstance(node, Container) else StorageConstraints
            try:
                added = wanted.model_validate(extra.pop(node.name))
                own = (_merge_spatial if wanted is SpatialConstraints else _merge_storage)(own, added)  # type: ignore[arg-type]
            except ValidationError as exc:
                err = exc.errors()[0]
                where = ".".join(str(x) for x in err["loc"])
                kind = "a container's (dims, factors, no_spatial_reduction)" if wanted is SpatialConstraints else \
                    "a storage level's (keep, bypass, permutation, factors)"
                raise ValueError(f"constraints.{node.name}{'.' + where if where else ''}: {err['msg']} "
                                 f"('{node.name}' takes {kind})") from None
            except ValueError as exc:
                raise ValueError(f"constraints.{node.name}: {exc}") from None
        if isinstance(node, Container):
            try:
                pending_rule = _merge_spatial(pending_rule, own)
            except ValueError as exc:
                raise pos.error(str(exc), loc + ("constraints",)) from None
        if isinstance(node, (StorageComponent, ComputeComponent)):
            missing = [k for k, v in declared.model_dump(exclude_none=True, exclude_unset=True).items()
                       if k not in node.sources]
            if missing:
                raise pos.error(f"attributes without a source: {', '.join(missing)} (every number needs "
                                f"its source or an [A] assumption tag in 'sources')", loc + ("sources",))
        if isinstance(node, StorageComponent):
            a = node.attributes
            bpc = a.bandwidth_bytes_per_cycle or a.bandwidth_GBps / body.clock_GHz  # type: ignore[operator]
            gbps = a.bandwidth_GBps or a.bandwidth_bytes_per_cycle * body.clock_GHz  # type: ignore[operator]
            storage.append(StorageLevel(node.name, node.class_, pending_fanout, total, a.capacity_bytes, bpc,
                                        a.read_energy_pJ_per_bit, a.write_energy_pJ_per_bit, gbps,
                                        a.activation_energy_pJ, a.array_energy_pJ_per_bit, a.logic_energy_pJ_per_bit,
                                        tuple(sorted(a.timings.items())), a.host_link_energy_pJ_per_bit))
            level_rules.append(own)
            row_rules.append(pending_rule)
            pending_rule = None
            pending_fanout = 1
        elif isinstance(node, ComputeComponent):
            a = node.attributes
            compute = ComputeUnit(node.name, pending_fanout, total, dict(a.mac_energy_pJ), dict(a.add_energy_pJ),
                                  a.ops_per_cycle)
            row_rules.append(pending_rule)
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
    if extra:
        raise ValueError(f"constraints name nodes the architecture lacks: {', '.join(sorted(extra))} (its nodes: "
                         f"{', '.join(str(n.get('name')) for n in body.nodes if isinstance(n, dict))})")
    if network is not None:             # a network's instances are its routers, one per vault
        estimates = [dataclasses.replace(e, instances=network.mesh[0] * network.mesh[1])
                     if e.component == network.name else e for e in estimates]
    rules = MappingRules(tuple(level_rules), tuple(row_rules))
    meaning = {"clock_GHz": body.clock_GHz, "cubes": cubes,
               "precision_bits": {phase.value: bits for phase, bits in precision.items()},
               "levels": [{k: v for k, v in asdict(level).items() if v is not None} for level in storage],
               "compute": asdict(compute),
               "network": asdict(network) if network else None}
    if rules.any():                       # absent when free, so an unconstrained architecture keeps its identity
        meaning["constraints"] = rules.to_dict()
    digest = hashlib.sha256(json.dumps(meaning, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    if network_node and network is None:
        raise pos.error("the network component must be followed by the container whose instances it connects "
                        "(with spatial: {meshX, meshY})", network_node[1])
    return Architecture(body.name, body.clock_GHz, precision, tuple(storage), compute, str(path), digest, network,
                        hashlib.sha256(path.read_bytes()).hexdigest(), rules if rules.any() else None,
                        technology or (body.technology.technology() if body.technology else None), tuple(estimates))


__all__ = ["Architecture", "Estimate", "Estimated", "TechnologySpec", "StorageLevel", "ComputeUnit", "MappingRules",
           "StorageConstraints", "SpatialConstraints", "load_architecture"]
