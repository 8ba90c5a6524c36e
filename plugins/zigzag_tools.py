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
* **Search** (``zigzag-loma``): the vault split is fixed (ntframe's search with the same cost model, as for
  ``timeloop-mapper``, or the spec's ``vault_split``); ZigZag generates the other spatial mappings and runs LOMA
  (``lpf_limit``, deterministic; in a child process stopped at the budget's seconds) with even temporal mappings (every tensor splits its loops at the same levels,
  which ntframe's mapping format needs); ZigZag does not search bypass (every tensor is kept at every level).

What does not translate (the cost model says why in its result): operations that are not a two-input
multiply-accumulate (element-wise, bias, activation, pooling, optimiser updates); the logic-die network between
the vaults (not in ZigZag); ntframe's DRAM line granularity (ZigZag counts bits). Cycles are ZigZag's
``latency_total2`` — ideal cycles plus port stalls plus on- and off-loading — which do not separate the DRAM's
share, so ``on_die_cycles`` equals ``cycles``.
"""

from __future__ import annotations

import logging
import tempfile
import time
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, PositiveInt

import ntframe
from ntframe.components import Budget, CostModel, MappingSearcher
from ntframe.errors import MappingError, PluginError, ToolError
from ntframe.hardware import Architecture
from ntframe.mapping import LevelMapping, Mapping, structural_problems
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


def hardware_dict(op: Operation, arch: Architecture, mapping: Mapping | None) -> dict[str, Any]:
    names = operand_names(op)
    dims = array_dims(arch)
    memories = {}
    for lvl in range(len(arch.levels) - 1, -1, -1):              # innermost first
        spec = arch.levels[lvl]
        kept = [t for t in op.tensors if mapping is None or t.name not in mapping.levels[lvl].bypass]
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


def mapping_entry(op: Operation, spatial: dict[str, list[str]], ordering: list | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": "default", "spatial_mapping": spatial,
                             "memory_operand_links": {"O": "O", "W": "I2", "I": "I1"}}
    if ordering:
        entry["temporal_ordering"] = ordering
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


def _build(zz, op: Operation, arch: Architecture, mapping: Mapping | None, spatial: dict, ordering=None):
    validator = zz["AcceleratorValidator"](hardware_dict(op, arch, mapping))
    if not validator.validate():
        raise PluginError(f"ZigZag rejected the translated hardware: {validator.validator.errors}")
    accelerator = zz["AcceleratorFactory"](validator.normalized_data).create()
    wv = zz["WorkloadValidator"]([layer_dict(op)])
    mv = zz["MappingValidator"]([mapping_entry(op, spatial, ordering)])
    if not wv.validate() or not mv.validate():
        raise PluginError(f"ZigZag rejected the translated layer or mapping for {op.name}")
    layer = zz["LayerNodeFactory"](wv.normalized_data[0], mv.normalized_data).create()
    return accelerator, layer


def evaluate_fixed(op: Operation, arch: Architecture, mapping: Mapping):
    """ZigZag's cost model on exactly this mapping: its CostModelEvaluation."""
    zz = _zigzag()
    from zigzag.stages.evaluation.cost_model_evaluation import CostModelStage
    from zigzag.stages.mapping.spatial_mapping_conversion import SpatialMappingConversionStage
    accelerator, layer = _build(zz, op, arch, mapping, spatial_dict(op, arch, mapping.spatial_rows()))
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
    (a quarter of the budget, at least 200 evaluations), or explicit factors, e.g. {N: 32}."""


class ZigZagLoma(MappingSearcher):
    name = "zigzag-loma"
    description = "ZigZag's spatial-mapping generator and LOMA temporal search (vault split fixed)"
    Options = ZigZagLomaOptions

    def check_available(self) -> None:
        _zigzag()

    def search(self, operation: Operation, architecture: Architecture, cost_model: CostModel, budget: Budget,
               seed: int) -> SearchResult:
        zz = _zigzag()
        if architecture.constraints is not None:
            raise MappingError("zigzag-loma: the architecture has mapping constraints, which this adapter does not "
                               "express in ZigZag yet; use the native or neurotrainer-dataflow mapper, or remove "
                               "the constraints")
        started = time.perf_counter()
        try:
            operand_names(operation)
        except NotTranslatable as exc:
            raise PluginError(f"ZigZag cannot map this operation: {exc}") from None
        objective = {"edp": "edp", "energy": "energy", "latency": "delay"}[self.options.objective]
        split = vault_split(operation, architecture, cost_model, budget, seed, objective, self.options.vault_split,
                            "zigzag-vault-split")
        left = budget.seconds - (time.perf_counter() - started)
        mapping = _in_child(lambda: _loma(zz, operation, architecture, self.options, split), left,
                            f"ZigZag's LOMA on {operation.name}",
                            "raise mapper.budget.seconds, or lower lpf_limit / spatial_mappings")
        problems = structural_problems(operation, mapping, architecture) or capacity_problems(operation, mapping,
                                                                                               architecture)
        if problems:
            raise PluginError(f"ZigZag's mapping for {operation.name} does not translate back: {'; '.join(problems)}")
        cost = cost_model.evaluate(operation, mapping, architecture)
        return SearchResult(mapping, cost, evaluated=0, valid=0,
                            invalid_reasons={"ZigZag does not report its evaluation count": 0},
                            objective=self.options.objective)



def _loma(zz, operation: Operation, architecture: Architecture, options: ZigZagLomaOptions, split) -> Mapping:
    """ZigZag's spatial-mapping generator and LOMA with the vault split fixed; the best mapping, translated."""
    from zigzag.stages.evaluation.cost_model_evaluation import CostModelStage
    from zigzag.stages.main import MainStage
    from zigzag.stages.mapping.spatial_mapping_generation import SpatialMappingGeneratorStage
    from zigzag.stages.mapping.temporal_mapping_generator_stage import TemporalMappingGeneratorStage
    from zigzag.stages.results.reduce_stages import MinimalEDPStage, MinimalEnergyStage, MinimalLatencyStage
    reduce = {"edp": MinimalEDPStage, "energy": MinimalEnergyStage, "latency": MinimalLatencyStage}[options.objective]
    spatial = {d: [f"{dim}, {f}" for dim, f in split] for d, _, i in array_dims(architecture) if i == 0}
    accelerator, layer = _build(zz, operation, architecture, None, spatial)
    with tempfile.TemporaryDirectory(prefix="ntframe-zigzag-") as dump:
        results = MainStage([reduce, SpatialMappingGeneratorStage, reduce, TemporalMappingGeneratorStage,
                             CostModelStage], accelerator=accelerator, layer=layer,
                            loma_lpf_limit=options.lpf_limit, loma_show_progress_bar=False,
                            nb_mappings_generated=options.spatial_mappings,
                            access_same_data_considered_as_no_access=True,
                            temporal_mapping_type=zz["TemporalMappingType"].EVEN, dump_folder=dump).run()
    return mapping_from_cme(operation, architecture, results[0][0], split)


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


def mapping_from_cme(op: Operation, arch: Architecture, cme, split) -> Mapping:
    """ZigZag's (even) temporal mapping and its spatial mapping (with the fixed vault ``split``), as an ntframe
    Mapping."""
    K = len(arch.levels)
    operand = next(o for o in cme.layer.layer_operands if str(o) == "O")
    per_level = cme.temporal_mapping.mapping_dic_origin[operand]      # innermost level first
    if len(per_level) != K:
        raise NotTranslatable(f"ZigZag kept the output at {len(per_level)} levels, ntframe has {K}")
    rows: list[list[tuple[str, int]]] = [[] for _ in arch.fanouts]
    for d, _, i in array_dims(arch):
        for dim, f in (cme.layer.spatial_mapping.data.get(_oa(d), {}) or {}).items():
            if float(f) > 1:
                if float(f) != int(f):
                    raise NotTranslatable(f"ZigZag unrolled {dim} by {f}, not a whole factor")
                rows[i].append((str(dim), int(f)))
    rows[0] = list(split)
    levels = []
    for lvl in range(K):
        loops = [(str(d), int(f)) for d, f in per_level[K - 1 - lvl] if f > 1]
        if any(float(f) != int(f) for _, f in per_level[K - 1 - lvl]):
            raise NotTranslatable("ZigZag used a fractional loop factor")
        levels.append(LevelMapping(arch.levels[lvl].name, tuple(reversed(loops)), tuple(rows[lvl])))
    return Mapping(tuple(levels), tuple(rows[K]))


def _oa(name: str):
    from zigzag.datatypes import OADimension
    return OADimension(name)


@ntframe.hookimpl
def ntframe_register_cost_models(register):
    register(ZigZagModel)


@ntframe.hookimpl
def ntframe_register_mappers(register):
    register(ZigZagLoma)

