"""``zigzag`` cost model and ``zigzag-loma`` searcher: KU Leuven's ZigZag (``zigzag-dse``) on ntframe's
operations, architectures and mappings.

Translation (ntframe → ZigZag), per operation:

* **Layer**: ZigZag layers are ``O[...] += W[...] * I[...]`` — one written tensor and exactly two read tensors, a
  multiply-accumulate (conv and matrix-product operations of every phase). The first read tensor becomes ``I``,
  the second ``W``; an index that is a sum of loop dimensions (a sliding window, with its stride or dilation
  coefficients) becomes a ``dimension_relation`` (``ia=2*p+1*r``), on inputs and outputs alike (backward-data
  writes through one). Precisions are the tensors' (``O`` and ``O_final`` both the output's: ntframe keeps partial
  sums at the output precision). Padding is not expressed: ZigZag sizes a windowed tensor from the loop bounds,
  a little larger than the padded-and-clipped tensor ntframe counts.
* **Hardware**: one ZigZag memory per storage level (innermost first), holding the tensors the mapping keeps
  there (ntframe's bypass becomes the memory's operand list); one operational-array dimension per fan-out
  greater than one (``D1``, ``D2``, ... outermost first: the instances of a level under one parent, or the
  compute units under a register file). A memory is private along the fan-outs at or above it and shared
  (``served_dimensions``) along the fan-outs below it — so the 32 vault DRAMs are 32 instances, as in Timeloop.
  One read-write port per memory at the level's bandwidth; ``r_cost``/``w_cost`` are the level's energies per
  bit times the port width, with ``bandwidth_min`` 8 bits, so an access costs exactly its bits (ZigZag's
  ``ceil(bits / bw_min) * bw_min / bw_max`` accesses). The MAC costs the compute unit's energy for the action.
* **Mapping** (cost model): held fixed exactly. Each level's temporal loops become that level's loops of every
  tensor stored there (a bypassed tensor's loops go to the next level up that stores it); the spatial splits
  become the spatial mapping of the matching array dimensions. ZigZag's cost model is then called directly
  (``CostModelEvaluation``): its own allocator and searches are not involved, so the mapping is ntframe's.
* **Search** (``zigzag-loma``): the vault split is fixed (ntframe's search with the same cost model and
  constraints, as for ``timeloop-mapper``, or the spec's ``vault_split``, checked against them); ZigZag generates
  the other spatial mappings and runs LOMA (``lpf_limit``, deterministic; in a child process stopped at the
  budget's seconds) with even temporal mappings (every tensor splits its loops at the same levels, which
  ntframe's mapping format needs); ZigZag does not search bypass (every tensor is kept at every level it is given).
* **Constraints** (``zigzag-loma``, :func:`loma_plan`): the architecture's (and the spec's ``mapper.constraints``)
  in ZigZag's own inputs where it has them — a bypass is the memory's operand list (a kept tensor is listed);
  allowed spatial dimensions and ``no_spatial_reduction`` are the array dimension's ``spatial_mapping_hint``;
  exact spatial factors fix its user ``spatial_mapping`` (only those dimensions are unrolled there; a factor of 1
  keeps a dimension off); the innermost level's ``permutation`` is a loop-order ``PermutationConstraint`` on
  LOMA's orderings (the listed loops open the nest, in that order). Time-step loops are never hinted and close
  every ordering. Refused, with a :class:`MappingError` naming each: temporal factors at a level (LOMA's
  allocator, ``opt/loma/memory_allocator.py``, fills each level innermost first with as many loops as fit; it
  takes no factor per level), a permutation at any other level (ZigZag's loop-order constraints are positions in
  the whole nest) and bounded spatial factors (``"<=n"``: the generator takes no bound). Inside ZigZag's pipeline
  two ntframe stages drop what ntframe would refuse — spatial mappings that break the constraints or do not
  divide a loop bound (before LOMA runs on them), temporal mappings that do not translate back, do not fit
  ntframe's capacities, misplace a time-step loop or break a constraint (before ZigZag prices them) — and the
  result is checked again (``violations``) before it is returned.

What does not translate (the cost model says why in its result): operations that are not a two-input
multiply-accumulate (element-wise, bias, activation, pooling, optimiser updates); the logic-die network between
the vaults (not in ZigZag); ntframe's DRAM line granularity (ZigZag counts bits). Cycles are ZigZag's
``latency_total2`` — ideal cycles plus port stalls plus on- and off-loading — which do not separate the DRAM's
share, so ``on_die_cycles`` equals ``cycles``.
"""

from __future__ import annotations

import logging
import math
import tempfile
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, PositiveInt

import ntframe
from ntframe.components import Budget, CostModel, MappingSearcher
from ntframe.errors import MappingError, PluginError, ToolError
from ntframe.hardware import Architecture
from ntframe.mapping import LevelMapping, Mapping, structural_problems
from ntframe.mapping.constraints import Constraints, for_operation, violations
from ntframe.mapping.mapspace import Problem
from ntframe.mapping.nest import capacity_problems
from ntframe.mapping.search import vault_split
from ntframe.results import ComputeCost, LevelCost, SearchResult, bytes_by_tensor
from ntframe.workload import Operation

ZIGZAG_FIX = "pip install 'ntframe[zigzag]'  (zigzag-dse 3.9 and six, which zigzag imports without declaring it)"
NOTES = ("ZigZag has no logic-die network: data several vaults use is read from each vault's DRAM",
         "ZigZag's cycles include DRAM stalls and on/off-loading (on-die cycles are not separated)")


def _zigzag():
    """Import ZigZag's pieces (1-1.5 s the first time), quietly."""
    try:
        import six  # noqa: F401  (zigzag imports it without declaring it)
        from zigzag.cost_model.cost_model import CostModelEvaluation
        from zigzag.datatypes import LayerDim, LayerOperand
        from zigzag.mapping.temporal_mapping import TemporalMapping, TemporalMappingType
        from zigzag.parser.accelerator_factory import AcceleratorFactory
        from zigzag.parser.accelerator_validator import AcceleratorValidator
        from zigzag.parser.mapping_validator import MappingValidator
        from zigzag.parser.workload_factory import LayerNodeFactory
        from zigzag.parser.workload_validator import WorkloadValidator
    except ImportError as exc:
        raise ToolError(f"ZigZag is not importable ({exc})", fix=ZIGZAG_FIX) from None
    logging.getLogger("zigzag").setLevel(logging.ERROR)
    return {"CostModelEvaluation": CostModelEvaluation, "LayerDim": LayerDim, "LayerOperand": LayerOperand,
            "TemporalMapping": TemporalMapping, "TemporalMappingType": TemporalMappingType,
            "AcceleratorFactory": AcceleratorFactory, "AcceleratorValidator": AcceleratorValidator,
            "MappingValidator": MappingValidator, "LayerNodeFactory": LayerNodeFactory,
            "WorkloadValidator": WorkloadValidator}


class NotTranslatable(ValueError):
    """The operation or mapping has no ZigZag equivalent (the reason is the message)."""


# --- translation --------------------------------------------------------------------------------------------

def operand_names(op: Operation) -> dict[str, str]:
    """ntframe data-space name -> ZigZag operand (I, W, O)."""
    reads = [t for t in op.tensors if not t.written]
    written = [t for t in op.tensors if t.written]
    if op.action != "mac" or len(reads) != 2 or len(written) != 1 or any(t.name in {r.name for r in reads}
                                                                       for t in written):
        raise NotTranslatable(f"ZigZag layers are O += W * I (two inputs, one output, a multiply-accumulate); "
                              f"this operation is {op.kind.value} ({op.action}), with {len(reads)} input(s) and "
                              f"{len(written)} output(s)")
    return {reads[0].name: "I", reads[1].name: "W", written[0].name: "O"}


def layer_dict(op: Operation) -> dict[str, Any]:
    names = operand_names(op)
    relations: list[str] = []
    index_names = iter(f"i{chr(97 + k)}" for k in range(26))

    def index(axis) -> str:
        if len(axis) == 1 and axis[0][1] == 1:
            return axis[0][0].lower()
        if len(axis) < 2:
            raise NotTranslatable(f"{op.name}: an index {axis} with a stride but no window has no ZigZag relation")
        name = next(index_names)
        relations.append(f"{name}=" + "+".join(f"{c}*{d.lower()}" for d, c in axis))
        return name

    parts = {}
    for t in op.tensors:
        parts[names[t.name]] = names[t.name] + "".join(f"[{index(axis)}]" for axis in t.projection)
    precision = {names[t.name]: t.precision_bits for t in op.tensors}
    precision["O_final"] = precision["O"]
    return {"id": 0, "name": op.name.replace(".", "_"), "operator_type": "Conv" if op.kind.value == "conv" else "Gemm",
            "equation": f"{parts['O']}+={parts['W']}*{parts['I']}", "dimension_relations": relations,
            "loop_dims": [d for d, _ in op.dims], "loop_sizes": [b for _, b in op.dims],
            "operand_precision": precision, "operand_source": {"I": 0, "W": 0}}


MEMORY_OPERAND = {"I": "I1", "W": "I2", "O": "O"}


def array_dims(arch: Architecture) -> list[tuple[str, int, int]]:
    """(ZigZag dimension, fan-out, index in arch.fanouts) for every fan-out greater than one."""
    used = [(f, i) for i, f in enumerate(arch.fanouts) if f > 1]
    return [(f"D{k + 1}", f, i) for k, (f, i) in enumerate(used)]


def _port_bits(level) -> int:
    """A memory's one read-write port: the level's bandwidth per cycle, in bits (8 at least)."""
    return max(8, int(round(level.bytes_per_cycle * 8)))


def hardware_dict(op: Operation, arch: Architecture, bypass: Sequence[Collection[str]] | None = None) -> dict[str, Any]:
    """ZigZag's accelerator: ``bypass`` holds, per level (outermost first), the tensors it does not hold (a
    mapping's bypass, or a constraint's); without it every level holds every tensor."""
    names = operand_names(op)
    dims = array_dims(arch)
    memories = {}
    for lvl in range(len(arch.levels) - 1, -1, -1):              # innermost first
        spec = arch.levels[lvl]
        kept = [t for t in op.tensors if bypass is None or t.name not in bypass[lvl]]
        operands = [MEMORY_OPERAND[names[t.name]] for t in kept]
        allocation = []
        for mo in operands:
            allocation += ([f"{mo}, tl", f"{mo}, th", f"{mo}, fh", f"{mo}, fl"] if mo == "O"
                           else [f"{mo}, tl", f"{mo}, fh"])
        width = _port_bits(spec)
        size = spec.capacity_bytes * 8 if spec.capacity_bytes is not None else 2 ** 50
        memories[spec.name] = {
            "size": int(size), "r_cost": spec.read_energy_pJ_per_bit * width,
            "w_cost": spec.write_energy_pJ_per_bit * width, "area": 0.0, "latency": 1, "operands": operands,
            "ports": [{"name": "rw_port_1", "type": "read_write", "bandwidth_min": 8, "bandwidth_max": width,
                       "allocation": allocation}],
            "served_dimensions": [d for d, _, i in dims if i > lvl]}
    bits = max(t.precision_bits for t in op.tensors)
    return {"name": arch.name.replace("/", "_"), "memories": memories, "operational_array": {
        "unit_energy": arch.compute.energy_pJ(op.action, bits) * op.ops_per_point, "unit_area": 1.0,
        "dimensions": [d for d, _, _ in dims] or ["D1"], "sizes": [f for _, f, _ in dims] or [1]}}


def spatial_dict(op: Operation, arch: Architecture, rows: list[tuple]) -> dict[str, list[str]]:
    """ZigZag's user spatial mapping from ntframe's spatial rows (one per fan-out, compute last)."""
    out = {}
    first = op.dims[0][0]
    for d, _, i in array_dims(arch):
        loops = [f"{dim}, {f}" for dim, f in rows[i] if f > 1]
        out[d] = loops or [f"{first}, 1"]
    for i, row in enumerate(rows):
        if arch.fanouts[i] == 1 and any(f > 1 for _, f in row):
            raise NotTranslatable(f"spatial split {row} under a level without fan-out")
    return out


def mapping_entry(op: Operation, spatial: dict[str, list[str]], hints: dict[str, list[str]] | None = None) \
        -> dict[str, Any]:
    """ZigZag's mapping input: the user spatial mapping (array dimension -> ``"M, 4"`` unrollings, fixed) and the
    spatial-mapping hints (array dimension -> the loop dimensions its generator may unroll there)."""
    entry: dict[str, Any] = {"name": "default", "spatial_mapping": spatial,
                             "memory_operand_links": {"O": "O", "W": "I2", "I": "I1"}}
    if hints:
        entry["spatial_mapping_hint"] = hints
    return entry


def temporal_per_operand(op: Operation, mapping: Mapping) -> dict[str, list[list[tuple[str, int]]]]:
    """Each ZigZag operand's loops per memory level that stores it, innermost level and loop first."""
    names = operand_names(op)
    out = {}
    for t in op.tensors:
        levels, current = [], []
        for lvl in range(len(mapping.levels) - 1, -1, -1):
            current += [(d, f) for d, f in reversed(mapping.levels[lvl].temporal) if f > 1]
            if t.name not in mapping.levels[lvl].bypass:
                levels.append(current)
                current = []
        out[names[t.name]] = levels
    return out


def _build(zz, op: Operation, arch: Architecture, bypass: Sequence[Collection[str]] | None, spatial: dict,
           hints: dict[str, list[str]] | None = None):
    validator = zz["AcceleratorValidator"](hardware_dict(op, arch, bypass))
    if not validator.validate():
        raise PluginError(f"ZigZag rejected the translated hardware: {validator.validator.errors}")
    accelerator = zz["AcceleratorFactory"](validator.normalized_data).create()
    wv = zz["WorkloadValidator"]([layer_dict(op)])
    mv = zz["MappingValidator"]([mapping_entry(op, spatial, hints)])
    if not wv.validate() or not mv.validate():
        raise PluginError(f"ZigZag rejected the translated layer or mapping for {op.name}")
    layer = zz["LayerNodeFactory"](wv.normalized_data[0], mv.normalized_data).create()
    return accelerator, layer


def evaluate_fixed(op: Operation, arch: Architecture, mapping: Mapping):
    """ZigZag's cost model on exactly this mapping: its CostModelEvaluation."""
    zz = _zigzag()
    from zigzag.stages.evaluation.cost_model_evaluation import CostModelStage
    from zigzag.stages.mapping.spatial_mapping_conversion import SpatialMappingConversionStage
    accelerator, layer = _build(zz, op, arch, [lvl.bypass for lvl in mapping.levels],
                                spatial_dict(op, arch, mapping.spatial_rows()))
    layer.spatial_mapping.initialize_oa_dims(accelerator.operational_array.dimension_sizes)
    sm, sm_int = SpatialMappingConversionStage([CostModelStage], accelerator=accelerator, layer=layer) \
        .convert_user_spatial_mapping(layer.spatial_mapping)
    LD, LO = zz["LayerDim"], zz["LayerOperand"]
    tmd = {LO(o): [[(LD(d), f) for d, f in lvl] for lvl in lvls] for o, lvls in temporal_per_operand(op, mapping).items()}
    tm = zz["TemporalMapping"](tmd, layer, zz["TemporalMappingType"].UNEVEN)
    return zz["CostModelEvaluation"](accelerator=accelerator, layer=layer, spatial_mapping=sm, spatial_mapping_int=sm_int,
                                     temporal_mapping=tm, access_same_data_considered_as_no_access=True)


def to_compute_cost(op: Operation, arch: Architecture, cme, notes: tuple[str, ...] = NOTES) -> ComputeCost:
    names = operand_names(op)
    back = {v: k for k, v in names.items()}
    bits = {names[t.name]: t.precision_bits for t in op.tensors}
    per_level: dict[str, dict[str, Any]] = {lvl.name: {"tensors": {}, "energy_pJ": 0.0} for lvl in arch.levels}
    hierarchy = cme.accelerator.memory_hierarchy
    by_name = {lvl.name: lvl for lvl in arch.levels}
    for operand in cme.layer.layer_operands:
        o = str(operand)
        mem_op = cme.layer.memory_operand_links.layer_to_mem_op(operand)
        for i, node in enumerate(hierarchy.get_memory_levels(mem_op)):
            name = node.name
            data = {str(k).split(".")[-1].lower(): v for k, v in cme.memory_word_access[operand][i].data.items()}
            energy = cme.mem_energy_breakdown[operand][i]
            w = _port_bits(by_name[name])                    # accesses are counted in port-width words
            elements = {k: v * w / bits[o] for k, v in data.items()}
            per_level[name]["tensors"][back[o]] = {
                "reads": elements.get("rd_out_to_low", 0.0) + elements.get("rd_out_to_high", 0.0),
                "fills": elements.get("wr_in_by_high", 0.0), "updates": elements.get("wr_in_by_low", 0.0),
                "energy_pJ": energy}
            per_level[name]["energy_pJ"] += energy
    levels = []
    for i, spec in enumerate(arch.levels):
        pl = per_level[spec.name]
        ts = pl["tensors"]
        rb = sum(t["reads"] * bits[names[n]] for n, t in ts.items())
        wb = sum((t["fills"] + t["updates"]) * bits[names[n]] for n, t in ts.items())
        levels.append(LevelCost(spec.name, spec.instances, sum(t["reads"] for t in ts.values()),
                                sum(t["fills"] for t in ts.values()), sum(t["updates"] for t in ts.values()),
                                rb, wb, pl["energy_pJ"], (rb + wb) / 8 / spec.instances / spec.bytes_per_cycle,
                                is_memory=(i == 0 and spec.cls == "DRAM"), tensors=ts))
    dram = levels[0].tensors
    cycles = float(cme.latency_total2)
    return ComputeCost(
        cycles=cycles, on_die_cycles=cycles, compute_cycles=float(cme.ideal_temporal_cycle),
        energy_pJ=float(cme.energy_total), compute_energy_pJ=float(cme.mac_energy),
        utilisation=op.points * op.ops_per_point / (arch.peak_ops_per_cycle * cycles) if cycles else 0.0,
        levels=tuple(levels),
        dram_read_bytes_by_tensor=bytes_by_tensor(op, {n: t["reads"] * bits[names[n]] / 8 for n, t in dram.items()}),
        dram_write_bytes_by_tensor=bytes_by_tensor(op, {n: t["updates"] * bits[names[n]] / 8 for n, t in dram.items()}),
        dram_instances=arch.levels[0].instances, notes=notes)


# --- components -----------------------------------------------------------------------------------------------

class ZigZagModel(CostModel):
    name = "zigzag"
    description = "KU Leuven ZigZag's cost model on exactly ntframe's mapping (conv and matrix products)"

    def check_available(self) -> None:
        _zigzag()

    def evaluate(self, operation: Operation, mapping: Mapping, architecture: Architecture) -> ComputeCost:
        try:
            cme = evaluate_fixed(operation, architecture, mapping)
        except NotTranslatable as exc:
            raise PluginError(f"not expressible in ZigZag: {exc}") from None
        return to_compute_cost(operation, architecture, cme)


class ZigZagLomaOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    objective: Literal["edp", "energy", "latency"] = "edp"
    """What LOMA minimises: energy x latency, energy or latency."""
    lpf_limit: PositiveInt = 6
    """LOMA's limit on loop prime factors (orderings grow factorially with it)."""
    spatial_mappings: PositiveInt = 3
    """Spatial mappings ZigZag generates and searches (besides the fixed vault split)."""
    vault_split: Literal["search"] | dict[str, PositiveInt] = "search"
    """As for timeloop-mapper: ntframe's search with the same cost model fixes the split over the vaults
    (a quarter of the budget, at least 200 evaluations), or explicit factors, e.g. {N: 32}; either honours the
    vault fan-out's mapping constraints (explicit factors that break them are an error)."""


class ZigZagLoma(MappingSearcher):
    name = "zigzag-loma"
    description = ("ZigZag's spatial-mapping generator and LOMA temporal search (vault split fixed); honours the "
                   "keep/bypass, spatial-dimension, exact spatial-factor and innermost-permutation constraints, "
                   "refuses the others with an error naming them")
    Options = ZigZagLomaOptions

    def check_available(self) -> None:
        _zigzag()

    def search(self, operation: Operation, architecture: Architecture, cost_model: CostModel, budget: Budget,
               seed: int) -> SearchResult:
        zz = _zigzag()
        started = time.perf_counter()
        try:
            operand_names(operation)
        except NotTranslatable as exc:
            raise PluginError(f"ZigZag cannot map this operation: {exc}") from None
        plan = loma_plan(operation, architecture)               # refuses what ZigZag cannot express, first
        objective = {"edp": "edp", "energy": "energy", "latency": "delay"}[self.options.objective]
        split = vault_split(operation, architecture, cost_model, budget, seed, objective, self.options.vault_split,
                            "zigzag-vault-split")
        problems = spatial_problems(plan.problem, plan.constraints, architecture, {0: split})
        if problems:
            raise MappingError(f"zigzag-loma: vault_split {dict(split)} for {operation.name}: {'; '.join(problems)}")
        left = budget.seconds - (time.perf_counter() - started)
        mapping, tally = _in_child(lambda: _loma(zz, operation, architecture, self.options, split, plan), left,
                                   f"ZigZag's LOMA on {operation.name}",
                                   "raise mapper.budget.seconds, or lower lpf_limit / spatial_mappings")
        if mapping is None:
            raise PluginError(f"ZigZag's LOMA found no mapping of {operation.name} that ntframe accepts "
                              f"({tally.summary()}); raise lpf_limit or spatial_mappings, or use the native mapper")
        problems = structural_problems(operation, mapping, architecture) or capacity_problems(operation, mapping,
                                                                                               architecture)
        if problems:
            raise PluginError(f"ZigZag's mapping for {operation.name} does not translate back: {'; '.join(problems)}")
        broken = violations(plan.problem, mapping, architecture, plan.constraints)
        if broken:
            raise PluginError(f"ZigZag's mapping for {operation.name} breaks the mapping constraints: "
                              f"{'; '.join(broken)}")
        cost = cost_model.evaluate(operation, mapping, architecture)
        return SearchResult(mapping, cost, evaluated=tally.evaluated, valid=tally.priced,
                            invalid_reasons=dict(tally.reasons), objective=self.options.objective)


# --- mapping constraints in ZigZag's terms -----------------------------------------------------------------------

OTHER_MAPPERS = "use the native or neurotrainer-dataflow mapper, which honour every kind"


@dataclass
class LomaPlan:
    """An operation's mapping constraints (and its time-step loops) as ZigZag's inputs."""

    problem: Problem
    constraints: Constraints
    """:func:`~ntframe.mapping.constraints.for_operation`'s: what every candidate and the result are checked
    against."""
    bypass: tuple[frozenset[str], ...]
    """Per level (outermost first): the tensors its ZigZag memory does not hold."""
    spatial: dict[int, tuple[tuple[str, int], ...]] = field(default_factory=dict)
    """Fan-out row -> its fixed unrollings (the exact spatial factors; nothing split where none is allowed)."""
    hints: dict[int, tuple[str, ...]] = field(default_factory=dict)
    """Fan-out row -> the dimensions ZigZag's generator may unroll there (rows not listed: any)."""
    innermost: tuple[str, ...] = ()
    """Dimensions whose loops open the whole loop nest, innermost first (the innermost level's permutation)."""
    outermost: tuple[str, ...] = ()
    """Time-step dimensions, whose loops close the nest, outermost first."""


def _factor_text(lo: int, hi: int) -> str:
    return str(lo) if lo == hi else f"'<={hi}'"


def loma_plan(op: Operation, arch: Architecture) -> LomaPlan:
    """The constraints of ``arch`` (the file's and the spec's ``mapper.constraints``) for ``op``, as ZigZag takes
    them: a bypass as the memory's operand list (a memory that does not list an operand passes it by; a kept
    tensor is listed, as every tensor is unless bypassed), allowed spatial dimensions and ``no_spatial_reduction``
    as the spatial-mapping hint of the array dimension, exact spatial factors as its fixed user spatial mapping,
    the innermost level's permutation as a loop-order constraint on LOMA's orderings. Time-step loops are never
    hinted and close every ordering. What ZigZag cannot express raises :class:`MappingError`, naming each."""
    problem = Problem(op)
    c = for_operation(problem, arch)
    K = len(arch.levels)
    names = [lvl.name for lvl in arch.levels] + [arch.compute.name]
    dims, bounds = problem.dims, dict(op.dims)
    seq = set(problem.sequential)
    refused: list[tuple[int, str]] = []

    def refuse(rank: int, where: str, what: str, why: str) -> None:        # rank: the node's place, outermost first
        refused.append((rank, f"{what} on {where} ({why})"))

    for (slot, d), (lo, hi) in sorted(c.factors.items()):
        if slot < K and not (lo == 1 and hi >= bounds[dims[d]]):
            refuse(2 * slot + 1, names[slot], f"factors: {{{dims[d]}: {_factor_text(lo, hi)}}}",
                   "LOMA takes no loop factor per memory level: its allocator fills each level, innermost first, "
                   "with as many loops as fit")
    for lvl, pinned in sorted(c.innermost.items()):
        if lvl < K - 1 and pinned:
            refuse(2 * lvl + 1, names[lvl], f"permutation: {''.join(dims[d] for d in reversed(pinned))}",
                   "ZigZag's loop-order constraints place loops in the whole nest, which pins the order of the "
                   "innermost level only")
    bypass = [set() for _ in range(K)]
    for (lvl, j), keep in c.keep.items():
        if not keep:
            bypass[lvl].add(problem.tensors[j].name)
    oa_rows = {row: fanout for _, fanout, row in array_dims(arch)}
    spatial: dict[int, tuple[tuple[str, int], ...]] = {}
    hints: dict[int, tuple[str, ...]] = {}
    for row in range(K + 1):
        where = f"the fan-out into {names[row]}"
        exact = {dims[d]: lo for (slot, d), (lo, hi) in sorted(c.factors.items())
                 if slot == K + row and lo == hi and lo > 1}
        if row not in oa_rows:
            if exact:
                raise MappingError(f"{where}: spatial factors {exact} need instances to split over; it has one")
            continue
        if row == 0:                    # the vault split: fixed by vault_split, under the same constraints
            continue
        allowed = (set(c.spatial[row]) if row in c.spatial else set(range(problem.D))) - seq - {-1}
        for (slot, d), (lo, hi) in sorted(c.factors.items()):
            if slot != K + row or lo == hi and lo > 1:
                continue
            if hi == 1:
                allowed.discard(d)
            elif hi < min(bounds[dims[d]], oa_rows[row]):
                refuse(2 * row, where, f"factors: {{{dims[d]}: {_factor_text(lo, hi)}}}",
                       "ZigZag's spatial-mapping generator takes fixed unrollings or the dimensions it may unroll, "
                       "not a bound on an unrolling")
        if exact:
            barred = sorted(d for d in exact if problem.index[d] not in allowed)
            if barred:
                raise MappingError(f"{where}: spatial factors {exact} split {', '.join(barred)}, which may not be "
                                   "split there")
            spatial[row] = tuple(exact.items())
        elif not allowed:
            spatial[row] = ()
        elif allowed != set(range(problem.D)):
            hints[row] = tuple(dims[d] for d in sorted(allowed))
    if refused:
        what = "this mapping constraint" if len(refused) == 1 else "these mapping constraints"
        raise MappingError(f"zigzag-loma cannot express {what} for {op.name}: "
                           f"{'; '.join(text for _, text in sorted(refused))}; {OTHER_MAPPERS}")
    pinned = c.innermost.get(K - 1, [])
    return LomaPlan(problem, c, tuple(frozenset(b) for b in bypass), spatial, hints,
                    innermost=tuple(dims[d] for d in reversed(pinned) if d not in seq),
                    outermost=tuple(dims[d] for d in problem.sequential))


def spatial_problems(problem: Problem, c: Constraints, arch: Architecture,
                     rows: dict[int, Sequence[tuple[str, int]]]) -> list[str]:
    """Where the spatial factors of ``rows`` (fan-out row -> (dimension, factor) pairs) break the constraints
    ``c``, split a time-step loop, exceed a fan-out or do not divide a loop bound: one line each."""
    K = len(arch.levels)
    names = [lvl.name for lvl in arch.levels] + [arch.compute.name]
    out: list[str] = []
    total: dict[str, int] = {}
    for row, pairs in sorted(rows.items()):
        where = f"spatial into {names[row]}"
        here: dict[str, int] = {}
        for d, f in pairs:
            if f == 1:
                continue
            if d not in problem.index:
                out.append(f"{where}: unknown dimension {d}")
                continue
            here[d] = here.get(d, 1) * f
            total[d] = total.get(d, 1) * f
            if problem.index[d] in problem.sequential:
                out.append(f"{where}: {d} is a time-step loop, it cannot be split")
            elif row in c.spatial and problem.index[d] not in c.spatial[row]:
                out.append(f"{where}: {d} may not be split there")
        for (slot, i), (lo, hi) in sorted(c.factors.items()):
            f = here.get(problem.dims[i], 1)
            if slot == K + row and (not lo <= f <= hi or f % lo):
                out.append(f"{where}: factor {f} of {problem.dims[i]}, allowed {lo if lo == hi else f'<= {hi}'}")
        if math.prod(here.values()) > arch.fanouts[row]:
            out.append(f"{where}: {math.prod(here.values())} instances used, {arch.fanouts[row]} there")
    for d, f in total.items():
        bound = int(problem.bounds[problem.index[d]])
        if bound % f:
            out.append(f"loop bounds: {d} split {f} ways, which does not divide its bound {bound}")
    return out


def _loop_order(innermost: tuple[str, ...], outermost: tuple[str, ...]):
    """ZigZag's loop-order constraint on LOMA's orderings (a ``PermutationConstraint``, which LOMA's engine applies
    to every ordering it generates, innermost loop first; ``LayerTemporalOrdering.get_constraints`` is where a
    mapping's ``temporal_ordering`` becomes one): the loops of ``innermost`` first, grouped in that order, those of
    ``outermost`` last (outermost first). Returned as the layer's temporal ordering, never complete, so LOMA
    searches under it."""
    from zigzag.opt.loma.multipermute import PermutationConstraint
    from zigzag.workload.layer_attributes import LayerTemporalOrdering
    inner = {d: k for k, d in enumerate(innermost)}
    outer = {d: k for k, d in enumerate(outermost)}

    def grouped(loops: list[str], rank: dict[str, int]) -> bool:
        head = loops[:sum(d in rank for d in loops)]
        return all(d in rank for d in head) and all(rank[a] <= rank[b] for a, b in zip(head, head[1:]))

    class Order(PermutationConstraint):
        def is_valid(self, permutation: list) -> bool:
            loops = [str(d) for d, _ in permutation]
            return grouped(loops, inner) and grouped(loops[::-1], outer)

        def is_empty(self) -> bool:
            return False

    class Ordering(LayerTemporalOrdering):
        def __init__(self) -> None:
            super().__init__([])

        def is_complete(self, temporal_loop_sizes) -> bool:
            return False

        def get_constraints(self) -> list:
            return [Order()]

    return Ordering()


@dataclass
class Tally:
    """What LOMA generated and what ntframe kept of it (returned from the child process)."""

    evaluated: int = 0
    priced: int = 0
    spatial_mappings: int = 0
    reasons: dict[str, int] = field(default_factory=dict)

    def drop(self, reason: str) -> None:
        self.reasons[reason] = self.reasons.get(reason, 0) + 1

    def summary(self) -> str:
        why = ", ".join(f"{reason}: {n}" for reason, n in sorted(self.reasons.items(), key=lambda x: -x[1]))
        return (f"{self.spatial_mappings} spatial mapping(s), {self.evaluated} candidate(s), none kept"
                + (f"; dropped: {why}" if why else ""))


def _reason(problem: str) -> str:
    """A dropped candidate's reason, without its numbers (one count per kind)."""
    return problem.split(":", 1)[0] if ":" in problem else problem


def _stages(op: Operation, arch: Architecture, plan: LomaPlan, split, objective: str, tally: Tally) -> list:
    """ZigZag's pipeline with ntframe's checks: after the spatial-mapping generator, a stage that drops spatial
    mappings breaking the constraints or not dividing the loop bounds (before LOMA runs on them); before the cost
    model, one that drops temporal mappings that do not translate into an ntframe mapping or that it refuses
    (fit, time-step loops, constraints); minimum stages like ZigZag's that keep the best candidate left, if any."""
    from zigzag.opt.loma.engine import NoValidLoopOrderingFoundException
    from zigzag.stages.evaluation.cost_model_evaluation import CostModelStage
    from zigzag.stages.mapping.spatial_mapping_generation import SpatialMappingGeneratorStage
    from zigzag.stages.mapping.temporal_mapping_generator_stage import TemporalMappingGeneratorStage
    from zigzag.stages.stage import Stage
    better = {"edp": lambda a, b: a.latency_total2 * a.energy_total < b.latency_total2 * b.energy_total,
              "energy": lambda a, b: a.energy_total < b.energy_total or (
                  a.energy_total == b.energy_total and a.latency_total2 < b.latency_total2),
              "latency": lambda a, b: a.latency_total2 < b.latency_total2 or (
                  a.latency_total2 == b.latency_total2 and a.energy_total < b.energy_total)}[objective]

    def sub(stage: Stage):
        return stage.list_of_callables[0](stage.list_of_callables[1:], **stage.kwargs).run()

    class Best(Stage):
        """ZigZag's Minimal*Stage (the same comparison), where no candidate left is no result, not an error."""

        def run(self):
            best = None
            try:
                for cme, _ in sub(self):
                    if best is None or better(cme, best):
                        best = cme
            except NoValidLoopOrderingFoundException:
                tally.drop("LOMA: no loop ordering fits the memories")
            if best is not None:
                yield best, []

    class SpatialCheck(Stage):
        def run(self):
            tally.spatial_mappings += 1
            rows = {0: split, **{row: _unrolled(self.kwargs["layer"], oa) for oa, _, row in array_dims(arch)
                                 if row != 0}}
            problems = spatial_problems(plan.problem, plan.constraints, arch, rows)
            if problems:
                tally.evaluated += 1
                tally.drop(f"spatial mapping: {_reason(problems[0])}")
                return
            yield from sub(self)

    class TemporalCheck(Stage):
        def run(self):
            tally.evaluated += 1
            try:
                mapping = mapping_from_zigzag(op, arch, self.kwargs["layer"], self.kwargs["temporal_mapping"],
                                              split, plan.bypass)
            except NotTranslatable as exc:
                tally.drop(f"does not translate: {_reason(str(exc))}")
                return
            problems = structural_problems(op, mapping, arch) or violations(plan.problem, mapping, arch,
                                                                            plan.constraints) \
                or capacity_problems(op, mapping, arch)
            if problems:
                tally.drop(_reason(problems[0]))
                return
            tally.priced += 1
            yield from sub(self)

    return [Best, SpatialMappingGeneratorStage, SpatialCheck, Best, TemporalMappingGeneratorStage, TemporalCheck,
            CostModelStage]


def _loma(zz, operation: Operation, architecture: Architecture, options: ZigZagLomaOptions, split,
          plan: LomaPlan) -> tuple[Mapping | None, Tally]:
    """ZigZag's spatial-mapping generator and LOMA with the vault split and the plan's fixed rows; the best
    mapping ntframe accepts, translated (None if none), and the tally."""
    from zigzag.stages.main import MainStage
    oa = {row: d for d, _, row in array_dims(architecture)}
    first = operation.dims[0][0]
    fixed = {**plan.spatial, 0: tuple(split)} if 0 in oa else dict(plan.spatial)
    spatial = {oa[row]: [f"{d}, {f}" for d, f in pairs] or ([f"{first}, 1"] if row else [])
               for row, pairs in fixed.items()}
    hints = {oa[row]: list(dims) for row, dims in plan.hints.items()}
    accelerator, layer = _build(zz, operation, architecture, plan.bypass, spatial, hints)
    if plan.innermost or plan.outermost:
        layer.temporal_ordering = _loop_order(plan.innermost, plan.outermost)
    tally = Tally()
    with tempfile.TemporaryDirectory(prefix="ntframe-zigzag-") as dump:
        results = MainStage(_stages(operation, architecture, plan, split, options.objective, tally),
                            accelerator=accelerator, layer=layer,
                            loma_lpf_limit=options.lpf_limit, loma_show_progress_bar=False,
                            nb_mappings_generated=options.spatial_mappings,
                            access_same_data_considered_as_no_access=True,
                            temporal_mapping_type=zz["TemporalMappingType"].EVEN, dump_folder=dump).run()
    if not results:
        return None, tally
    cme = results[0][0]
    return mapping_from_zigzag(operation, architecture, cme.layer, cme.temporal_mapping, split, plan.bypass), tally


def _in_child(work, seconds: float, what: str, fix: str):
    """``work()`` in a forked child process, killed after ``seconds`` (LOMA has no time limit of its own); its
    result or its exception comes back through a pipe."""
    import multiprocessing
    import traceback
    ctx = multiprocessing.get_context("fork")
    receive, send = ctx.Pipe(duplex=False)

    def child() -> None:
        try:
            send.send(("ok", work()))
        except BaseException as exc:  # report any failure to the parent, which attributes it
            send.send(("error", f"{type(exc).__name__}: {exc}", traceback.format_exc(limit=3)))

    proc = ctx.Process(target=child, daemon=True)
    proc.start()
    send.close()
    ready = receive.poll(max(0.1, seconds))
    try:
        message = receive.recv() if ready else None
    except EOFError:                     # the child died without a word (e.g. killed by the system)
        message = None
    proc.join(timeout=5)
    if proc.is_alive():
        proc.kill()
        proc.join()
    if message is None:
        if ready or proc.exitcode not in (None, 0, -9):
            raise PluginError(f"{what} ended without a result (exit code {proc.exitcode})")
        raise ToolError(f"{what} did not finish within the search budget ({seconds:.1f} s)", fix=fix)
    if message[0] == "error":
        raise PluginError(f"{what} failed: {message[1]}")
    return message[1]


def _unrolled(layer, oa: str) -> list[tuple[str, int]]:
    """ZigZag's unrollings on one array dimension, as (dimension, factor) pairs."""
    out = []
    for dim, f in (layer.spatial_mapping.data.get(_oa(oa), {}) or {}).items():
        if float(f) > 1:
            if float(f) != int(f):
                raise NotTranslatable(f"ZigZag unrolled {dim} by {f}, not a whole factor")
            out.append((str(dim), int(f)))
    return out


def mapping_from_zigzag(op: Operation, arch: Architecture, layer, temporal, split,
                        bypass: Sequence[Collection[str]] | None = None) -> Mapping:
    """ZigZag's (even) temporal mapping and spatial mapping (with the fixed vault ``split``) as an ntframe
    Mapping; ``bypass`` per level as in the hardware ZigZag was given.

    Every ZigZag operand has its loops per memory that holds it, innermost first, cut from one loop nest; a level
    of ntframe's holds the loops between its boundary and the next level down's, which every tensor it holds must
    agree on. Adjacent loops of one dimension in a level become one loop. A time-step loop LOMA leaves outermost
    at a lower level with nothing above it moves up to the outermost level (the same schedule: no loop above it
    repeats it)."""
    K = len(arch.levels)
    names = operand_names(op)
    bypass = bypass or [()] * K
    per_operand = {str(o): levels for o, levels in temporal.mapping_dic_origin.items()}
    nest: list[tuple[str, float]] | None = None
    boundary: dict[int, int] = {}
    for t in op.tensors:
        levels = per_operand[names[t.name]]
        stored = [lvl for lvl in range(K - 1, -1, -1) if t.name not in bypass[lvl]]        # innermost first
        if len(levels) != len(stored):
            raise NotTranslatable(f"ZigZag kept {t.name} at {len(levels)} levels, ntframe at {len(stored)}")
        loops = [(str(d), f) for level in levels for d, f in level]
        if nest is None:
            nest = loops
        elif loops != nest:
            raise NotTranslatable("ZigZag's tensors have different loop nests")
        count = 0
        for lvl, level in zip(stored, levels):
            count += len(level)
            if boundary.setdefault(lvl, count) != count:
                raise NotTranslatable(f"ZigZag splits the loops at {arch.levels[lvl].name} differently per tensor")
    assert nest is not None
    if any(float(f) != int(f) for _, f in nest):
        raise NotTranslatable("ZigZag used a fractional loop factor")
    per_level: list[list[tuple[str, int]]] = []
    below = 0
    for lvl in range(K - 1, -1, -1):
        top = boundary.get(lvl, below)
        if top < below:
            raise NotTranslatable(f"ZigZag's loops at {arch.levels[lvl].name} sit below a lower level's")
        merged: list[tuple[str, int]] = []
        for d, f in reversed(nest[below:top]):                             # outermost first
            if int(f) == 1:
                continue
            if merged and merged[-1][0] == d:
                merged[-1] = (d, merged[-1][1] * int(f))
            else:
                merged.append((d, int(f)))
        per_level.insert(0, merged)
        below = top
    if below != len(nest):
        raise NotTranslatable("ZigZag left loops above the outermost level")
    outer = next((lvl for lvl in range(K) if per_level[lvl]), 0)
    if outer > 0:
        moved = 0
        while moved < len(per_level[outer]) and per_level[outer][moved][0] in op.sequential:
            moved += 1
        per_level[0], per_level[outer] = per_level[outer][:moved], per_level[outer][moved:]
    rows: list[list[tuple[str, int]]] = [[] for _ in arch.fanouts]
    for d, _, i in array_dims(arch):
        rows[i] = _unrolled(layer, d)
    rows[0] = list(split)
    levels = [LevelMapping(arch.levels[lvl].name, tuple(per_level[lvl]), tuple(rows[lvl]),
                           tuple(sorted(bypass[lvl]))) for lvl in range(K)]
    return Mapping(tuple(levels), tuple(rows[K]))


def mapping_from_cme(op: Operation, arch: Architecture, cme, split,
                     bypass: Sequence[Collection[str]] | None = None) -> Mapping:
    """The mapping of ZigZag's CostModelEvaluation ``cme``, translated (:func:`mapping_from_zigzag`)."""
    return mapping_from_zigzag(op, arch, cme.layer, cme.temporal_mapping, split, bypass)


def _oa(name: str):
    from zigzag.datatypes import OADimension
    return OADimension(name)


@ntframe.hookimpl
def ntframe_register_cost_models(register):
    register(ZigZagModel)


@ntframe.hookimpl
def ntframe_register_mappers(register):
    register(ZigZagLoma)

