"""``timeloop`` cost model and ``timeloop-mapper`` searcher: NVlabs Timeloop on ntframe's operations, through
:mod:`ntframe.interop.timeloop`'s exporter.

* **Cost model** ``timeloop``: writes the architecture, the problem, the mapping and the energy table (ERT) of
  one vault's share of the operation, has Timeloop evaluate them, and reads its statistics — per-level and
  per-data-space energies from their own lines, not the rounded summary; statistics that do not parse, and
  figures that cannot be true (not finite, negative, huge, or no cycles or energy), fail the operation with the
  folder kept and the command to rerun. Timeloop models one hierarchy with one top-level memory, so the result is
  one vault's times the vaults the mapping uses; the logic-die network is not in Timeloop (said in the result's
  notes). ``energies: ntframe-ert`` (default) gives Timeloop ntframe's energy table, so the two models differ only
  in how they count; ``energies: accelergy`` gives it none, and Timeloop asks Accelergy (when installed) or falls
  back to its built-in energies — which the result flags loudly, level by level, because those numbers are not
  the architecture file's.
* **Two engines, the same figures** (``engine``; tests/test_pytimeloop.py checks them equal level by level):

  - ``programs``: runs ``timeloop-model`` (:mod:`ntframe.interop.external`: an argv list in its own process
    group, a timeout, its output to files in a fresh folder) and reads ``timeloop-model.stats.txt``.
  - ``pytimeloop`` (Accelergy-Project/timeloop-python, built from source against a Timeloop build): no program
    is started; Timeloop's C++ model runs through pytimeloop's bindings. The exporter's v0.3 input goes through the
    calls ``timeloop-model``'s own Model application makes (workload, ArchSpecs, the ERT, the mapping, Engine),
    built node by node rather than parsed from text (:func:`config_of`), and the statistics are the Engine's own
    text, the stats file's, read by the same parser. ``spec: v0.4`` sends the exporter's v0.4 architecture
    (``arch_v04``) through the timeloopfe that pytimeloop bundles, which checks it and translates it to v0.3 first.
    ``isolation: fork`` (default) evaluates in a forked copy of ntframe's process, so that Timeloop's ``exit()`` —
    its parsers exit on input they refuse — or a crash fails the operation, not the run; ``none`` evaluates in
    ntframe's process itself, one evaluation at a time (Timeloop's current workload is a global), its output
    redirected meanwhile. Either way Timeloop's output (C++ stdout and stderr, at the file-descriptor level) goes to
    a file in a private folder; exceptions and levels that fail become ToolErrors with the folder, the input as
    one file and the ``timeloop-model`` command that reruns it; the mapping is checked against the operation and the
    architecture first. Before a process uses pytimeloop, a forked copy evaluates a small known problem
    (:data:`SELF_CHECK`); a pytimeloop that fails it is refused. Accelergy is only called with
    ``energies: accelergy``, as a program.
  - ``auto`` (default): pytimeloop when it imports and passes its check (or when ``spec: v0.4`` asks for it),
    else the programs; the result's notes name the engine.

* **Searcher** ``timeloop-mapper``: ``timeloop-mapper`` searches one vault's mapping (algorithm, metric and
  stopping rules as options; one thread, so the same inputs give the same mapping — Timeloop takes no seed);
  the split over the vaults, which Timeloop cannot express, comes from ntframe's own search with the same cost
  model (``vault_split: search``) or from the spec (``vault_split: {N: 32}``). The wall-clock budget is enforced
  with SIGINT to its process group, on which Timeloop stops and still writes its best mapping (SIGKILL a minute
  later if it has not).

The engine's identity is in the mapping cache's keys: for the programs, their paths and the SHA-256 of the
binaries and of the ``libtimeloop*`` libraries the loader would find on ``LD_LIBRARY_PATH`` or in ``lib/`` beside
``bin/``; for pytimeloop, its version and folder and the SHA-256 of its bindings module and of the
``libtimeloop*`` libraries it loaded. Results of one engine are never served for the other.

The programs come from ``NTFRAME_TIMELOOP_BIN`` (a folder holding them) or ``PATH``; pytimeloop is whatever
``import pytimeloop`` finds (no package index serves it: it builds from source, docs/compare.md).
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import faulthandler
import importlib.metadata
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, PositiveFloat, PositiveInt, model_validator

import ntframe
from ntframe.components import Budget, CostModel, MappingSearcher
from ntframe.errors import ToolError
from ntframe.hardware import Architecture
from ntframe.interop.external import (check_figures, cleanup, exit_description, file_sha256, find_binary,
                                      parse_failure, program_identity, quoted_tail, read_stats, rerun, run_group,
                                      run_tool, tail, workdir)
from ntframe.interop.timeloop import (arch_v03, arch_v04, constraints_yaml, ert, input_files, mapping_yaml,
                                      parse_mapping, parse_stats, per_vault_bounds, problem_yaml, word_bits)
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
    engine: Literal["auto", "pytimeloop", "programs"] = "auto"
    """How Timeloop runs: ``pytimeloop`` — its model through its Python bindings (built from source), no program
    started; ``programs`` — timeloop-model; ``auto`` — the first when it imports, else the second. The same figures
    either way."""
    spec: Literal["v0.3", "v0.4"] = "v0.3"
    """The architecture pytimeloop reads: the exporter's v0.3 tree, or its v0.4 ``nodes`` through timeloopfe
    (translated to v0.3 first; same figures, slower). v0.4 needs pytimeloop; the programs read v0.3."""
    isolation: Literal["fork", "none"] = "fork"
    """Where pytimeloop evaluates: ``fork`` — in a forked copy of ntframe's process (no program is started; an
    exit() or a crash in Timeloop, whose parsers exit on input they refuse, fails the operation, not the run);
    ``none`` — in ntframe's process itself (faster; such an exit() ends ntframe)."""
    timeout_s: PositiveFloat = 120.0
    """Wall-clock limit of one timeloop-model run or forked pytimeloop evaluation (it is stopped after it); an
    evaluation with ``isolation: none`` cannot be stopped."""

    @model_validator(mode="after")
    def _v04_needs_pytimeloop(self) -> "TimeloopModelOptions":
        if self.spec == "v0.4" and self.engine == "programs":
            raise ValueError("spec v0.4 is read through pytimeloop's timeloopfe: engine programs reads v0.3 only "
                             "(choose engine: pytimeloop or auto)")
        return self


class TimeloopModel(CostModel):
    name = "timeloop"
    description = ("NVlabs Timeloop's model on the same mapping (one vault, scaled), energies from the arch: "
                   "through pytimeloop's bindings, or the timeloop-model program")
    Options = TimeloopModelOptions

    def engine(self) -> str:
        """The engine this instance uses: ``pytimeloop`` or ``programs`` (``auto`` decided once: pytimeloop when
        it imports, or when ``spec: v0.4`` asks for it)."""
        if getattr(self, "_engine", None) is None:
            choice = self.options.engine
            if choice == "auto":
                choice = "pytimeloop" if self.options.spec == "v0.4" or pytimeloop_error() is None else "programs"
            self._engine = choice
        return self._engine

    def check_available(self) -> None:
        if self.engine() == "programs":
            if self.options.engine == "programs":
                _program("timeloop-model")
                return
            try:
                _program("timeloop-model")
            except ToolError as exc:
                raise ToolError(f"{str(exc).split(chr(10))[0]}; nor can pytimeloop be imported "
                                f"({pytimeloop_error()})", fix=f"{TIMELOOP_FIX}; or {PYTIMELOOP_FIX}") from None
            return
        _pytimeloop()
        if self.options.spec == "v0.4":
            _timeloopfe()

    def cache_identity(self) -> dict[str, str]:
        if self.engine() == "pytimeloop":
            return {"engine": "pytimeloop", "spec": self.options.spec, **pytimeloop_identity()}
        return {"engine": "programs", **_identity("timeloop-model")}

    def evaluate(self, operation: Operation, mapping: Mapping, architecture: Architecture) -> ComputeCost:
        bounds, vaults = per_vault_bounds(operation, mapping)
        if self.engine() == "pytimeloop":
            return self._with_pytimeloop(operation, mapping, architecture, bounds, vaults)
        exe = _program("timeloop-model")
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
            text = read_stats(folder / "out" / "timeloop-model.stats.txt")
        except (OSError, ValueError) as exc:
            raise parse_failure("timeloop-model", folder, f"{type(exc).__name__}: {exc}", argv) from None
        return _cost(text, "timeloop-model", folder, argv, operation, architecture, vaults,
                     f"Timeloop engine: the timeloop-model program ({exe})")

    def _with_pytimeloop(self, operation: Operation, mapping: Mapping, architecture: Architecture,
                    bounds: dict[str, int], vaults: int) -> ComputeCost:
        """pytimeloop's evaluation (:func:`run_pytimeloop`) of the exporter's input, as a ComputeCost. Its folder
        receives Timeloop's output, and the input (``pytimeloop-input.yaml``, which ``timeloop-model`` reads as
        it is) and the statistics when it is kept: on a failure, or with NTFRAME_KEEP_FILES."""
        bindings = _pytimeloop()
        folder = workdir(f"ntframe-pytimeloop-{operation.name}-")
        argv = [_program_or_name("timeloop-model"), PYTIMELOOP_INPUT, "-o", "out"]
        tables = ert(architecture, operation) if self.options.energies == "ntframe-ert" else {}
        document = {**arch_v03(architecture, operation), **problem_yaml(operation, bounds),
                    **mapping_yaml(operation, architecture, mapping, bounds), **tables}
        stats_text = ""

        def keep() -> None:
            (folder / PYTIMELOOP_INPUT).write_text(yaml.safe_dump(document, sort_keys=False))
            (folder / "out").mkdir(exist_ok=True)
            if stats_text:
                (folder / "out" / "timeloop-model.stats.txt").write_text(stats_text)

        problems = structural_problems(operation, mapping, architecture)
        if problems:
            keep()
            raise ToolError(f"pytimeloop not run on {operation.name}: the mapping does not fit ("
                            f"{'; '.join(problems)}) and Timeloop's parsers would end the process; files kept in "
                            f"{folder}", fix="map the operation again (this mapping did not come from a valid "
                            f"search), or see what the program says: engine: programs")
        if self.options.spec == "v0.4":
            try:
                document = {**v04_document(folder, architecture, operation, document), **tables}
            except ToolError:
                raise
            except Exception as exc:       # timeloopfe's checks and translation
                keep()
                raise ToolError(f"timeloopfe could not translate the v0.4 input of {operation.name} "
                                f"({type(exc).__name__}: {exc}); files kept in {folder}",
                                fix="choose spec: v0.3 (the same design, read without timeloopfe)") from None
        if self.options.energies == "accelergy":
            document.update(accelergy_tables(folder, document, self.options.timeout_s))
        try:
            stats_text, failed = run_pytimeloop(bindings, document, folder / PYTIMELOOP_OUTPUT,
                                                self.options.isolation, self.options.timeout_s)
        except Exception as exc:       # a C++ exception (a parser's, yaml-cpp's), Timeloop's exit() in the fork
            keep()
            said = quoted_tail(tail(folder / PYTIMELOOP_OUTPUT))
            raise ToolError(f"pytimeloop failed on {operation.name}: {type(exc).__name__}: {exc}"
                            f"{' (it printed: ' + said + ')' if said else ''}; files kept in {folder}",
                            fix=rerun(folder, argv)) from None
        if failed:
            keep()
            raise ToolError(f"pytimeloop couldn't map {operation.name}: {'; '.join(failed)}; files kept in {folder}",
                            fix=rerun(folder, argv))
        if os.environ.get("NTFRAME_KEEP_FILES"):
            keep()
        where = "in a forked copy of the process" if self.options.isolation == "fork" else "in-process"
        try:
            return _cost(stats_text, "pytimeloop", folder, argv, operation, architecture, vaults,
                         f"Timeloop engine: pytimeloop {pytimeloop_version()}, its bindings ({self.options.spec} "
                         f"input, {where})")
        except ToolError:
            keep()
            raise


def _cost(text: str, what: str, folder: Path, argv: list[str], operation: Operation, architecture: Architecture,
          vaults: int, engine_note: str) -> ComputeCost:
    """The ComputeCost of Timeloop's statistics ``text`` (either engine's), checked; the folder removed after."""
    try:
        stats = parse_stats(text)
        figures = stats_figures(stats)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise parse_failure(what, folder, f"{type(exc).__name__}: {exc}", argv) from None
    check_figures(what, folder, argv, figures, ("cycles", "energy_pJ"))
    try:
        cost = to_compute_cost(operation, architecture, stats, vaults)
    except (ValueError, KeyError, TypeError) as exc:
        raise parse_failure(what, folder, f"{type(exc).__name__}: {exc}", argv) from None
    cleanup(folder)
    return dataclasses.replace(cost, notes=cost.notes + (engine_note,))


# --- pytimeloop: Timeloop's model through its Python bindings -------------------------------------------------

PYTIMELOOP_FIX = ("install pytimeloop (Accelergy-Project/timeloop-python, built from source against a Timeloop "
                  "build) and run with LD_LIBRARY_PATH naming Timeloop's lib folder and barvinok's; or choose "
                  "engine: programs")
PYTIMELOOP_INPUT = "pytimeloop-input.yaml"
"""The one YAML document pytimeloop evaluated, in its folder (``timeloop-model`` reads it as it is)."""
PYTIMELOOP_OUTPUT = "pytimeloop-output.txt"
"""What Timeloop printed (its stdout and stderr) during the evaluation."""
_LOCK = threading.Lock()
"""One in-process evaluation at a time: Timeloop keeps the current workload's shape in a global, and the output
redirection is the process's."""


def pytimeloop_error() -> str | None:
    """Why pytimeloop cannot be used here (it does not import, or fails :data:`SELF_CHECK`), or None."""
    try:
        _pytimeloop()
    except ToolError as exc:
        return str(exc).split("\n")[0]
    return None


def _pytimeloop() -> Any:
    """pytimeloop's C++ bindings module (the top-level ``bindings`` that ``import pytimeloop`` loads), once it has
    evaluated :data:`SELF_CHECK` right in this process; else a ToolError with the fix."""
    try:
        import pytimeloop  # noqa: F401
        bindings = sys.modules["bindings"]
    except Exception as exc:       # ImportError, a library the loader cannot find, a partial install
        raise ToolError(f"pytimeloop cannot be imported ({type(exc).__name__}: {exc})", fix=PYTIMELOOP_FIX) from None
    if os.getpid() not in _CHECKED:
        _CHECKED[os.getpid()] = _self_check(bindings)
    if _CHECKED[os.getpid()]:
        raise ToolError(_CHECKED[os.getpid()], fix=PYTIMELOOP_ORDER_FIX)
    return bindings


SELF_CHECK: dict[str, Any] = {
    "architecture": {"version": 0.3, "subtree": [{"name": "check", "local": [
        {"name": "memory", "class": "DRAM", "attributes": {"width": 16, "datawidth": 16, "block_size": 1}},
        {"name": "mac", "class": "intmac", "attributes": {"datawidth": 16}}]}]},
    "problem": {"shape": {"name": "check", "dimensions": ["P", "R"], "coefficients": [{"name": "c2", "default": 2}],
                          "data_spaces": [{"name": "W", "projection": [[["R"]]]},
                                          {"name": "I", "projection": [[["P", "c2"], ["R"]]]},
                                          {"name": "O", "projection": [[["P"]]], "read_write": True}]},
                "instance": {"P": 4, "R": 3, "c2": 2}},
    "mapping": [{"target": "memory", "type": "temporal", "factors": "P=4 R=3", "permutation": "RP"}]}
"""A strided window of 4 × 3 MACs on one MAC under one memory (Timeloop's built-in energies): 12 cycles. What
pytimeloop must evaluate, in a forked copy, before a process uses it: a Timeloop whose library carries its own
libstdc++ (Timeloop's build links it statically, and exports it) fails to read numbers ('bad conversion', then
exit) in a process that loaded llvmlite — numba — before it."""
_CHECKED: dict[int, str | None] = {}
"""Per process: why pytimeloop failed :data:`SELF_CHECK` there, or None."""
PYTIMELOOP_ORDER_FIX = ("import pytimeloop before numba in the process (ntframe does when it checks the cost model, "
                        "before any search), or use a Timeloop whose libraries link the shared libstdc++; or choose "
                        "engine: programs")


def _self_check(bindings: Any) -> str | None:
    """Why pytimeloop does not evaluate :data:`SELF_CHECK` right in this process (in a forked copy), or None."""
    with tempfile.TemporaryDirectory(prefix="ntframe-pytimeloop-check-") as folder:
        output = Path(folder) / PYTIMELOOP_OUTPUT
        try:
            text, failed = _in_fork(lambda: evaluate_input(bindings, SELF_CHECK), output, 60.0)
            cycles = None if failed else parse_stats(text)["cycles"]
        except Exception as exc:
            said = quoted_tail(tail(output))
            return (f"pytimeloop cannot evaluate a 12-MAC check problem in this process ({exc}"
                    f"{'; Timeloop printed: ' + said if said else ''})")
    if cycles != 12:
        return f"pytimeloop evaluates a 12-MAC check problem in this process as {failed or f'{cycles} cycles'}"
    return None


def _timeloopfe() -> tuple[Any, Any, Any]:
    """timeloopfe's v0.4 Specification, its v0.4 → v0.3 translation and its YAML writer."""
    _pytimeloop()
    try:
        from accelergy.utils.yaml import to_yaml_string
        from pytimeloop.timeloopfe.common.version_transpilers.v4_to_v3 import transpile
        from pytimeloop.timeloopfe.v4 import Specification
    except Exception as exc:
        raise ToolError(f"pytimeloop's timeloopfe cannot be imported ({type(exc).__name__}: {exc}); spec v0.4 needs "
                        "it", fix="install Accelergy's Python package (timeloopfe imports it; from its source, no "
                                  "package index serves it), or choose spec: v0.3") from None
    return Specification, transpile, to_yaml_string


def pytimeloop_version() -> str:
    try:
        return importlib.metadata.version("pytimeloop")
    except importlib.metadata.PackageNotFoundError:
        return "(no version)"


def pytimeloop_identity() -> dict[str, str]:
    """pytimeloop's version and folder, and the path and SHA-256 of its bindings module and of every
    ``libtimeloop*`` library this process loaded (where Timeloop's code is)."""
    bindings = _pytimeloop()
    import pytimeloop
    out = {"pytimeloop_version": pytimeloop_version(), "pytimeloop": str(Path(pytimeloop.__file__).resolve().parent)}
    files = {"bindings": Path(bindings.__file__)}
    try:
        maps = Path("/proc/self/maps").read_text().split("\n")
    except OSError:
        maps = []
    for line in maps:
        fields = line.split(maxsplit=5)
        if len(fields) == 6 and Path(fields[5]).name.startswith("libtimeloop"):
            files.setdefault(Path(fields[5]).name, Path(fields[5]))
    for name, path in files.items():
        out[name] = str(path.resolve())
        out[f"{name}_sha256"] = file_sha256(path.resolve())
    return out


def _program_or_name(name: str) -> str:
    """The program's path when there is one, else its name (for a rerun command)."""
    try:
        return _program(name)
    except ToolError:
        return name


def v04_document(folder: Path, architecture: Architecture, operation: Operation,
                 document: dict[str, Any]) -> dict[str, Any]:
    """The exporter's v0.4 architecture, with the v0.3 ``document``'s problem and mapping, through timeloopfe —
    its checks and processors (what its ``call_model`` runs first), then its translation to v0.3 and its YAML
    writer — as the v0.3 document it hands Timeloop. The translation is asked for no dummy storage level above a
    fan-out (``add_spatial_dummy=False``, as timeloopfe's fused front end does): the v0.3 tree is then the
    exporter's, level for level, and the mapping's spatial directives stay on the fan-out's parent."""
    specification, transpile, to_yaml_string = _timeloopfe()
    problem = {"problem": {**document["problem"], "version": 0.4}}
    mapping = {"mapping": [{**d, "type": "dataspace"} if d["type"] == "bypass" else d    # v0.4's keep/bypass
                           for d in document["mapping"]]}
    inputs = {"arch-v0.4.yaml": arch_v04(architecture, operation),
              "problem-v0.4.yaml": yaml.safe_dump(problem, sort_keys=False),
              "mapping-v0.4.yaml": yaml.safe_dump(mapping, sort_keys=False)}
    for name, text in inputs.items():
        (folder / name).write_text(text)
    with _python_output_to(folder / "timeloopfe-output.txt"):
        spec = specification.from_yaml_files([str(folder / name) for name in inputs])._process()
        return yaml.safe_load(to_yaml_string(transpile(spec, for_model=True, add_spatial_dummy=False)))


def accelergy_tables(folder: Path, document: dict[str, Any], timeout_s: float) -> dict[str, Any]:
    """``energies: accelergy`` with pytimeloop: Accelergy's ERT and ART for ``document``, as the programs get them
    (the ``accelergy`` program, found as Timeloop finds it: on PATH or in ACCELERGYPATH); {} when there is no
    Accelergy (Timeloop's built-in energies then, flagged in the result)."""
    exe = shutil.which("accelergy") or shutil.which("accelergy", path=os.environ.get("ACCELERGYPATH") or os.defpath)
    if not exe:
        return {}
    (folder / "accelergy-input.yaml").write_text(yaml.safe_dump(document, sort_keys=False))
    argv = [exe, "accelergy-input.yaml", "--oprefix", "timeloop-model.", "-o", "out/"]
    run_tool(argv, folder, timeout_s, "accelergy")
    tables: dict[str, Any] = {}
    try:
        for table in ("ERT", "ART"):
            tables.update(yaml.safe_load(read_stats(folder / "out" / f"timeloop-model.{table}.yaml")))
    except (OSError, ValueError, TypeError, yaml.YAMLError) as exc:
        raise parse_failure("accelergy", folder, f"{type(exc).__name__}: {exc}", argv) from None
    return tables


def config_of(bindings: Any, document: dict[str, Any]) -> Any:
    """``document`` as Timeloop's configuration (a pytimeloop ``Config``), built node by node: what parsing its
    YAML text gives, without the text — Timeloop's reading of a text runs a hundred-odd regular expressions over
    it first (renaming deprecated hyphenated keywords, which the exporter never writes), 30–40 ms of a 2 KB input.
    Scalars are handed over as the text YAML would hold (Python's shortest round-trip form of a float); empty
    lists and maps come from a small parsed text, since an empty node built from Python would be null."""
    empties: list[str] = []

    def count(value: Any) -> None:
        if isinstance(value, (dict, list)):
            if not value:
                empties.append("{}" if isinstance(value, dict) else "[]")
            for item in value.values() if isinstance(value, dict) else value:
                count(item)

    count(document)
    config = bindings.config.Config("{" + "".join(f"_empty{i}: {e}, " for i, e in enumerate(empties)) + "}", "yaml")
    root, node = config.root, bindings.config.Config.ConfigNode
    spare = iter(range(len(empties)))

    def build(value: Any) -> Any:
        if isinstance(value, (dict, list)):
            if not value:
                return root[f"_empty{next(spare)}"]
            out = node()
            if isinstance(value, dict):
                for key, item in value.items():
                    out[str(key)] = build(item)
            else:
                for item in value:
                    out.append(build(item))
            return out
        if value is None or isinstance(value, bool):
            return value
        return repr(value) if isinstance(value, float) else str(value)

    for key, value in document.items():
        root[str(key)] = build(value)
    return config


def evaluate_input(bindings: Any, document: dict[str, Any]) -> tuple[str, list[str]]:
    """Evaluate one v0.3 input (architecture, problem, mapping, ERT/ART if any) with Timeloop's Engine through
    pytimeloop's bindings, as ``timeloop-model`` does: (the statistics text, ``timeloop-model.stats.txt``'s), or
    ('', the levels that failed with Timeloop's reasons). What Timeloop raises goes on."""
    config = root = workload = specs = sparse = mapping = engine = None
    try:
        config = config_of(bindings, document)
        root = config.root
        workload = bindings.problem.Workload(root["problem"])
        specs = bindings.model.ArchSpecs(root["architecture"], False)
        if "ERT" in root:
            specs.parse_accelergy_ert(root["ERT"])
        if "ART" in root:
            specs.parse_accelergy_art(root["ART"])
        sparse = bindings.model.SparseOptimizationInfo(bindings.config.Config.ConfigNode(), specs)
        mapping = bindings.mapping.Mapping(root["mapping"], specs, workload)
        engine = bindings.model.Engine(specs)
        status = engine.evaluate(mapping, workload, sparse, False)
        failed = [f"level {name}: {s.fail_reason}" for name, s in zip(specs.level_names(), status) if not s.success]
        return ("", failed) if failed else (engine.pretty_print_stats(), [])
    finally:
        # the engine holds the mapping, the workload and the options; the workload goes last (its destructor
        # clears Timeloop's global shape, which the others' destructors may still read)
        del engine, mapping, sparse, specs, root
        del workload, config


def run_pytimeloop(bindings: Any, document: dict[str, Any], output: Path, isolation: str,
                   timeout_s: float) -> tuple[str, list[str]]:
    """:func:`evaluate_input` with everything Timeloop prints going to the file ``output``: in a forked copy of
    this process (``isolation: fork``; an exit() or a crash there ends only the copy: a RuntimeError here), or in
    this process itself, one evaluation at a time (``none``)."""
    if isolation == "fork":
        return _in_fork(lambda: evaluate_input(bindings, document), output, timeout_s)
    with _LOCK, _output_to(output):
        return evaluate_input(bindings, document)


def _in_fork(work, output: Path, timeout_s: float) -> Any:
    """``work()`` in a forked child whose file descriptors 1 and 2 (and sys.stdout, sys.stderr) go to ``output``;
    its JSON-able result comes back through a pipe. What it raises comes back as a RuntimeError with its text; a
    child that ends otherwise (Timeloop's exit(), a signal) or outlives ``timeout_s`` (it is killed) is a
    RuntimeError saying so. The child never returns into the caller's code: it leaves with os._exit."""
    read_end, write_end = os.pipe()
    for stream in (sys.stdout, sys.stderr):
        if stream is not None:
            stream.flush()
    pid = os.fork()
    if pid == 0:                                   # the child
        code = 70
        try:
            os.close(read_end)
            sink = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            os.dup2(sink, 1)
            os.dup2(sink, 2)
            sys.stdout = sys.stderr = open(output, "a")
            faulthandler.disable()     # a crash: Timeloop's own last words end the file, no Python traceback anywhere
            try:
                payload = {"result": work()}
                code = 0
            except BaseException as exc:           # noqa: BLE001 (everything goes back to the parent)
                payload = {"error": f"{type(exc).__name__}: {exc}"}
                code = 1
            data = json.dumps(payload).encode()
            with os.fdopen(write_end, "wb") as pipe:
                pipe.write(data)
        finally:
            try:
                sys.stdout.flush()
                ctypes.CDLL(None).fflush(None)
            finally:
                os._exit(code)
    os.close(write_end)
    chunks, deadline = [], time.monotonic() + timeout_s
    try:
        with os.fdopen(read_end, "rb") as pipe:
            while True:
                ready, _, _ = select.select([pipe], [], [], max(0.0, deadline - time.monotonic()))
                if not ready:
                    os.kill(pid, signal.SIGKILL)
                    os.waitpid(pid, 0)
                    raise RuntimeError(f"the evaluation did not finish within {timeout_s:g} s (its option timeout_s) "
                                       f"and was stopped")
                chunk = os.read(pipe.fileno(), 1 << 16)
                if not chunk:
                    break
                chunks.append(chunk)
        _, status = os.waitpid(pid, 0)
    except BaseException:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        raise
    code = os.waitstatus_to_exitcode(status)
    try:
        payload = json.loads(b"".join(chunks)) if chunks else None
    except ValueError:
        payload = None
    if payload is None:
        raise RuntimeError(f"the forked evaluation {exit_description(code).replace('failed with', 'ended with')} "
                           "without a result (Timeloop exits on input it refuses)")
    if "error" in payload:
        raise RuntimeError(payload["error"])
    return payload["result"]


@contextlib.contextmanager
def _python_output_to(path: Path):
    """Python's sys.stdout and sys.stderr to the file ``path`` (pybind11 sends C++ output there inside some
    calls)."""
    with open(path, "a") as sink, contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        yield


@contextlib.contextmanager
def _output_to(path: Path):
    """Everything the process prints — file descriptors 1 and 2 (Timeloop's std::cout and std::cerr) and Python's
    sys.stdout and sys.stderr — to the file ``path``, restored after."""
    libc = ctypes.CDLL(None)
    for stream in (sys.stdout, sys.stderr):
        if stream is not None:
            stream.flush()
    libc.fflush(None)
    saved = os.dup(1), os.dup(2)
    try:
        with open(path, "ab") as sink:
            os.dup2(sink.fileno(), 1)
            os.dup2(sink.fileno(), 2)
        with _python_output_to(path):
            yield
    finally:
        libc.fflush(None)
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        os.close(saved[0])
        os.close(saved[1])


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

