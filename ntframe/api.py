"""The Python API: validate, run and compare specs from a notebook, a script or a sweep. The CLI is a thin layer
over these functions.

>>> import ntframe
>>> r = ntframe.run("spec.yaml", overrides={"workload.batch": 64})
>>> r.totals["efficiency_GFLOPS_per_W"], r.to_pandas(), r.to_parquet("operations.parquet")

A spec is a path to a YAML file, or a dict with the same keys (its relative paths resolve against the working
folder, or ``base``). Overrides are dotted paths into the spec (``"mapper.budget.evaluations"``,
``"workload.phases"``) with their values; they become part of the resolved spec, its hash and the provenance.
Errors are :class:`ntframe.errors.NtframeError` s: a bad spec or override raises ``SpecError`` naming where it was
written (file and line, or the override) and the dotted path; a missing external tool raises ``ToolError`` with
its fix. Plugins are loaded once per process (:func:`plugin_host`).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from ntframe.bundle import Results, usable_folder
from ntframe.errors import SpecError
from ntframe.host import PluginHost
from ntframe.runner import OPERATION_TIMEOUT_S, Resolved, component_estimates, resolve
from ntframe.spec import LoadedSpec, Override, load_spec

if TYPE_CHECKING:
    from ntframe.hardware.architecture import Architecture

SpecSource = str | os.PathLike | Mapping[str, Any]
Overrides = Mapping[str, Any] | Sequence[Override | str] | None
Progress = Callable[[int, int, str], None]

_host: PluginHost | None = None


def plugin_host() -> PluginHost:
    """The process's plugin host: every entry point of the group ``ntframe``, loaded on first use (plugins that
    fail to load are listed by ``plugin_host().failures()`` and skipped)."""
    global _host
    if _host is None:
        _host = PluginHost().load()
    return _host


def load_architecture(path: str | os.PathLike, **options: Any) -> "Architecture":
    """An architecture file (a path, or a shipped one by name: ``"neurotrainer/hmc2-32vault"``) built with the
    installed component estimators, as a run builds it; ``options`` as
    :func:`ntframe.hardware.architecture.load_architecture` takes them (``cubes``, ``constraints``, ``technology``)."""
    from ntframe.hardware.architecture import load_architecture as load_file
    from ntframe.paths import resolve_path
    options.setdefault("estimate", component_estimates(plugin_host()))
    return load_file(resolve_path(str(path), Path.cwd(), "arch_specs"), **options)


def load(spec: SpecSource, overrides: Overrides = None, *, base: str | os.PathLike | None = None) -> LoadedSpec:
    """Read and check the spec's own keys (not yet the plugins' options: see :func:`validate`)."""
    if isinstance(spec, LoadedSpec):
        return spec
    source = spec if isinstance(spec, Mapping) else Path(spec)
    return load_spec(source, overrides, base=Path(base) if base is not None else None)


def validate(spec: SpecSource, overrides: Overrides = None, *, host: PluginHost | None = None,
             base: str | os.PathLike | None = None) -> Resolved:
    """Check the spec, every selected component's options and the architecture file, and that the external tools
    the components drive are found; nothing is simulated. Returns the resolved spec (``.resolved_spec``, the
    loaded ``.architecture``, the ``.components``)."""
    loaded = spec if isinstance(spec, LoadedSpec) else load(spec, overrides, base=base)
    return resolve(loaded, host or plugin_host())


def run(spec: SpecSource | Resolved, overrides: Overrides = None, *, write: bool | str | os.PathLike = False,
        host: PluginHost | None = None, progress: Progress | None = None,
        base: str | os.PathLike | None = None, jobs: int | None = None,
        operation_timeout_s: float | None = OPERATION_TIMEOUT_S, deadline_s: float | None = None) -> Results:
    """Simulate one training step of the spec. ``write=True`` also writes the bundle to the spec's ``output``
    folder (as ``ntframe run`` does; checked before any work), a path writes it there; ``Results.written`` says
    what was written. ``jobs``: worker processes for the operations not in the mapping cache (default
    ``NTFRAME_JOBS``, else every core this process may use); it changes the time, never a figure.
    ``operation_timeout_s`` (default 1,800 s) bounds each operation's mapping and simulation, ``deadline_s`` the
    whole run (None: no bound): an operation stopped by either is an error row, the others' figures stand."""
    from ntframe.runner import run as run_resolved
    resolved = spec if isinstance(spec, Resolved) else validate(spec, overrides, host=host, base=base)
    target = None if write is False else resolved.loaded.output_folder(None if write is True else write)
    fresh = target is not None and not target.exists()
    folder = None if target is None else usable_folder(target)
    started = time.perf_counter()
    try:
        results = Results(run_resolved(resolved, progress, jobs, operation_timeout_s, deadline_s))
    except BaseException:
        if fresh and folder is not None:        # made only to check it: nothing half-written is left
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise
    cache = resolved.cache
    results.stats = {"elapsed_s": time.perf_counter() - started,
                     "mapping_cache_hits": cache.hits if cache and cache.folder else None,
                     "mapping_cache_misses": cache.misses if cache and cache.folder else None}
    if folder is not None:
        results.written = results.write(folder)
    return results


def compare(spec: SpecSource | Resolved, *, cost_models: Sequence[str] | None = None,
            mappers: Sequence[str] | None = None, memories: Sequence[str] | None = None,
            mapping_from: str | None = None, cost_model: str | None = None, operations: Sequence[str] | None = None,
            baseline: str | None = None, overrides: Overrides = None, host: PluginHost | None = None,
            base: str | os.PathLike | None = None, operation_timeout_s: float | None = OPERATION_TIMEOUT_S,
            scope: str = "module"):
    """Several cost models on the same mapping per operation (``cost_models``, optionally each with every one of
    ``memories``, mapped with the spec's cost model or ``mapping_from``), or several mappers on the same cost model
    (``mappers``, searching with the spec's cost model or ``cost_model``). Returns a
    :class:`ntframe.studies.compare.Comparison` (ratios against ``baseline``, default the first column).
    ``operation_timeout_s`` bounds each operation's cells (None: no bound); a stopped one is an error cell.
    ``scope`` (cost models only): the power scope whose energy is compared (``datapath``, ``logic_die``,
    ``module``, ``system``)."""
    from ntframe.studies import compare as study
    if bool(cost_models) == bool(mappers):
        raise SpecError("compare needs exactly one of cost_models (--cost-models A,B,...) or mappers "
                        "(--mappers A,B,...)")
    host = host or plugin_host()
    resolved = spec if isinstance(spec, Resolved) else validate(spec, overrides, host=host, base=base)
    only = list(operations) if operations else None
    if cost_models:
        document = study.compare_cost_models(resolved, host, study.distinct(cost_models, "--cost-models"),
                                             study.distinct(memories, "--memory") if memories else None,
                                             mapping_from, only, operation_timeout_s, scope)
    else:
        if memories or mapping_from or scope != "module":
            raise SpecError("--memory, --mapping-from and --scope go with --cost-models, not --mappers")
        document = study.compare_mappers(resolved, host, study.distinct(mappers, "--mappers"), cost_model, only,
                                         operation_timeout_s)
    return study.Comparison(document, baseline, output_folder=resolved.loaded.output_folder(None) / "compare")


__all__ = ["plugin_host", "load", "validate", "run", "compare", "Results"]
