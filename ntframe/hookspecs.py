"""The whole plugin contract: six registration hooks, each receiving a ``register`` callback.

A plugin module implements any of them with ``@ntframe.hookimpl`` and calls ``register(ComponentClass)`` once
per component; the host records which plugin (and distribution version) registered what. Plugins are found
through the entry-point group ``ntframe``.
"""

from __future__ import annotations

from typing import Callable

import pluggy

hookspec = pluggy.HookspecMarker("ntframe")
hookimpl = pluggy.HookimplMarker("ntframe")

Register = Callable[[type], None]


@hookspec
def ntframe_register_workload_frontends(register: Register) -> None:
    """Register :class:`ntframe.components.WorkloadFrontend` subclasses (network loaders)."""


@hookspec
def ntframe_register_mappers(register: Register) -> None:
    """Register :class:`ntframe.components.MappingSearcher` subclasses (mapping searchers)."""


@hookspec
def ntframe_register_cost_models(register: Register) -> None:
    """Register :class:`ntframe.components.CostModel` subclasses (compute cost models)."""


@hookspec
def ntframe_register_memory_backends(register: Register) -> None:
    """Register :class:`ntframe.components.MemoryBackend` subclasses (memory simulators)."""


@hookspec
def ntframe_register_component_estimators(register: Register) -> None:
    """Register :class:`ntframe.components.ComponentEstimator` subclasses (energy, area and static power of an
    architecture's components at its technology node, as Accelergy's estimation plug-ins)."""


@hookspec
def ntframe_register_interconnects(register: Register) -> None:
    """Register :class:`ntframe.components.InterconnectModel` subclasses (the time and energy of collectives among
    cubes joined by HMC links)."""


HOOK_FAMILIES = {
    "ntframe_register_workload_frontends": "workload_frontend",
    "ntframe_register_mappers": "mapper",
    "ntframe_register_cost_models": "cost_model",
    "ntframe_register_memory_backends": "memory_backend",
    "ntframe_register_component_estimators": "component_estimator",
    "ntframe_register_interconnects": "interconnect",
}
