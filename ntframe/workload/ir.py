"""The intermediate representation: a Network of layers, and Operations (loop nests) for one training step.

An :class:`Operation` is a perfectly nested loop over named dimensions (``dims``, outer to inner order is the
mapping's business, not the IR's) with one projection per tensor, in the style of Timeloop's problem format and
ZigZag's workload equations::

    O[n][m][p][q] += I[n][c][p*s+r][q*s+t] * W[m][c][r][t]

Each tensor axis is a sum of ``coefficient * dimension`` terms plus an ``offset`` (``-padding``): the loop
nest runs over the padded coordinate space, as Timeloop's does, and a projected index outside ``shape`` is a
padding zero (never stored, never fetched). ``shape`` is the tensor as stored, which is what sizes in bytes
count; reuse analysis uses the working set of the projection (padding included, as Timeloop does).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import Enum
from typing import Literal


class Phase(str, Enum):
    forward = "forward"
    backward_data = "backward_data"
    backward_weight = "backward_weight"
    update = "update"


PHASES: tuple[Phase, ...] = tuple(Phase)

# How a tensor is used by an operation:
#   read      - only read (inputs, weights)
#   accumulate- read-modify-write partial sums; the first access of each element writes, needs no read
#   readwrite - read and written back element by element (in-place update, e.g. W -= lr * dW)
#   write     - only written (element-wise results)
TensorRole = Literal["read", "accumulate", "readwrite", "write"]

Term = tuple[str, int]          # (dimension, coefficient)
Axis = tuple[Term, ...]         # one tensor axis = sum of terms


@dataclass(frozen=True)
class TensorAccess:
    """One tensor of an operation: its projection onto the loop dimensions and its stored shape."""

    name: str                       # data-space name inside the operation: I, W, O, dY, ...
    tensor: str                     # global tensor identity, e.g. "conv1.W", shared across operations
    role: TensorRole
    projection: tuple[Axis, ...]
    shape: tuple[int, ...]          # stored elements per axis (no padding)
    precision_bits: int
    offsets: tuple[int, ...] = ()   # per axis: stored index = projected index + offset (-padding); () = zeros

    @property
    def dims(self) -> frozenset[str]:
        return frozenset(d for axis in self.projection for d, _ in axis)

    @property
    def elements(self) -> int:
        return math.prod(self.shape)

    @property
    def bytes(self) -> int:
        return (self.elements * self.precision_bits + 7) // 8

    @property
    def written(self) -> bool:
        return self.role != "read"

    @property
    def read(self) -> bool:
        return self.role in ("read", "readwrite", "accumulate")

    def extent(self, tile: dict[str, int]) -> int:
        """Elements touched by a tile with the given per-dimension extents (Timeloop's working set)."""
        size = 1
        for axis in self.projection:
            size *= sum(c * (tile.get(d, 1) - 1) for d, c in axis) + 1
        return size

    def formula(self) -> str:
        def axis_text(axis: Axis) -> str:
            return "+".join(d if c == 1 else f"{c}*{d}" for d, c in axis)
        return self.name + "".join(f"[{axis_text(a)}]" for a in self.projection)


class OpKind(str, Enum):
    conv = "conv"
    matmul = "matmul"
    elementwise = "elementwise"
    reduction = "reduction"
    pool = "pool"
    norm = "norm"
    gather = "gather"
    scatter = "scatter"
    update = "update"


@dataclass(frozen=True)
class Operation:
    """One loop nest of one layer in one phase of training."""

    name: str                       # "<layer>.<phase>[.<part>]"
    layer: str
    phase: Phase
    kind: OpKind
    dims: tuple[tuple[str, int], ...]   # loop bounds, in a canonical order
    tensors: tuple[TensorAccess, ...]
    action: Literal["mac", "add"]   # the datapath action each loop-nest point costs
    flops_per_point: int            # FLOPs per point: 2 per multiply-accumulate, 1 per add/compare/...
    ops_per_point: int = 1          # datapath actions per point (e.g. 2 MACs for an SGD-momentum update)
    sequential: tuple[str, ...] = ()    # dimensions with a dependence between iterations (time steps): they
                                        # must stay temporal loops, outermost, in order
    note: str = ""

    @property
    def bounds(self) -> dict[str, int]:
        return dict(self.dims)

    @property
    def points(self) -> int:
        return math.prod(b for _, b in self.dims)

    @property
    def is_mac(self) -> bool:
        """Conv and matmul points are multiply-accumulates; they alone count as MACs."""
        return self.kind in (OpKind.conv, OpKind.matmul)

    @property
    def macs(self) -> int:
        return self.points if self.is_mac else 0

    @property
    def flops(self) -> int:
        return self.points * self.flops_per_point

    def tensor(self, name: str) -> TensorAccess:
        for t in self.tensors:
            if t.name == name:
                return t
        raise KeyError(name)

    def shape_key(self) -> tuple:
        """Everything that determines cost, without names: equal keys map and cost identically."""
        return (self.kind.value, self.dims, self.action, self.flops_per_point, self.ops_per_point, self.sequential,
                tuple((t.name, t.role, t.projection, t.shape, t.precision_bits, t.offsets) for t in self.tensors))

    def equation(self) -> str:
        outs = [t for t in self.tensors if t.written]
        ins = [t for t in self.tensors if not t.written or t.role == "readwrite"]
        op = "+=" if any(t.role == "accumulate" for t in outs) else "="
        return f"{', '.join(t.formula() for t in outs)} {op} f({', '.join(t.formula() for t in ins)})"


# --- the network ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Layer:
    """A layer with its per-sample shapes resolved. Kind-specific settings are in ``params``.

    ``inputs`` names the producing layers (or network inputs); ``grad_inputs`` says, per input, whether a
    gradient must be computed for it (False for network inputs and for anything with no parameters upstream).
    """

    name: str
    kind: str
    input_shapes: tuple[tuple[int, ...], ...]   # per sample, one per input
    output_shape: tuple[int, ...]
    params: dict = field(default_factory=dict, compare=False, hash=False)
    inputs: tuple[str, ...] = ()
    grad_inputs: tuple[bool, ...] = ()
    weights: int = 0                            # trainable parameters (elements)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.input_shapes[0]

    @property
    def is_first(self) -> bool:
        """True when no input needs a gradient (no backward_data)."""
        return not any(self.grad_inputs)


@dataclass(frozen=True)
class NetworkInput:
    name: str
    shape: tuple[int, ...]          # per sample
    dtype: Literal["float", "index"] = "float"


@dataclass(frozen=True)
class Network:
    name: str
    batch: int
    layers: tuple[Layer, ...]       # in a topological (execution) order
    inputs: tuple[NetworkInput, ...] = ()
    source: str = ""                # file or description the frontend read
    notes: tuple[str, ...] = ()     # what the frontend approximated or skipped

    def consumers(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for layer in self.layers:
            for src in layer.inputs:
                out.setdefault(src, []).append(layer.name)
        return out

    @property
    def weights(self) -> int:
        return sum(layer.weights for layer in self.layers)
