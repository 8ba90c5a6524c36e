"""The pipeline of one run: spec → network → operations → mapping → compute cost → traffic → memory cost
→ combined result, and the results bundle.

Combining: the cost model prices every level including the memory (DRAM) level, which its mapping search
needs; the memory backend then prices that traffic again, and the result uses the backend's figures for the
memory level: ``energy = on-die energy (cost model) + memory energy (backend)`` and
``cycles = max(on-die cycles, memory cycles)``, i.e. compute and memory transfers overlap fully (stated in
every row as ``overlap``).

A component that raises for one operation costs that operation only: the row records the error and the
plugin, the other operations go on, and the bundle is still written.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from ntframe import __version__, checks
from ntframe.bundle import SCHEMA, SCHEMA_VERSION, SCOPES, scope_figures
from ntframe.cache import MappingCache, cache_folder, from_json
from ntframe.components import (Component, ComponentEstimate, ComponentEstimator, CostModel, EstimateRequest,
                                WorkloadRequest)
from ntframe.errors import NtframeError, PluginError, SpecError
from ntframe.hardware.architecture import Architecture, Estimate, load_architecture
from ntframe.host import PluginHost, Registered
from ntframe.mapping.mapping import Mapping, structural_problems
from ntframe.mapping.space import objective_value
from ntframe.parallel import default_jobs, run_pieces
from ntframe.paths import resolve_path
from ntframe.results import ComputeCost, DramTraffic, MemoryCost, to_jsonable
from ntframe.spec import SELECTORS, LoadedSpec, canonical_hash
from ntframe.workload.ir import Network, Operation
from ntframe.workload.training import activation_stash, expand
from ntframe.yamlio import validate

OVERLAP = "full: cycles = max(on-die, memory)"


@dataclass
class Resolved:
    """A validated spec with its components instantiated and its architecture loaded."""

    loaded: LoadedSpec
    components: dict[str, tuple[Registered, Component]]
    architecture: Architecture
    resolved_spec: dict[str, Any]
    cache: MappingCache | None = None
    kept_memory: dict[str, MemoryCost] = field(default_factory=dict, repr=False, compare=False)
    """Memory costs simulated to decide ties, kept for the run's own call (when there is no cache)."""

    def component(self, section: str) -> Component:
        return self.components[section][1]


def resolve(loaded: LoadedSpec, host: PluginHost) -> Resolved:
    """Select every component by name, validate its options, load the architecture. Raises SpecError."""
    spec, pos = loaded.spec, loaded.positions
    components: dict[str, tuple[Registered, Component]] = {}
    resolved = spec.model_dump(mode="json", exclude_none=True)
    for section, (key, family) in SELECTORS.items():
        sec = getattr(spec, section)
        name = getattr(sec, key)
        try:
            reg = host.get(family, name)
        except SpecError as exc:
            raise pos.error(str(exc), (section, key)) from None
        options = sec.plugin_options()
        core_keys = [k for k in type(sec).model_fields]
        model = validate(reg.cls.Options, options, pos.sub((section,)), prefix=(section,),
                         owner=f"option of {family.replace('_', ' ')} '{name}' from plugin '{reg.plugin}'",
                         extra_allowed=core_keys)
        components[section] = (reg, reg.cls(model))
        resolved[section] = {**{k: v for k, v in resolved[section].items() if k in core_keys},
                             **model.model_dump(mode="json")}
    try:
        arch_path = resolve_path(spec.architecture.spec, loaded.dir, "arch_specs")
    except SpecError as exc:
        raise pos.error(str(exc), ("architecture", "spec")) from None
    try:
        arch = load_architecture(arch_path, cubes=spec.architecture.cubes,
                                 precision_override=spec.architecture.precision_bits,
                                 constraints=spec.mapper.constraints, estimate=component_estimates(host),
                                 technology=spec.architecture.technology.technology()
                                 if spec.architecture.technology else None)
    except ValueError as exc:
        for prefix, where in (("constraints", ("mapper", "constraints")),
                              ("technology", ("architecture", "technology"))):
            if str(exc).startswith(prefix):
                raise pos.error(str(exc).removeprefix("technology: "), where) from None
        raise
    memory = components["memory"][1]
    missing = memory.missing_attributes(arch)
    if missing:
        level = arch.levels[0].name
        raise SpecError(f"{arch.source}: memory backend '{components['memory'][0].name}' needs attributes of "
                        f"'{level}' the architecture file lacks: {', '.join(missing)} (add them under the "
                        f"component's attributes, each with its source)")
    for section, (reg, component) in components.items():
        component.check_available()          # a missing external tool fails here, before any work
    cache = MappingCache(cache_folder() if spec.mapper.cache else None)
    return Resolved(loaded, components, arch, resolved, cache)


def component_estimates(host: PluginHost) -> Estimate:
    """The host's component estimators as :func:`load_architecture` takes them: each by name, its answers
    attributed to its plugin; an estimator that raises (other than a :class:`SpecError` about the input) or returns
    something else than a :class:`ComponentEstimate` is the plugin's fault, reported as such."""
    made: dict[str, ComponentEstimator] = {}

    def estimate(name: str, request: EstimateRequest) -> tuple[ComponentEstimate, str]:
        try:
            reg = host.get("component_estimator", name)
        except SpecError as exc:
            raise SpecError(f"estimator: {exc}") from None
        if request.component_class not in reg.cls.classes:  # type: ignore[attr-defined]
            raise SpecError(f"estimator '{name}' (plugin '{reg.plugin}') does not estimate {request.component_class} "
                            f"components (it does: {', '.join(reg.cls.classes) or 'none'})")  # type: ignore[attr-defined]
        try:
            got = made.setdefault(name, reg.cls()).estimate(request)  # type: ignore[attr-defined]
        except SpecError:
            raise
        except Exception as exc:
            raise PluginError(f"component estimator '{name}' from plugin '{reg.plugin}' failed on component "
                              f"'{request.component}': {type(exc).__name__}: {exc}") from None
        if not isinstance(got, ComponentEstimate):
            raise PluginError(f"component estimator '{name}' from plugin '{reg.plugin}' returned {type(got).__name__} "
                              f"for component '{request.component}', not a ComponentEstimate")
        return got, f"{reg.plugin} {reg.version}"
    return estimate


@dataclass
class OperationRow:
    op: Operation
    record: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


def _attributed(reg: Registered, what: str, fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except (NtframeError, KeyboardInterrupt):
        raise
    except BaseException as exc:  # a plugin's bug (sys.exit included) costs its operation, never the run
        raise PluginError(f"{what} failed: {type(exc).__name__}: {exc}", plugin=reg.plugin,
                          component=reg.name) from exc


class _AttributedCostModel(CostModel):
    """Hands a mapper the cost model such that the cost model's own failures stay attributed to it."""

    name = "attributed"

    def __init__(self, model: CostModel, reg: Registered) -> None:
        super().__init__(model.options)
        self.model, self.reg = model, reg

    def evaluate(self, operation, mapping, architecture):
        what = f"evaluating {operation.name}"
        cost = _attributed(self.reg, what, lambda: self.model.evaluate(operation, mapping, architecture))
        return checks.compute_cost(cost, operation, architecture, what, self.reg)

    def evaluate_batch(self, problem, batch, architecture):
        what = f"evaluating {problem.op.name}"
        got = _attributed(self.reg, what, lambda: self.model.evaluate_batch(problem, batch, architecture))
        return checks.batch_prices(got, len(batch), what, self.reg)

    def bounds(self, problem, architecture):
        return _attributed(self.reg, f"bounding {problem.op.name}", lambda: self.model.bounds(problem, architecture))


def operations_of(resolved: Resolved) -> tuple[Network, list[Operation]]:
    """The spec's network and the operations of its training step."""
    spec, arch = resolved.loaded.spec, resolved.architecture
    (fe_reg, frontend) = resolved.components["workload"]
    request = WorkloadRequest(spec.workload.batch, resolved.loaded.dir)
    network = _attributed(fe_reg, "loading the workload", lambda: frontend.load(request))  # type: ignore[attr-defined]
    return network, expand(network, spec.workload.phases, arch.precision_bits, spec.workload.optimizer,
                           spec.workload.backward_data)


OPERATION_TIMEOUT_S = 1800.0
"""Default bound on one distinct operation's mapping and simulation (``ntframe run --operation-timeout``): a
plugin that hangs costs its operation, not the run."""


def run(resolved: Resolved, progress: Callable[[int, int, str], None] | None = None,
        jobs: int | None = None, operation_timeout_s: float | None = OPERATION_TIMEOUT_S,
        deadline_s: float | None = None) -> dict[str, Any]:
    """Run the whole training step; returns the results document (``docs/results.md``). Each distinct operation
    (by shape) is mapped and simulated once; those the mapping cache does not hold are spread over ``jobs``
    worker processes (:mod:`ntframe.parallel`; default: every core this process may use), which changes the time
    and nothing else. ``progress(done, total, name)`` counts distinct operations. An operation whose mapping and
    simulation take more than ``operation_timeout_s``, and every one not finished ``deadline_s`` after the start,
    is stopped and reported as an error; the others' figures stand (None: no bound)."""
    deadline = time.monotonic() + deadline_s if deadline_s is not None else None
    network, operations = operations_of(resolved)
    first: dict[tuple, Operation] = {}
    for op in operations:
        first.setdefault(op.shape_key(), op)
    distinct = list(first.values())
    held = [_mapping_cached(resolved, op) for op in distinct]
    cached = [i for i in range(len(distinct)) if held[i]]
    fresh = [i for i in range(len(distinct)) if not held[i]]
    outcomes: list[tuple[dict[str, Any] | None, str | None]] = [(None, None)] * len(distinct)
    count = [0]

    def finished(i: int, outcome) -> None:
        count[0] += 1
        if progress:
            progress(count[0], len(distinct), distinct[i].name)

    for i in cached:                                   # from the cache: quicker here than in a worker
        outcomes[i] = _simulate(resolved, distinct[i])
        finished(i, outcomes[i])
    cache = resolved.cache

    def in_worker(k: int):
        """The outcome and the cache's hits and misses on the way (counted here, whichever process runs it)."""
        if not cache:
            return _simulate(resolved, distinct[fresh[k]]), (0, 0)
        hits, misses = cache.hits, cache.misses
        outcome = _simulate(resolved, distinct[fresh[k]])
        counted = (cache.hits - hits, cache.misses - misses)
        cache.hits, cache.misses = hits, misses
        return outcome, counted

    def died(k: int):
        return (None, f"the worker process simulating {distinct[fresh[k]].name} died (killed, out of memory, or a "
                      f"crash in a plugin's native code); the other operations are unaffected"), (0, 0)

    def late(k: int, why: str):
        return (None, f"{distinct[fresh[k]].name} was stopped: {why} (ntframe run --operation-timeout / "
                      f"--deadline); the other operations are unaffected"), (0, 0)

    heaviest = sorted(range(len(fresh)), key=lambda k: (-distinct[fresh[k]].points, k))
    worked = run_pieces(in_worker, len(fresh), default_jobs() if jobs is None else jobs, order=heaviest,
                        done=lambda k, result: finished(fresh[k], result), died=died,
                        timeout_s=operation_timeout_s, deadline=deadline, late=late)
    for k, (outcome, (hits, misses)) in enumerate(worked):
        outcomes[fresh[k]] = outcome
        if cache:
            cache.hits += hits
            cache.misses += misses
    memo = {op.shape_key(): outcome for op, outcome in zip(distinct, outcomes)}
    rows: list[OperationRow] = []
    for op in operations:
        record, error = memo[op.shape_key()]
        rows.append(OperationRow(op, record or {}, error))
    if progress:
        progress(len(distinct), len(distinct), "done")
    return _document(resolved, network, operations, rows)


def _simulate(resolved: Resolved, op: Operation) -> tuple[dict[str, Any] | None, str | None]:
    """One operation mapped, priced and simulated: (its record, None), or (None, the error) when a component
    failed on it."""
    (mp_reg, mapper), (cm_reg, cost_model) = resolved.components["mapper"], resolved.components["cost_model"]
    (mb_reg, memory) = resolved.components["memory"]
    try:
        return _run_operation(op, resolved, mp_reg, mapper, cm_reg, cost_model, mb_reg, memory), None
    except NtframeError as exc:
        return None, str(exc)


def map_operation(resolved: Resolved, op: Operation) -> tuple[Mapping, Any, dict[str, Any]]:
    """The spec's mapper on one operation (through the mapping cache): (mapping, ComputeCost, search stats).
    Where the mapper names ties (other mappings its cost model prices exactly alike), the memory backend decides:
    the one its figures make best (the mapper's first on equal figures), with ``search.ties`` and
    ``search.tie_gain`` saying so."""
    mapping, cost, search, ties = _searched(resolved, op)
    if ties:
        mapping, cost, search = _decide_ties(resolved, op, mapping, cost, search, ties)
    return mapping, cost, search


def _searched(resolved: Resolved, op: Operation) -> tuple[Mapping, Any, dict[str, Any], tuple[Mapping, ...]]:
    (mp_reg, mapper), (cm_reg, cost_model) = resolved.components["mapper"], resolved.components["cost_model"]
    spec, arch = resolved.loaded.spec, resolved.architecture
    attributed = _AttributedCostModel(cost_model, cm_reg)
    key = _mapping_key(resolved, op)
    cached = resolved.cache.get(key, _cached_mapping(op, arch, cm_reg)) if resolved.cache else None
    if cached is not None:
        mapping, cost, search, ties = cached
        if cost is None:         # the key names the cost model, its version and options: the same figures
            cost = attributed.evaluate(op, mapping, arch)
        return mapping, cost, search, ties
    what = f"mapping search of {op.name}"
    found = checks.search_result(_attributed(mp_reg, what, lambda: mapper.search(op, arch, attributed,
                                                                                 spec.mapper.budget,
                                                                                 spec.mapper.seed)), what, mp_reg)
    search = search_record(found)
    cost = attributed.evaluate(op, found.mapping, arch)
    ties = tuple(m for m in found.ties if not structural_problems(op, m, arch))
    if resolved.cache and not found.truncated_by_time:
        resolved.cache.put(key, {"mapping": found.mapping.to_dict(), "search": search, "cost": to_jsonable(cost),
                                 "ties": [m.to_dict() for m in ties]})
    return found.mapping, cost, search, ties


def _decide_ties(resolved: Resolved, op: Operation, mapping: Mapping, cost, search: dict[str, Any],
                 ties: tuple[Mapping, ...]) -> tuple[Mapping, Any, dict[str, Any]]:
    """Of ``mapping`` and its ties, the best by the figures the run reports (the memory backend's memory share,
    through the cache): (mapping, ComputeCost, the search record with the ties counted and the gain)."""
    (cm_reg, cost_model), (mb_reg, memory) = resolved.components["cost_model"], resolved.components["memory"]
    arch = resolved.architecture
    attributed = _AttributedCostModel(cost_model, cm_reg)

    def reported(m: Mapping, c) -> tuple[float, MemoryCost]:
        mem = simulate_memory(resolved, mb_reg, memory, op, m, c)
        figures = combine(op, arch, c, mem)
        return float(objective_value(search["objective"], figures["energy_pJ"], figures["cycles"])), mem

    first, kept = reported(mapping, cost)
    best = first
    for tie in ties:
        tie_cost = attributed.evaluate(op, tie, arch)
        value, mem = reported(tie, tie_cost)
        if value < best * (1 - 1e-12):
            best, mapping, cost, kept = value, tie, tie_cost, mem
    # the run's own call on the mapping kept takes its figures from here, not from another simulation
    resolved.kept_memory[_memory_key(resolved, mb_reg, memory, op, mapping, cost)] = kept
    return mapping, cost, {**search, "ties": len(ties), "tie_gain": first / best - 1 if best > 0 else 0.0}


SEARCH_KEYS = ("evaluated", "valid", "invalid_reasons", "objective", "truncated_by_time", "method")


def _cached_mapping(op: Operation, arch: Architecture, cm_reg: Registered) -> Callable[[dict[str, Any]], tuple]:
    """``MappingCache.get``'s validate for a mapping entry: (Mapping, ComputeCost or None, search record); raises
    when the entry does not have that shape, its mapping does not fit ``op`` on ``arch``, or its figures fail the
    checks a cost model's answer must pass."""
    def convert(entry: dict[str, Any]) -> tuple[Mapping, ComputeCost | None, dict[str, Any], tuple[Mapping, ...]]:
        mapping = from_json(Mapping, entry["mapping"])
        ties = tuple(from_json(Mapping, tie) for tie in entry.get("ties", []))
        problems = [p for m in (mapping, *ties) for p in structural_problems(op, m, arch)]
        if problems:
            raise ValueError(problems[0])
        search = entry["search"]
        if not (isinstance(search, dict) and all(k in search for k in SEARCH_KEYS)):
            raise ValueError("not a search record")
        cost = (checks.compute_cost(from_json(ComputeCost, entry["cost"]), op, arch, "the mapping cache", cm_reg)
                if "cost" in entry else None)
        return mapping, cost, search, ties
    return convert


def _mapping_key(resolved: Resolved, op: Operation) -> str:
    (mp_reg, mapper), (cm_reg, cost_model) = resolved.components["mapper"], resolved.components["cost_model"]
    spec, arch = resolved.loaded.spec, resolved.architecture
    return MappingCache.key({
        "operation": repr(op.shape_key()), "architecture": arch.content_sha256,
        "mapper": [mp_reg.plugin, mp_reg.version, mp_reg.name, mapper.options.model_dump(mode="json"),
                   mapper.cache_identity()],
        "evaluations": spec.mapper.budget.evaluations, "seed": spec.mapper.seed,
        "cost_model": [cm_reg.plugin, cm_reg.version, cm_reg.name, cost_model.options.model_dump(mode="json"),
                       cost_model.cache_identity()]})


def _mapping_cached(resolved: Resolved, op: Operation) -> bool:
    return bool(resolved.cache and resolved.cache.holds(_mapping_key(resolved, op)))


def search_record(found) -> dict[str, Any]:
    """What results.json keeps of a search (docs/results.md, ``operations[].search``)."""
    record = {"evaluated": found.evaluated, "valid": found.valid, "invalid_reasons": found.invalid_reasons,
              "objective": found.objective, "truncated_by_time": found.truncated_by_time,
              "method": found.method or "unknown"}
    if found.reranked:
        record.update(reranked=found.reranked, rerank_gain=found.rerank_gain)
    if found.lower_bound is not None:
        value = objective_value(found.objective, found.cost.energy_pJ, found.cost.cycles)
        record.update(structures=found.structures, structures_mapped=found.structures_mapped,
                      bound_gap=(max(0.0, value / found.lower_bound - 1) if 0 < found.lower_bound < math.inf
                                 else 0.0))
    return record


def _run_operation(op, resolved, mp_reg, mapper, cm_reg, cost_model, mb_reg, memory) -> dict[str, Any]:
    checks.fits_memory(op, resolved.architecture)
    mapping, compute, search = map_operation(resolved, op)
    mem = simulate_memory(resolved, mb_reg, memory, op, mapping, compute)
    record = {**combine(op, resolved.architecture, compute, mem),
              "mapping": mapping.to_dict(),
              "search": search,
              "producers": {"mapper": mp_reg.name, "cost_model": cm_reg.name, "memory": mb_reg.name}}
    found = checks.bad_number(record)           # the components' answers are checked; this is the backstop
    if found:
        raise PluginError(f"the figures of {op.name} hold {found}: every figure must be finite and not negative "
                          f"(mapper {mp_reg.plugin}, cost model {cm_reg.plugin}, memory {mb_reg.plugin})")
    return record


def simulate_memory(resolved: Resolved, mb_reg: Registered, memory, op: Operation, mapping: Mapping,
                    compute) -> MemoryCost:
    """The memory backend on the traffic a cost model counted (through the cache when the backend allows; figures
    a tie's decision kept, :attr:`Resolved.kept_memory`, are taken once)."""
    arch = resolved.architecture
    traffic = DramTraffic(op.name, compute.dram_read_bytes_by_tensor, compute.dram_write_bytes_by_tensor,
                          compute.dram_instances, compute.on_die_cycles, op, mapping)
    mem_key = _memory_key(resolved, mb_reg, memory, op, mapping, compute)
    kept = resolved.kept_memory.pop(mem_key, None)
    if kept is not None:
        return kept
    cached_mem = (resolved.cache.get(mem_key, lambda entry: checks.memory_cost(from_json(MemoryCost, entry),
                                                                               "the mapping cache", mb_reg))
                  if resolved.cache and memory.cacheable else None)
    if cached_mem is not None:
        return cached_mem
    what = f"memory simulation of {op.name}"
    mem = checks.memory_cost(_attributed(mb_reg, what, lambda: memory.simulate(traffic, arch)), what, mb_reg)
    if resolved.cache and memory.cacheable:
        resolved.cache.put(mem_key, to_jsonable(mem))
    return mem


def _memory_key(resolved: Resolved, mb_reg: Registered, memory, op: Operation, mapping: Mapping, compute) -> str:
    """The cache key of the memory backend's figures for ``mapping``'s traffic."""
    return MappingCache.key({"memory": [mb_reg.plugin, mb_reg.version, mb_reg.name,
                                        memory.options.model_dump(mode="json"), memory.cache_identity()],
                             "operation": repr(op.shape_key()), "architecture": resolved.architecture.content_sha256,
                             "mapping": mapping.to_dict(), "compute_cycles": compute.on_die_cycles,
                             "traffic": [compute.dram_read_bytes_by_tensor, compute.dram_write_bytes_by_tensor]})


def combine(op: Operation, arch: Architecture, compute, mem: MemoryCost | None) -> dict[str, Any]:
    """One operation's figures: the cost model's on-die share and the memory backend's memory share
    (``mem=None``: the cost model's own pricing of the memory level), with every component's leakage over the
    operation's latency (:meth:`Architecture.silicon`), and the energy of each power scope (:data:`SCOPES`)."""
    mem_cycles = mem.cycles if mem else (compute.memory_level.bandwidth_bound_cycles if compute.memory_level else 0.0)
    mem_energy = mem.energy_pJ if mem else compute.energy_pJ - compute.on_die_energy_pJ
    cycles = max(compute.on_die_cycles, mem_cycles)
    silicon = arch.silicon()
    latency_ns = cycles / arch.clock_GHz
    logic_static = silicon["logic_die"]["static_power_mW"] * latency_ns     # mW x ns = pJ
    dram_static = silicon["dram"]["static_power_mW"] * latency_ns
    read_bytes = sum(compute.dram_read_bytes_by_tensor.values())
    write_bytes = sum(compute.dram_write_bytes_by_tensor.values())
    controller = vault_controller_energy_pJ(arch, (mem.read_bytes + mem.write_bytes) if mem else
                                            read_bytes + write_bytes, mem_energy)
    logic_die = compute.on_die_energy_pJ + controller + logic_static
    module = logic_die + (mem_energy - controller) + dram_static
    levels = to_jsonable(compute.levels)
    level = compute.memory_level
    if mem is not None:          # the cost model's memory level is replaced by the backend's figures
        for record in levels:
            if record.get("is_memory"):
                record["replaced_by_memory_backend"] = True
    return {
        "cycles": cycles,
        "on_die_cycles": compute.on_die_cycles,
        "memory_cycles": mem_cycles,
        "compute_cycles": compute.compute_cycles,
        "energy_pJ": module,
        "on_die_energy_pJ": compute.on_die_energy_pJ,
        "memory_energy_pJ": mem_energy,
        "vault_controller_energy_pJ": controller,
        "compute_energy_pJ": compute.compute_energy_pJ,
        "static_energy_pJ": logic_static + dram_static,
        **{f"{scope}_energy_pJ": value for scope, value in zip(SCOPES, (compute.compute_energy_pJ, logic_die,
                                                                        module, module))},
        "utilisation": op.points * op.ops_per_point / (arch.peak_ops_per_cycle * cycles) if cycles else 0.0,
        "dram_bytes": read_bytes + write_bytes,
        "dram_read_bytes": read_bytes,
        "dram_write_bytes": write_bytes,
        "memory_energy_gap": _gap(mem.energy_pJ, level.energy_pJ) if mem and level else None,
        "memory_cycles_gap": _gap(mem.cycles, level.bandwidth_bound_cycles) if mem and level else None,
        "overlap": OVERLAP,
        "levels": levels,
        "cost_notes": list(compute.notes),
        "memory": to_jsonable(mem) if mem else None,
    }


def vault_controller_energy_pJ(arch: Architecture, bytes_moved: float, memory_energy_pJ: float) -> float:
    """The share of the memory traffic's energy spent in the logic die's vault controllers: the memory level's
    ``logic_energy_pJ_per_bit`` per bit moved (0 when the file gives none), at most the whole memory energy."""
    per_bit = arch.levels[0].logic_energy_pJ_per_bit
    return min(bytes_moved * 8 * per_bit, memory_energy_pJ) if per_bit else 0.0


def _gap(backend: float, cost_model: float) -> float | None:
    """The memory backend's figure over the cost model's own for the memory level, minus 1 (None: nothing to
    compare)."""
    return backend / cost_model - 1 if cost_model > 0 else None


def network_summary(network: Network, operations: list[Operation]) -> dict[str, Any]:
    """Layers, parameters and the activations kept from the forward pass for the backward pass."""
    stash = activation_stash(operations, network)
    return {"name": network.name, "source": network.source, "batch": network.batch,
            "weights": network.weights, "layers": len(network.layers),
            "inputs": [{"name": i.name, "shape": list(i.shape), "dtype": i.dtype} for i in network.inputs],
            "notes": list(network.notes),
            "activation_stash_bytes": sum(stash.values()),
            "activation_stash_bytes_by_tensor": stash}


def area_figures(arch: Architecture, die_area_mm2: float | None) -> dict[str, Any]:
    """The silicon of the module: the logic die's area (every instance of every component with an area figure;
    and per vault, an instance of the outermost storage level) and the DRAM's, the components without one, the
    spec's die area and whether the logic die fits in it (None: no die area given, or no component has an
    area)."""
    silicon = arch.silicon()
    logic_mm2 = silicon["logic_die"]["area_um2"] / 1e6
    known = len(silicon["logic_die"]["unknown_area"]) < sum(e.component_class != "DRAM" for e in arch.estimates)
    return {"logic_die_mm2": logic_mm2, "logic_die_mm2_per_vault": logic_mm2 / arch.levels[0].instances,
            "dram_mm2": silicon["dram"]["area_um2"] / 1e6,
            "without_area": silicon["logic_die"]["unknown_area"] + silicon["dram"]["unknown_area"],
            "die_area_mm2": die_area_mm2,
            "fits": None if die_area_mm2 is None or not known else logic_mm2 <= die_area_mm2}


def area_warning(arch: Architecture, die_area_mm2: float | None) -> str | None:
    """A line for the terminal when the logic die's components need more than the spec's die area."""
    area = area_figures(arch, die_area_mm2)
    if area["fits"] is False:
        return (f"warning: the logic die's components need {area['logic_die_mm2']:.4g} mm2, more than the "
                f"{die_area_mm2:g} mm2 of architecture.die_area_mm2: this design does not fit under the DRAM stack")
    return None


def _document(resolved: Resolved, network: Network, operations: list[Operation],
              rows: list[OperationRow]) -> dict[str, Any]:
    arch = resolved.architecture
    ops_out = []
    summed = ("cycles", "energy_pJ", "dram_bytes", "static_energy_pJ", "vault_controller_energy_pJ",
              *(f"{s}_energy_pJ" for s in SCOPES))
    totals: dict[str, Any] = {"macs": 0, "flops": 0, **{k: 0 if k == "dram_bytes" else 0.0 for k in summed}}
    for row in rows:
        op = row.op
        base = {"name": op.name, "layer": op.layer, "phase": op.phase.value, "kind": op.kind.value,
                "macs": op.macs, "flops": op.flops, "equation": op.equation(),
                "dims": dict(op.dims), "tensor_bytes": {t.tensor: t.bytes for t in op.tensors}}
        if row.error:
            ops_out.append({**base, "status": "error", "error": row.error})
            continue
        rec = row.record
        ops_out.append({**base, "status": "ok", **rec,
                        "latency_s": rec["cycles"] / (arch.clock_GHz * 1e9)})
        totals["macs"] += op.macs
        totals["flops"] += op.flops
        for key in summed:
            totals[key] += rec[key]
    latency = totals["cycles"] / (arch.clock_GHz * 1e9)
    energy_J = totals["energy_pJ"] * 1e-12
    totals.update({
        "latency_s": latency,
        "throughput_GFLOPS": totals["flops"] / latency / 1e9 if latency else 0.0,
        "efficiency_GFLOPS_per_W": totals["flops"] / energy_J / 1e9 if energy_J else 0.0,
        "power_W": energy_J / latency if latency else 0.0,
        "scopes": scope_figures(totals, latency),
        "area": area_figures(arch, resolved.loaded.spec.architecture.die_area_mm2),
        "operations_ok": sum(1 for r in rows if not r.error),
        "operations_failed": sum(1 for r in rows if r.error),
    })
    by_phase: dict[str, dict[str, float]] = {}
    for row in ops_out:
        if row["status"] != "ok":
            continue
        agg = by_phase.setdefault(row["phase"], {"macs": 0, "flops": 0, "cycles": 0.0, "energy_pJ": 0.0,
                                                 "static_energy_pJ": 0.0,
                                                 **{f"{s}_energy_pJ": 0.0 for s in SCOPES}})
        for k in agg:
            agg[k] += row[k]
    comps = resolved.components
    provenance = {
        "ntframe_version": __version__,
        "spec_file": str(resolved.loaded.path) if resolved.loaded.path is not None else None,
        "spec_sha256": canonical_hash(resolved.resolved_spec),
        "spec_file_sha256": resolved.loaded.text_sha256,
        "overrides": resolved.loaded.overrides_dict(),
        "resolved_spec": resolved.resolved_spec,
        "architecture": {"name": arch.name, "file": arch.source, "sha256": arch.content_sha256,
                         "file_sha256": arch.file_sha256,
                         "clock_GHz": arch.clock_GHz,
                         "technology": arch.technology.label() if arch.technology else None,
                         "components": [to_jsonable(e) for e in arch.estimates],
                         "precision_bits": {p.value: b for p, b in arch.precision_bits.items()}},
        "workload": {"network": network.name, "source": network.source},
        "seed": resolved.loaded.spec.mapper.seed,
        "plugins": {section: {"component": reg.name, "family": reg.family, "plugin": reg.plugin,
                              "version": reg.version} for section, (reg, _) in comps.items()},
    }
    return {"schema": SCHEMA, "schema_version": SCHEMA_VERSION, "name": resolved.loaded.spec.name, "totals": totals,
            "phases": by_phase, "network": network_summary(network, operations), "operations": ops_out,
            "provenance": provenance}


__all__ = ["area_figures", "area_warning", "resolve", "run", "map_operation", "simulate_memory", "combine",
           "operations_of", "Resolved"]
