"""The plugin host: guarded entry-point loading, attributed registration, lookup by name.

Loading is lazy (``PluginHost.load()``, called by the CLI and the runner, never at import) and idempotent.
Each entry point of the group ``ntframe`` is loaded and registered inside its own guard: a plugin that fails
at import (any exception, ``sys.exit`` included; only Ctrl-C goes through), has a misspelled hook (pluggy's
``check_pending``), or raises while registering is reported and skipped; the others keep working.
``NTFRAME_DISABLE_PLUGINS=a,b`` blocks plugins by entry-point name; ``NTFRAME_LOAD_PLUGINS=a,b`` loads only those.

Names are never taken over: the plugins shipped with ntframe (entry points of the ``ntframe`` distribution)
register first, and a plugin that registers a component name already taken is rejected with an error naming both
plugins. Between two third-party plugins the name is then ambiguous: selecting it is an error that names both,
until one of them is blocked. To use a third party's component under a shipped name deliberately, block the
shipped plugin (``NTFRAME_DISABLE_PLUGINS=native-cost``).
"""

from __future__ import annotations

import os
import traceback
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Iterable

import pluggy

from ntframe import hookspecs
from ntframe.components import FAMILIES, Component
from ntframe.errors import PluginError, SpecError

ENTRY_POINT_GROUP = "ntframe"


@dataclass(frozen=True)
class Registered:
    family: str
    name: str
    cls: type[Component]
    plugin: str
    version: str


@dataclass
class PluginInfo:
    name: str
    version: str
    distribution: str
    module: str
    components: list[tuple[str, str]] = field(default_factory=list)
    error: str | None = None
    blocked: bool = False


SHIPPED = "ntframe"
"""The distribution whose plugins are ntframe's own: they register first, and their names cannot be taken."""


def _shipped(ep: metadata.EntryPoint) -> bool:
    dist = getattr(ep, "dist", None)
    return dist is not None and dist.metadata["Name"] == SHIPPED


def _env_list(name: str) -> set[str] | None:
    value = os.environ.get(name)
    if value is None:
        return None
    return {part.strip() for part in value.split(",") if part.strip()}


class PluginHost:
    def __init__(self) -> None:
        self.pm = pluggy.PluginManager("ntframe")
        self.pm.add_hookspecs(hookspecs)
        self.plugins: dict[str, PluginInfo] = {}
        self.components: dict[tuple[str, str], Registered] = {}
        self.clashes: dict[tuple[str, str], list[str]] = {}     # a name two third-party plugins register
        self._loaded = False

    # --- loading -----------------------------------------------------------------------------------------
    def load(self, entry_points: Iterable[metadata.EntryPoint] | None = None) -> "PluginHost":
        if self._loaded:
            return self
        self._loaded = True
        if entry_points is None:
            entry_points = metadata.entry_points(group=ENTRY_POINT_GROUP)
        disabled = _env_list("NTFRAME_DISABLE_PLUGINS") or set()
        allowed = _env_list("NTFRAME_LOAD_PLUGINS")
        eps = sorted(entry_points, key=lambda ep: (not _shipped(ep), ep.name))
        for ep in eps:
            dist = getattr(ep, "dist", None)
            info = PluginInfo(ep.name, dist.version if dist else "unknown",
                              dist.metadata["Name"] if dist else "unknown", ep.value)
            if ep.name in self.plugins:
                info.error = (f"entry-point name '{ep.name}' is used twice (also by "
                              f"{self.plugins[ep.name].distribution}); skipped")
                self.plugins[f"{ep.name}#{len(self.plugins)}"] = info
                continue
            self.plugins[ep.name] = info
            if ep.name in disabled or (allowed is not None and ep.name not in allowed):
                info.blocked = True
                continue
            self._load_one(ep, info)
        return self

    def register_module(self, module: Any, name: str, version: str = "0") -> PluginInfo:
        """Register an already imported plugin object (tests, notebooks). Same guards as entry points."""
        info = PluginInfo(name, version, name, getattr(module, "__name__", repr(module)))
        self.plugins[name] = info
        self._loaded = True
        self._register(module, info)
        return info

    def _load_one(self, ep: metadata.EntryPoint, info: PluginInfo) -> None:
        try:
            module = ep.load()
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # a broken plugin (even one calling sys.exit) must not take the host down
            info.error = f"import failed: {type(exc).__name__}: {exc}"
            return
        self._register(module, info)

    def _register(self, module: Any, info: PluginInfo) -> None:
        try:
            self.pm.register(module, name=info.name)
            self.pm.check_pending()
        except Exception as exc:
            info.error = f"invalid hooks: {type(exc).__name__}: {exc}".splitlines()[0]
            if self.pm.is_registered(module):
                self.pm.unregister(module)
            return
        others = [p for p in self.pm.get_plugins() if p is not module]
        staged: dict[tuple[str, str], Registered] = {}
        for hook_name, family in hookspecs.HOOK_FAMILIES.items():
            caller = self.pm.subset_hook_caller(hook_name, remove_plugins=others)

            def register(cls: type, _family: str = family) -> None:
                self._check_component(cls, _family, info, staged)
                staged[(_family, cls.name)] = Registered(_family, cls.name, cls, info.name, info.version)

            try:
                caller(register=register)
            except KeyboardInterrupt:
                raise
            except BaseException as exc:
                info.error = f"registration failed in {hook_name}: {type(exc).__name__}: {exc}"
                info.error += f" ({traceback.extract_tb(exc.__traceback__)[-1].filename})" if exc.__traceback__ else ""
                self.pm.unregister(module)
                return
        self.components.update(staged)
        info.components = sorted(staged)

    def _check_component(self, cls: type, family: str, info: PluginInfo,
                         staged: dict[tuple[str, str], Registered]) -> None:
        base = FAMILIES[family]
        if not (isinstance(cls, type) and issubclass(cls, base)):
            raise PluginError(f"registered {cls!r}, which is not a subclass of {base.__module__}.{base.__name__}")
        name = getattr(cls, "name", None)
        if not isinstance(name, str) or not name:
            raise PluginError(f"{cls.__name__} has no 'name'")
        clash = self.components.get((family, name)) or staged.get((family, name))
        if clash is not None:
            if clash.plugin == info.name:
                raise PluginError(f"{family} '{name}' is registered twice by plugin '{info.name}'")
            first = self.plugins.get(clash.plugin)
            if first is not None and first.distribution == SHIPPED:
                raise PluginError(f"{family} '{name}' is already registered by plugin '{clash.plugin}', shipped with "
                                  f"ntframe; plugin '{info.name}' registers it again (rename it, or block the "
                                  f"shipped plugin deliberately: NTFRAME_DISABLE_PLUGINS={clash.plugin})")
            self.clashes.setdefault((family, name), [clash.plugin]).append(info.name)
            raise PluginError(f"{family} '{name}' is already registered by plugin '{clash.plugin}'; plugin "
                              f"'{info.name}' registers it again (selecting '{name}' is an error until one of "
                              f"them is blocked with NTFRAME_DISABLE_PLUGINS)")

    # --- lookup ------------------------------------------------------------------------------------------
    def names(self, family: str) -> list[str]:
        return sorted(name for fam, name in self.components if fam == family)

    def get(self, family: str, name: str) -> Registered:
        if (family, name) in self.clashes:
            plugins = self.clashes[(family, name)]
            raise SpecError(f"{family.replace('_', ' ')} '{name}' is registered by plugins "
                            f"{' and '.join(repr(p) for p in plugins)}; choose one by blocking the others: "
                            f"NTFRAME_DISABLE_PLUGINS={','.join(plugins[1:])} (or {plugins[0]})")
        found = self.components.get((family, name))
        if found is None:
            from ntframe.yamlio import did_you_mean
            known = self.names(family)
            raise SpecError(f"no {family.replace('_', ' ')} named '{name}'; registered: "
                            f"{', '.join(known) or '(none)'}{did_you_mean(name, known)}")
        return found

    def failures(self) -> list[PluginInfo]:
        return [p for p in self.plugins.values() if p.error]

    def describe(self) -> list[dict]:
        return [{"name": p.name, "version": p.version, "distribution": p.distribution, "module": p.module,
                 "blocked": p.blocked, "error": p.error,
                 "components": [{"family": f, "name": n} for f, n in p.components]}
                for p in self.plugins.values()]
