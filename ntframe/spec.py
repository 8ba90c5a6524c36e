"""The user's spec: pydantic models (``extra="forbid"``) for the core keys of each section.

Every key of a section that is not a core key belongs to the plugin the section selects and is validated by
that component's ``Options`` model (see :func:`ntframe.runner.resolve`), so a wrong key names its owner.

A spec is a file or a dict (the Python API), with optional dotted overrides (``--set workload.batch=64``,
``overrides={"workload.batch": 64}``) applied before validation: an error in an overridden value names the
override, as an error in the file names its line. Paths in a spec resolve relative to the spec's folder (a
dict's: the working folder).

```yaml
version: 1
name: small-cnn
workload: {frontend: layers, file: workloads/small-cnn.yaml, batch: 16}
architecture: {spec: arch_specs/neurotrainer/hmc2-32vault.yaml, cubes: 1}
mapper: {name: native, budget: {evaluations: 500, seconds: 5}, seed: 0}
cost_model: native
memory: {backend: hmc-analytic}
output: results/small-cnn
```
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import PositiveFloat, BaseModel, ConfigDict, Field, PositiveInt, field_validator, model_validator

from ntframe.components import Budget
from ntframe.errors import SpecError
from ntframe.hardware.architecture import TechnologySpec
from ntframe.workload.ir import PHASES, Phase
from ntframe.yamlio import Positions, dotted, load_yaml, parse_yaml, validate


class _Section(BaseModel):
    """A section whose extra keys are the selected plugin's options (checked against its Options model)."""

    model_config = ConfigDict(extra="allow")

    def plugin_options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class WorkloadSection(_Section):
    frontend: str = "layers"
    """Workload frontend plugin component."""
    batch: PositiveInt = 1
    """Samples per training step."""
    phases: list[Phase] = Field(default_factory=lambda: list(PHASES))
    """Training phases to simulate."""
    optimizer: Literal["sgd", "momentum", "adam"] = "sgd"
    """Optimizer of the update phase (its state tensors are read and written there)."""
    backward_data: Literal["scatter", "transposed"] = "scatter"
    """A convolution's input gradient: scatter (the useful MACs, through the forward window) or transposed (the
    zero-padded transposed convolution, as ZigZag and nn-dataflow count it; docs/training.md)."""

    @field_validator("phases")
    @classmethod
    def _unique(cls, value: list[Phase]) -> list[Phase]:
        if len(set(value)) != len(value) or not value:
            raise ValueError("phases must be a non-empty list without repeats")
        return value


class ArchitectureSection(BaseModel):
    model_config = ConfigDict(extra="forbid")
    spec: str
    """Architecture file: a path (relative to this spec) or a shipped name under arch_specs/."""
    cubes: PositiveInt = 1
    """Memory cubes (each with the file's vaults and engines)."""
    precision_bits: dict[Phase, PositiveInt] = {}
    """Override the architecture's operand precision per phase."""
    technology: TechnologySpec | None = None
    """Build the architecture at this node and supply (``{node_nm: 15, supply_V: 0.8}``) instead of the file's own
    ``technology``; every component's figures are still taken from where the file says they were measured, through
    its estimator (``ntframe arch show`` prints the result)."""
    die_area_mm2: PositiveFloat | None = None
    """Area of the logic die under the DRAM stack: a design whose logic-die components (the architecture's
    ``area_um2`` figures, all instances) need more is reported (``ntframe validate`` and ``run`` warn,
    ``totals.area.fits`` says so)."""


class MapperSection(_Section):
    name: str = "native"
    """Mapping searcher component (``ntframe plugins`` lists them); the section's other keys are its options."""
    budget: Budget = Budget()
    """How much the search may spend per operation."""
    seed: int = 0
    """Seed of the mapping searches that sample (timeloop-mapper, and the native and data-flow mappers with a cost
    model that cannot bound structures); the bounded search does not depend on it. The same seed and evaluation
    budget give the same mappings."""
    cache: bool = True
    """Keep search results in the mapping cache (NTFRAME_CACHE_DIR, else ~/.cache/ntframe)."""
    constraints: dict[str, dict[str, Any]] = {}
    """Mapping constraints a study adds to the architecture's, by node name: a storage level takes ``keep``,
    ``bypass``, ``permutation`` (innermost first) and ``factors``; a container ``dims``, ``factors`` and
    ``no_spatial_reduction`` (docs/model.md, "Mapping constraints"). The native, neurotrainer-dataflow and
    timeloop-mapper mappers honour them all; zigzag-loma honours keep/bypass, spatial dimensions, exact spatial
    factors and the innermost level's permutation, and refuses the others with an error naming them."""


class CostModelSection(_Section):
    name: str = "native"
    """Compute cost model component; the section's other keys are its options."""


class MemorySection(_Section):
    backend: str = "hmc-analytic"
    """Memory backend component; the section's other keys are its options."""


class Spec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: Literal[1]
    name: str = Field(min_length=1)
    workload: WorkloadSection
    architecture: ArchitectureSection
    mapper: MapperSection = MapperSection()
    cost_model: CostModelSection = CostModelSection()
    memory: MemorySection = MemorySection()
    output: str | None = None
    """Results folder, relative to the spec's folder like every path in a spec; default: results/<name> in the
    working folder. ``ntframe run -o DIR`` (relative to the working folder) takes precedence."""

    @model_validator(mode="before")
    @classmethod
    def _short_forms(cls, data: Any) -> Any:
        return expand_short_forms(data)


SHORT_FORMS = {"cost_model": "name", "memory": "backend", "mapper": "name"}
"""Sections that may be given as their selector alone (``cost_model: native``)."""


def expand_short_forms(data: Any) -> Any:
    """``cost_model: native`` -> ``cost_model: {name: native}`` (and ``memory``, ``mapper``)."""
    if isinstance(data, dict):
        data = dict(data)
        for section, key in SHORT_FORMS.items():
            if isinstance(data.get(section), str):
                data[section] = {key: data[section]}
    return data


# which key of each section selects the component, and its family
SELECTORS: dict[str, tuple[str, str]] = {
    "workload": ("frontend", "workload_frontend"),
    "mapper": ("name", "mapper"),
    "cost_model": ("name", "cost_model"),
    "memory": ("backend", "memory_backend"),
}


@dataclass(frozen=True)
class Override:
    """One dotted override of a spec value, and how to name it in an error."""

    path: str
    value: Any
    label: str


def overrides_from(given: Mapping[str, Any] | Sequence[Override | str] | None) -> list[Override]:
    """Overrides as the Python API takes them (``{"workload.batch": 64}``, or ``["workload.batch=64"]`` as
    ``--set`` takes them), or already made; anything else is a SpecError."""
    if not given:
        return []
    if isinstance(given, Mapping):
        return [Override(str(k), v, f"override {k}={v!r}") for k, v in given.items()]
    if isinstance(given, (list, tuple)):
        out: list[Override] = []
        for item in given:
            if isinstance(item, Override):
                out.append(item)
            elif isinstance(item, str):
                out += parse_set([item])
            else:
                raise SpecError(f"overrides: expected 'path=value' strings or a mapping {{path: value}}, not an item "
                                f"of type {type(item).__name__} ({item!r})")
        return out
    raise SpecError(f"overrides: expected a mapping {{path: value}} or a list of 'path=value' strings, not a "
                    f"{type(given).__name__}")


def parse_set(arguments: Sequence[str]) -> list[Override]:
    """``--set PATH=VALUE`` arguments; VALUE is read as YAML (``64``, ``true``, ``[forward, update]``)."""
    out = []
    for argument in arguments:
        label = f"--set {argument if len(argument) <= 80 else argument[:77] + '...'}"
        path, sep, text = argument.partition("=")
        if not sep or not path.strip():
            raise SpecError("expected PATH=VALUE, e.g. --set workload.batch=64", file=label)
        try:
            value = parse_yaml(text, label)[0] if text.strip() else ""
        except SpecError as exc:
            raise SpecError(f"the value is not valid YAML: {exc.message}", file=label, path=path.strip()) from None
        out.append(Override(path.strip(), value, label))
    return out


def _path_parts(override: Override) -> tuple[str, ...]:
    parts = tuple(override.path.split("."))
    if any(not part for part in parts):
        raise SpecError(f"'{override.path}' is not a dotted path (an empty part)", file=override.label)
    return parts


def apply_overrides(data: dict[str, Any], overrides: Sequence[Override], positions: Positions) -> dict[str, Any]:
    """``data`` with every override set (intermediate sections created), and ``positions`` told where each
    overridden value comes from."""
    data = expand_short_forms(copy.deepcopy(data))
    seen: dict[str, Override] = {}
    for override in overrides:
        if override.path in seen and seen[override.path].value != override.value:
            raise SpecError(f"'{override.path}' is set twice ({seen[override.path].label})", file=override.label,
                            path=override.path)
        seen[override.path] = override
        parts = _path_parts(override)
        node: Any = data
        for depth, part in enumerate(parts):
            loc = parts[: depth + 1]
            last = depth == len(parts) - 1
            if isinstance(node, list):
                if not (part.isdigit() and int(part) < len(node)):
                    raise SpecError(f"'{dotted(loc[:-1])}' is a list of {len(node)}: '{part}' is not an index "
                                    f"into it", file=override.label, path=dotted(loc))
                key: Any = int(part)
            elif isinstance(node, dict):
                key = part
            else:
                raise SpecError(f"'{dotted(loc[:-1])}' is the value {node!r}, not a section: nothing can be set "
                                f"inside it", file=override.label, path=dotted(loc))
            if last:
                node[key] = copy.deepcopy(override.value)
            else:
                if isinstance(node, dict) and node.get(key) is None:
                    node[key] = {}
                if depth == 0 and isinstance(node[key], str) and key in SHORT_FORMS:
                    node[key] = {SHORT_FORMS[key]: node[key]}
                node = node[key]
        positions.replaced(parts, override.label)
    return data


@dataclass
class LoadedSpec:
    spec: Spec
    path: Path | None               # None: a spec given as a dict
    positions: Positions
    text_sha256: str | None         # of the file's bytes (None for a dict)
    overrides: list[Override] = field(default_factory=list)
    base: Path | None = None        # where a dict spec's relative paths resolve (default: the working folder)

    @property
    def dir(self) -> Path:
        """The folder relative paths in the spec resolve against."""
        if self.path is not None:
            return self.path.resolve().parent
        return (self.base or Path.cwd()).resolve()

    @property
    def label(self) -> str:
        return str(self.path) if self.path is not None else "<spec dict>"

    def output_folder(self, override: str | Path | None = None) -> Path:
        """Where the run writes its bundle: ``override`` (``-o``, relative to the working folder), else the spec's
        ``output`` (relative to the spec's folder), else ``results/<name>`` in the working folder."""
        if override:
            return Path(override)
        if self.spec.output:
            output = Path(self.spec.output)
            if output.is_absolute():
                return output
            return (self.path.parent if self.path is not None else (self.base or Path("."))) / output
        return Path("results") / self.spec.name

    def overrides_dict(self) -> dict[str, Any]:
        """The overrides, for the provenance (JSON values)."""
        return {o.path: json.loads(json.dumps(o.value, default=str)) for o in self.overrides}


def load_spec(source: str | Path | Mapping[str, Any], overrides: Mapping[str, Any] | Sequence[Override] | None = None,
              *, base: Path | None = None) -> LoadedSpec:
    """Read (a file) or take (a dict) a spec, apply the overrides and validate its core (plugin options are
    validated by the runner's resolve step). ``base``: where a dict spec's relative paths resolve."""
    given = overrides_from(overrides)
    if isinstance(source, Mapping):
        path, data, positions, digest = None, dict(source), Positions("<spec dict>", {}), None
    else:
        path = Path(source)
        data, positions = load_yaml(path)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if not isinstance(data, dict):
        raise positions.error("a spec is a mapping with keys version, name, workload, architecture, ...", ())
    data = apply_overrides(data, given, positions)
    spec = validate(Spec, data, positions)
    return LoadedSpec(spec, path, positions, digest, given, base)


def canonical_hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
