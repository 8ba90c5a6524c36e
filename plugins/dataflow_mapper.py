"""``neurotrainer-dataflow`` mapping searcher: NeuroTrainer's per-phase programmable data flow.

One homogeneous fabric, a different data flow per training phase: for each phase and operation kind a
template fixes *which* loops are split across the vaults (the outermost level's instances), across the
processing engines (every other spatial fan-out), and which loops sit innermost in the engines' register files;
the search (:mod:`ntframe.mapping.search`) then chooses the free tiling factors, the remaining loop orders and the
bypasses under the same seed and budget as the native mapper. With ``Out`` the tensor an operation writes and
``W`` its weight (a tensor without the batch dimension ``N``):

| phase, kind | across vaults | across engines | innermost in the engines |
|---|---|---|---|
| forward / backward_data, conv | output dims not indexing W: batch and feature-map positions (feature-map partitioning; W is multicast over the network) | dims of Out | the reduction dims (output stationary) |
| forward / backward_data, matrix product | dims of Out that index W (output partitioning: each vault holds its rows of W) | dims of Out | the reduction dims |
| backward_weight, conv | the reduction dims: batch and positions (each vault reduces its own data; the partial weight gradients are reduced across vaults over the network) | dims of Out (dW) | the reduction dims |
| backward_weight, matrix product | dims of Out (each vault computes its slice of dW: no reduction over the network) | dims of Out | the reduction dims |
| update | dims of the weight (the update runs in the vault that holds the weights) | any | — |
| anything else | any dimension | any | — |

Sequential (time-step) dimensions stay temporal and outermost, as for every mapper.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

import ntframe
from ntframe.components import Budget, CostModel, MappingSearcher
from ntframe.hardware import Architecture
from ntframe.mapping.mapspace import Problem
from ntframe.mapping.search import Constraints, search_operation
from ntframe.results import SearchResult
from ntframe.workload import Operation, OpKind, Phase


class DataflowOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    objective: Literal["energy", "delay", "edp"] = "edp"
    """What to minimise: energy (pJ), delay (cycles) or their product."""
    spatial_probability: float = Field(0.8, ge=0, le=1)
    """Chance that a sampled loop factor is tried in a spatial slot first (within the template's splits)."""


def template(op: Operation, problem: Problem, levels: int) -> tuple[Constraints, str]:
    """The data-flow constraints of one operation, and the template's name."""
    written = [t for t in op.tensors if t.written]
    out = written[0] if written else op.tensors[-1]
    weights = [t for t in op.tensors if not t.written and "N" not in t.dims and t.dims]
    w = weights[0] if weights else None
    out_dims, all_dims = set(out.dims), {d for d, _ in op.dims}
    reduction = all_dims - out_dims
    idx = problem.index
    seq = set(op.sequential)

    def ids(names) -> set[int]:
        return {idx[d] for d in names if d in idx and d not in seq}

    vaults: set[int] | None = None
    engines: set[int] | None = ids(out_dims)
    inner: list[str] = []
    if op.kind in (OpKind.conv, OpKind.matmul) and w is not None:
        if op.phase in (Phase.forward, Phase.backward_data):
            vaults = ids(out_dims - w.dims) if op.kind == OpKind.conv else ids(out_dims & w.dims)
            name = "feature-map partitioning" if op.kind == OpKind.conv else "output partitioning"
        else:
            vaults = ids(reduction) if op.kind == OpKind.conv else ids(out_dims)
            name = "weight-gradient reduction across vaults" if op.kind == OpKind.conv else "weight partitioning"
        # the largest reduction dimensions innermost; ties in the operation's order (not a set's, which follows
        # the strings' hashes and so changed from one process to the next)
        inner = sorted([d for d, _ in op.dims if d in reduction and d not in seq], key=lambda d: -dict(op.dims)[d])
    elif op.phase == Phase.update:
        vaults, engines, name = ids(out_dims), None, "update where the weights live"
    else:
        vaults, engines, name = None, None, "free"
    spatial: dict[int, set[int]] = {}
    if vaults is not None:
        spatial[0] = vaults or {-1}
    if engines is not None:
        for row in range(1, levels + 1):
            spatial[row] = engines or {-1}
    innermost = {levels - 1: [idx[d] for d in inner]} if inner else {}
    return Constraints(spatial=spatial, innermost=innermost), name


class DataflowMapper(MappingSearcher):
    name = "neurotrainer-dataflow"
    description = "per-phase data-flow templates (what is split across vaults and engines), free tiling searched"
    Options = DataflowOptions

    def search(self, operation: Operation, architecture: Architecture, cost_model: CostModel, budget: Budget,
               seed: int) -> SearchResult:
        problem = Problem(operation)
        constraints, _ = template(operation, problem, len(architecture.levels))
        constraints.spatial_probability = self.options.spatial_probability
        return search_operation(operation, architecture, cost_model, budget, seed, self.options.objective,
                                constraints, "neurotrainer-dataflow")


@ntframe.hookimpl
def ntframe_register_mappers(register):
    register(DataflowMapper)
