"""The user's spec: pydantic models (``extra="forbid"``) for the core keys of each section.

Every key of a section that is not a core key belongs to the plugin the section selects and is validated by
that component's ``Options`` model (see :func:`ntframe.runner.resolve`), so a wrong key names its owner.

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

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, field_validator, model_validator

from ntframe.components import Budget
from ntframe.workload.ir import PHASES, Phase
from ntframe.yamlio import Positions, load_yaml, validate


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


class MapperSection(_Section):
    name: str = "native"
    budget: Budget = Budget()
    seed: int = 0
    cache: bool = True
    """Keep search results in the mapping cache (NTFRAME_CACHE_DIR, else ~/.cache/ntframe)."""


class CostModelSection(_Section):
    name: str = "native"


class MemorySection(_Section):
    backend: str = "hmc-analytic"


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
    """Results folder (relative to the working folder); default results/<name>."""

    @model_validator(mode="before")
    @classmethod
    def _short_forms(cls, data: Any) -> Any:
        if isinstance(data, dict):
            data = dict(data)
            if isinstance(data.get("cost_model"), str):
                data["cost_model"] = {"name": data["cost_model"]}
            if isinstance(data.get("memory"), str):
                data["memory"] = {"backend": data["memory"]}
            if isinstance(data.get("mapper"), str):
                data["mapper"] = {"name": data["mapper"]}
        return data


# which key of each section selects the component, and its family
SELECTORS: dict[str, tuple[str, str]] = {
    "workload": ("frontend", "workload_frontend"),
    "mapper": ("name", "mapper"),
    "cost_model": ("name", "cost_model"),
    "memory": ("backend", "memory_backend"),
}


@dataclass
class LoadedSpec:
    spec: Spec
    path: Path
    positions: Positions
    text_sha256: str

    @property
    def dir(self) -> Path:
        return self.path.resolve().parent


def load_spec(path: str | Path) -> LoadedSpec:
    """Read and validate the core of a spec (plugin options are validated by the runner's resolve step)."""
    path = Path(path)
    data, positions = load_yaml(path)
    if not isinstance(data, dict):
        raise positions.error("a spec is a mapping with keys version, name, workload, architecture, ...", ())
    spec = validate(Spec, data, positions)
    return LoadedSpec(spec, path, positions, hashlib.sha256(path.read_bytes()).hexdigest())


def canonical_hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
