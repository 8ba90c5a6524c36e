"""``timeloop`` cost model and ``timeloop-mapper`` searcher: NVlabs Timeloop's own programs on ntframe's
operations, through :mod:`ntframe.interop.timeloop`'s exporter.

* **Cost model** ``timeloop``: writes the architecture, the problem, the mapping and the energy table (ERT) of
  one vault's share of the operation, runs ``timeloop-model`` (:mod:`ntframe.interop.external`: an argv list in
  its own process group, a timeout, its output to files in a fresh folder), and reads
  ``timeloop-model.stats.txt`` — per-level and per-data-space energies from their own lines, not the rounded
  summary; statistics that do not parse, and figures that cannot be true (not finite, negative, huge, or no cycles
  or energy), fail the operation with the folder kept and the command to rerun. Timeloop models one hierarchy
  with one top-level memory, so the result is one vault's times the vaults the mapping uses; the logic-die
  network is not in Timeloop (said in the result's notes).
  ``energies: ntframe-ert`` (default) gives Timeloop ntframe's energy table, so the two models differ only in
  how they count; ``energies: accelergy`` gives it none, and Timeloop asks Accelergy (when installed) or falls
  back to its built-in energies — which the result flags loudly, level by level, because those numbers are not
  the architecture file's.
* **Searcher** ``timeloop-mapper``: ``timeloop-mapper`` searches one vault's mapping (algorithm, metric and
  stopping rules as options; one thread, so the same inputs give the same mapping — Timeloop takes no seed);
  the split over the vaults, which Timeloop cannot express, comes from ntframe's own search with the same cost
  model (``vault_split: search``) or from the spec (``vault_split: {N: 32}``). The wall-clock budget is enforced
  with SIGINT to its process group, on which Timeloop stops and still writes its best mapping (SIGKILL a minute
  later if it has not).

Both put the programs' identity in the mapping cache's keys: their paths and the SHA-256 of the binaries and of
the ``libtimeloop*`` libraries the loader would find on ``LD_LIBRARY_PATH`` or in ``lib/`` beside ``bin/``.

The programs come from ``NTFRAME_TIMELOOP_BIN`` (a folder holding them) or ``PATH``; ``pytimeloop`` (the Python
bindings) is not served by any package index reachable here and is not used.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, PositiveFloat, PositiveInt

import ntframe
from ntframe.components import Budget, CostModel, MappingSearcher
from ntframe.errors import ToolError
from ntframe.hardware import Architecture
from ntframe.interop.external import (check_figures, cleanup, exit_description, find_binary, parse_failure,
                                      program_identity, quoted_tail, read_stats, rerun, run_group, run_tool, tail,
                                      workdir)
from ntframe.interop.timeloop import (constraints_yaml, input_files, mapping_yaml, parse_mapping, parse_stats,
                                      per_vault_bounds, word_bits)
from ntframe.mapping import Mapping, structural_problems
from ntframe.mapping.constraints import for_operation, violations
from ntframe.mapping.mapspace import Problem
from ntframe.mapping.nest import capacity_problems
from ntframe.mapping.search import vault_split
from ntframe.results import ComputeCost, LevelCost, SearchResult, bytes_by_tensor
from ntframe.workload import Operation

TIMELOOP_FIX = ("build NVlabs/timeloop and set NTFRAME_TIMELOOP_BIN=/path/to/timeloop/bin (with LD_LIBRARY_PATH "
                "naming its lib folder and barvinok's), or put timeloop-model on PATH")
NOT_MODELLED = ("Timeloop models one vault: its figures are one vault's times the vaults the mapping uses; the "
                "logic-die network is not modelled")


def _program(name: str) -> str:
    return find_binary("NTFRAME_TIMELOOP_BIN", [name], name, TIMELOOP_FIX)


def _identity(name: str) -> dict[str, str]:
    """The program's identity with the first ``libtimeloop*`` library of each name the loader would find (where
    Timeloop's code is: its binaries are thin)."""
    exe = _program(name)
    folders = [f for f in os.environ.get("LD_LIBRARY_PATH", "").split(os.pathsep) if f]
    folders.append(str(Path(exe).resolve().parent.parent / "lib"))
    libraries: dict[str, Path] = {}
    for folder in folders:
        for lib in sorted(Path(folder).glob("libtimeloop*.so*")) if Path(folder).is_dir() else ():
            libraries.setdefault(lib.name, lib)
    return program_identity(exe, **libraries)


def stats_figures(stats: dict[str, Any]) -> dict[str, Any]:
    """Every figure of :func:`ntframe.interop.timeloop.parse_stats`' result, by dotted name (``cycles``,
    ``pe_rf.energy_pJ``, ``pe_rf.O.reads`` ...); ValueError when it has no summary cycles or no level."""
    if stats["cycles"] is None or not stats["levels"]:
        raise ValueError("no 'Cycles:' summary line" if stats["levels"] else "no '=== level ===' section")
    out = {"cycles": stats["cycles"], "energy_pJ": stats["energy_pJ"]}
    if stats.get("utilisation") is not None:
        out["utilisation"] = stats["utilisation"]
    for name, level in stats["levels"].items():
        for key, value in level.items():
            if key == "dataspaces":
                out.update({f"{name}.{space}.{k}": v for space, counts in value.items() for k, v in counts.items()})
            elif key != "energy_source":
                out[f"{name}.{key}"] = value
    return out


def to_compute_cost(op: Operation, arch: Architecture, stats: dict[str, Any], vaults: int) -> ComputeCost:
    """Timeloop's statistics of one vault, as ntframe's ComputeCost of the whole operation."""
    bits = word_bits(op)
    levels, notes = [], [NOT_MODELLED]
    fallback = []
    for i, spec in enumerate(arch.levels):
        st = stats["levels"].get(spec.name)
        if st is None:
            raise ValueError(f"Timeloop's statistics have no level '{spec.name}'")
        if st.get("energy_source", "ERT") != "ERT":
            fallback.append(f"{spec.name} ({st['energy_source']})")
        tensors: dict[str, dict[str, float]] = {}
        for name, sp in st["dataspaces"].items():
            n = sp.get("instances", 1) * vaults
            tensors[name] = {"reads": sp.get("reads", 0.0) * n, "fills": sp.get("fills", 0.0) * n,
                             "updates": sp.get("updates", 0.0) * n, "energy_pJ": sp.get("energy_pJ", 0.0) * vaults}
        reads = sum(t["reads"] for t in tensors.values())
        fills = sum(t["fills"] for t in tensors.values())
        updates = sum(t["updates"] for t in tensors.values())
        levels.append(LevelCost(spec.name, int(st.get("instances", 1)) * vaults, reads, fills, updates,
                                reads * bits, (fills + updates) * bits, st["energy_pJ"] * vaults,
                                st.get("cycles", 0.0), is_memory=(i == 0 and spec.cls == "DRAM"), tensors=tensors))
    if fallback:
        notes.append("WARNING: Timeloop priced " + ", ".join(fallback) + " with its built-in energies, not an "
                     "Accelergy/ntframe energy table: these energies are not the architecture file's")
    mac = stats["levels"].get(arch.compute.name, {})
    cycles = float(stats["cycles"])
    on_die = max([float(mac.get("cycles", 0.0))] + [lv.bandwidth_bound_cycles for lv in levels if not lv.is_memory])
    dram = levels[0]
    word_bytes = bits / 8
    return ComputeCost(
        cycles=cycles, on_die_cycles=on_die, compute_cycles=float(mac.get("cycles", 0.0)),
        energy_pJ=stats["energy_pJ"] * vaults, compute_energy_pJ=mac.get("energy_pJ", 0.0) * vaults,
        utilisation=op.points * op.ops_per_point / (arch.peak_ops_per_cycle * cycles) if cycles else 0.0,
        levels=tuple(levels),
        dram_read_bytes_by_tensor=bytes_by_tensor(op, {n: c["reads"] * word_bytes for n, c in dram.tensors.items()}),
        dram_write_bytes_by_tensor=bytes_by_tensor(op, {n: c["updates"] * word_bytes for n, c in dram.tensors.items()}),
        dram_instances=vaults, notes=tuple(notes))


class TimeloopModelOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    energies: Literal["ntframe-ert", "accelergy"] = "ntframe-ert"
    """ntframe-ert: Timeloop prices with the architecture file's energies (exported as an ERT); accelergy:
    Timeloop asks Accelergy, or falls back to its built-in energies (flagged in the result)."""
    timeout_s: PositiveFloat = 120.0
    """Wall-clock limit of one timeloop-model run (it is stopped, with its process group, after it)."""


class TimeloopModel(CostModel):
    name = "timeloop"
    description = "NVlabs Timeloop's timeloop-model on the same mapping (one vault, scaled), energies from the arch"
    Options = TimeloopModelOptions

    def check_available(self) -> None:
        _program("timeloop-model")

    def cache_identity(self) -> dict[str, str]:
        return _identity("timeloop-model")

    def evaluate(self, operation: Operation, mapping: Mapping, architecture: Architecture) -> ComputeCost:
        exe = _program("timeloop-model")
        bounds, vaults = per_vault_bounds(operation, mapping)
        folder = workdir(f"ntframe-timeloop-{operation.name}-")
        files = input_files(operation, architecture, bounds)
        files["mapping.yaml"] = yaml.safe_dump(mapping_yaml(operation, architecture, mapping, bounds),
                                               sort_keys=False)
        for name, text in files.items():
            (folder / name).write_text(text)
        (folder / "out").mkdir()
        ert = ["ERT.yaml"] if self.options.energies == "ntframe-ert" else []
        argv = [exe, "arch.yaml", "problem.yaml", "mapping.yaml", *ert, "-o", "out"]
        run_tool(argv, folder, self.options.timeout_s, "timeloop-model")
        try:
            stats = parse_stats(read_stats(folder / "out" / "timeloop-model.stats.txt"))
            figures = stats_figures(stats)
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise parse_failure("timeloop-model", folder, f"{type(exc).__name__}: {exc}", argv) from None
        check_figures("timeloop-model", folder, argv, figures, ("cycles", "energy_pJ"))
        try:
            cost = to_compute_cost(operation, architecture, stats, vaults)
        except (ValueError, KeyError, TypeError) as exc:
            raise parse_failure("timeloop-model", folder, f"{type(exc).__name__}: {exc}", argv) from None
        cleanup(folder)
        return cost


class TimeloopMapperOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    algorithm: Literal["random_pruned", "linear_pruned", "exhaustive", "hybrid", "random"] = "random_pruned"
    """timeloop-mapper's search algorithm."""
    objective: Literal["edp", "energy", "delay"] = "edp"
    """What timeloop-mapper optimises first (its optimization metrics)."""
    victory_condition: PositiveInt = 500
    """Stop after this many valid mappings without an improvement."""
    invalid_timeout: PositiveInt = 100_000
    """Stop after this many invalid mappings in a row (Timeloop's ``timeout``; under the reference architecture's
    constraints 5,000 found no valid mapping of VGG-16's conv3_2 with linear_pruned; ``budget.seconds`` still
    stops the run)."""
    vault_split: Literal["search"] | dict[str, PositiveInt] = "search"
    """How the operation is split over the vaults (Timeloop models one): ``search`` — ntframe's own search with
    the same cost model (a quarter of the budget, at least 200 evaluations) — or explicit factors, e.g. {N: 32}."""


METRICS = {"edp": ["edp"], "energy": ["energy", "delay"], "delay": ["delay", "energy"]}


class TimeloopMapper(MappingSearcher):
    name = "timeloop-mapper"
    description = "NVlabs Timeloop's timeloop-mapper for one vault's mapping (vault split from ntframe or the spec)"
    Options = TimeloopMapperOptions

    def check_available(self) -> None:
        _program("timeloop-mapper")

    def cache_identity(self) -> dict[str, str]:
        return _identity("timeloop-mapper")

    def search(self, operation: Operation, architecture: Architecture, cost_model: CostModel, budget: Budget,
               seed: int) -> SearchResult:
        exe = _program("timeloop-mapper")
        started = time.perf_counter()
        split = vault_split(operation, architecture, cost_model, budget, seed, self.options.objective,
                            self.options.vault_split, "timeloop-vault-split")
        bounds = dict(operation.dims)
        for d, f in split:
            if d not in bounds or bounds[d] % f:
                raise ValueError(f"vault_split {d}={f} does not divide the operation's dimensions {bounds}")
            bounds[d] //= f
        folder = workdir(f"ntframe-timeloop-mapper-{operation.name}-")
        for name, text in input_files(operation, architecture, bounds).items():
            (folder / name).write_text(text)
        constraints = for_operation(Problem(operation), architecture)
        (folder / "constraints.yaml").write_text(yaml.safe_dump(constraints_yaml(operation, architecture, constraints),
                                                                sort_keys=False))
        (folder / "mapper.yaml").write_text(yaml.safe_dump({"mapper": {
            "algorithm": self.options.algorithm, "optimization_metrics": METRICS[self.options.objective],
            "num_threads": 1, "search_size": budget.evaluations, "timeout": self.options.invalid_timeout,
            "victory_condition": self.options.victory_condition, "log_interval": 0, "live_status": False,
            "diagnostics": False}}, sort_keys=False))
        (folder / "out").mkdir()
        argv = [exe, "arch.yaml", "problem.yaml", "ERT.yaml", "mapper.yaml", "constraints.yaml", "-o", "out"]
        left = max(1.0, budget.seconds - (time.perf_counter() - started))
        log, truncated = self._run(argv, folder, left)
        result = folder / "out" / "timeloop-mapper.map.yaml"
        try:
            found = read_stats(result) if result.exists() else ""
        except (OSError, ValueError) as exc:
            raise parse_failure("timeloop-mapper", folder, f"{type(exc).__name__}: {exc}", argv) from None
        if not found.strip():                                     # it writes an empty file when it finds none
            raise ToolError(f"timeloop-mapper found no valid mapping for {operation.name} "
                            f"({_stop_reason(log) or 'no reason printed'}); files kept in {folder}",
                            fix=f"raise the mapper's invalid_timeout (consecutive invalid mappings before it gives up, "
                                f"now {self.options.invalid_timeout}) or the budget; {rerun(folder, argv)}")
        try:
            mapping = parse_mapping(yaml.safe_load(found), operation, architecture, split)
        except (ValueError, KeyError, TypeError, AttributeError, yaml.YAMLError) as exc:
            raise parse_failure("timeloop-mapper", folder, f"{type(exc).__name__}: {exc}", argv) from None
        problems = structural_problems(operation, mapping, architecture) or capacity_problems(operation, mapping,
                                                                                               architecture) \
            or violations(Problem(operation), mapping, architecture, constraints)
        if problems:
            raise ToolError(f"timeloop-mapper's mapping for {operation.name} is not valid for ntframe: "
                            f"{'; '.join(problems)}; files kept in {folder}", fix=rerun(folder, argv))
        cost = cost_model.evaluate(operation, mapping, architecture)
        cleanup(folder)
        reason = _stop_reason(log)
        valid = budget.evaluations if reason and "valid mappings found" in reason else 0
        return SearchResult(mapping, cost, evaluated=valid, valid=valid,
                            invalid_reasons={f"timeloop-mapper stopped: {reason or 'interrupted'}": 1},
                            truncated_by_time=truncated, objective=self.options.objective)

    @staticmethod
    def _run(argv: list[str], folder: Path, seconds: float) -> tuple[str, bool]:
        """Run the mapper (its output in ``mapper.log``); at the wall-clock budget send SIGINT to its process group
        (it then writes its best mapping and exits; SIGKILL a minute later if not). Returns the end of its log and
        whether the budget stopped it."""
        try:
            with open(folder / "mapper.log", "wb") as log:
                code, truncated = run_group(argv, folder, log, subprocess.STDOUT, seconds, stop_signal=signal.SIGINT,
                                            grace_s=60.0)
        except OSError as exc:
            raise ToolError(f"timeloop-mapper could not start: {exc}; files kept in {folder}",
                            fix=rerun(folder, argv)) from None
        text = tail(folder / "mapper.log")
        if code not in (0, -signal.SIGINT) and not truncated:
            raise ToolError(f"timeloop-mapper {exit_description(code)}: {quoted_tail(text) or 'no output'}; files kept "
                            f"in {folder}", fix=rerun(folder, argv))
        return text, truncated


def _stop_reason(log: str) -> str | None:
    found = re.findall(r"(?:STATEMENT|MESSAGE): (.*)", log)
    return found[-1].strip() if found else None


@ntframe.hookimpl
def ntframe_register_cost_models(register):
    register(TimeloopModel)


@ntframe.hookimpl
def ntframe_register_mappers(register):
    register(TimeloopMapper)

