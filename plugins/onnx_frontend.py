"""``onnx`` workload frontend: import an ONNX model file (no weights needed) into ntframe's IR.

The graph is shape-inferred with ``onnx.shape_inference``; every activation's batch axis is tracked (axis 0,
except the sequence-major inputs and outputs of ``LSTM``/``GRU``) so the IR gets per-sample shapes, and the
spec's ``batch`` replaces the model's. A dimension that is symbolic (``dim_param``) takes its value from the
option ``dims`` (``{seq: 128}``); the batch dimension needs none.

Mapped operators: Conv, Gemm, MatMul (with a constant weight), Add, Relu, Sigmoid, Tanh, Gelu, MaxPool,
AveragePool, GlobalAveragePool, BatchNormalization, LayerNormalization, Flatten, Reshape, Squeeze, Unsqueeze,
Transpose (views), Concat, LSTM and GRU (forward direction), Gather on a constant table (embedding), Softmax
at the output (taken as the softmax cross-entropy loss), Identity and Dropout (pass-through). Nodes that only
compute constants (shapes for Reshape, ...) are ignored. Anything else is listed, with the node names, before
any work; ``unsupported: error`` (default) stops there, ``skip`` passes shape-preserving ones through, and
``approximate`` models them as element-wise operations over their output.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, PositiveInt

import ntframe
from ntframe.components import WorkloadFrontend, WorkloadRequest
from ntframe.errors import SpecError, ToolError
from ntframe.workload import Network, NetworkBuilder, ShapeError

VIEW_OPS = {"Flatten", "Reshape", "Squeeze", "Unsqueeze", "Transpose"}
PASS_OPS = {"Identity", "Dropout"}
ACT_OPS = {"Relu": "relu", "Sigmoid": "sigmoid", "Tanh": "tanh", "Gelu": "gelu"}
MAPPED = {"Conv", "Gemm", "MatMul", "Add", "MaxPool", "AveragePool", "GlobalAveragePool", "BatchNormalization",
          "LayerNormalization", "Concat", "LSTM", "GRU", "Gather", "Softmax", *VIEW_OPS, *PASS_OPS, *ACT_OPS}


class ONNXOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    file: str
    """The .onnx model: a path relative to the spec, or a shipped name under workloads/."""
    dims: dict[str, PositiveInt] = {}
    """Values of symbolic dimensions other than the batch (e.g. {seq: 128})."""
    unsupported: Literal["error", "skip", "approximate"] = "error"
    """What to do with operators ntframe cannot map."""


@dataclass
class _Value:
    name: str                  # builder value name
    batch_axis: int            # axis of the ONNX tensor that is the batch
    shape: tuple[int, ...]     # the ONNX tensor's shape, batch included


def _import_onnx():
    try:
        import onnx
    except ImportError:
        raise ToolError("the onnx frontend needs the onnx package",
                        fix="pip install 'ntframe[onnx]'  (or: pip install onnx)") from None
    return onnx


class ONNXFrontend(WorkloadFrontend):
    name = "onnx"
    description = "ONNX model file (shape-inferred; unsupported operators listed up front)"
    Options = ONNXOptions

    def load(self, request: WorkloadRequest) -> Network:
        onnx = _import_onnx()
        path = request.resolve(self.options.file, "workloads")
        try:
            model = onnx.load(str(path), load_external_data=False)
            model = onnx.shape_inference.infer_shapes(model)
        except Exception as exc:  # the onnx package raises several types for a file that is not ONNX
            raise SpecError(f"not a readable ONNX model: {type(exc).__name__}: {exc}".splitlines()[0],
                            file=str(path)) from None
        graph = model.graph
        if not graph.node:
            raise SpecError("the ONNX graph has no nodes", file=str(path))
        return _Importer(onnx, graph, self.options, str(path)).run(request.batch)


class _Importer:
    def __init__(self, onnx, graph, options: ONNXOptions, path: str) -> None:
        self.onnx, self.graph, self.options, self.path = onnx, graph, options, path
        self.init = {t.name: t for t in graph.initializer}
        self.static: set[str] = set(self.init)
        self.types: dict[str, Any] = {}
        for vi in [*graph.input, *graph.value_info, *graph.output]:
            self.types[vi.name] = vi.type.tensor_type
        self.values: dict[str, _Value] = {}
        first = next((i for i in graph.input if i.name not in self.init), None)
        dim0 = first.type.tensor_type.shape.dim[0] if first is not None and first.type.tensor_type.shape.dim else None
        self.batch_symbol = dim0.dim_param if dim0 is not None and dim0.dim_param else None
        self.b = NetworkBuilder(graph.name or "onnx-model")

    # --- helpers ---------------------------------------------------------------------------------------
    def error(self, message: str) -> SpecError:
        return SpecError(message, file=self.path)

    def batch_axis_of(self, tensor: str, guess: int) -> int:
        """The axis carrying the batch symbol of the graph inputs, when the model uses one; else ``guess``."""
        tt = self.types.get(tensor)
        if self.batch_symbol and tt is not None and tt.HasField("shape"):
            for axis, d in enumerate(tt.shape.dim):
                if d.dim_param == self.batch_symbol:
                    return axis
        return guess

    def shape(self, tensor: str, node: str = "", batch_axis: int | None = 0) -> tuple[int, ...]:
        tt = self.types.get(tensor)
        if tt is None or not tt.HasField("shape"):
            raise self.error(f"node '{node}': no shape known for tensor '{tensor}' (shape inference failed)")
        dims = []
        for axis, d in enumerate(tt.shape.dim):
            if d.HasField("dim_value") and d.dim_value > 0:
                dims.append(d.dim_value)
            elif axis == batch_axis:
                dims.append(1)                      # replaced by the spec's batch
            elif d.dim_param and d.dim_param in self.options.dims:
                dims.append(self.options.dims[d.dim_param])
            else:
                label = d.dim_param or "?"
                raise self.error(f"tensor '{tensor}' (node '{node or 'graph input'}'): dimension {axis} is "
                                 f"symbolic ('{label}') and has no value; give it in the spec as "
                                 f"workload.dims: {{{label}: N}}")
        return tuple(dims)

    @staticmethod
    def per_sample(shape: tuple[int, ...], batch_axis: int) -> tuple[int, ...]:
        return shape[:batch_axis] + shape[batch_axis + 1:]

    def attr(self, node, name: str, default=None):
        for a in node.attribute:
            if a.name == name:
                return self.onnx.helper.get_attribute_value(a)
        return default

    def act_inputs(self, node) -> list[str]:
        return [i for i in node.input if i and i not in self.static]

    def value(self, tensor: str, node) -> _Value:
        if tensor not in self.values:
            raise self.error(f"node '{node.name}' ({node.op_type}) reads '{tensor}', which no mapped node produced")
        return self.values[tensor]

    # --- the import ------------------------------------------------------------------------------------
    def unsupported(self) -> list[str]:
        """Nodes with activation inputs that cannot be mapped, with the reason, in graph order."""
        static = set(self.init)
        found = []
        for node in self.graph.node:
            acts = [i for i in node.input if i and i not in static]
            if not acts:
                static.update(node.output)
                continue
            reason = None
            if node.op_type not in MAPPED:
                reason = "operator not supported"
            elif node.op_type == "MatMul" and all(i not in static for i in node.input[:2]):
                reason = "product of two activations (only constant weights map to a linear layer)"
            elif node.op_type in ("LSTM", "GRU") and (self.attr(node, "direction", b"forward") not in
                                                      (b"forward", "forward")):
                reason = "only forward-direction recurrent layers are supported"
            elif node.op_type == "Gather" and node.input[0] not in static:
                reason = "Gather from an activation (only a constant table maps to an embedding)"
            if reason:
                found.append(f"node '{node.name or node.output[0]}' ({node.op_type}): {reason}")
        return found

    def run(self, batch: int) -> Network:
        problems = self.unsupported()
        if problems and self.options.unsupported == "error":
            raise self.error(f"{len(problems)} operator(s) cannot be mapped:\n  " + "\n  ".join(problems)
                             + "\n  (set workload.unsupported: skip or approximate to go on)")
        for inp in self.graph.input:
            if inp.name in self.init:
                continue
            shape = self.shape(inp.name)
            elem = self.types[inp.name].elem_type
            is_index = elem in (self.onnx.TensorProto.INT64, self.onnx.TensorProto.INT32)
            self.b.input(inp.name, self.per_sample(shape, 0), "index" if is_index else "float")
            self.values[inp.name] = _Value(inp.name, 0, shape)
        for node in self.graph.node:
            if not self.act_inputs(node):
                self.static.update(node.output)
                continue
            try:
                self.node(node)
            except ShapeError as exc:
                raise self.error(f"node '{node.name}' ({node.op_type}): {exc}") from None
        verb = "skipped" if self.options.unsupported == "skip" else "approximated as element-wise"
        return self.b.build(batch, source=self.path, notes=tuple(f"{p} — {verb}" for p in problems))

    def emit(self, node, out_name: str, batch_axis: int = 0) -> None:
        """Register the node's first output as the builder value ``out_name``."""
        out = node.output[0]
        axis = self.batch_axis_of(out, batch_axis)
        self.values[out] = _Value(out_name, axis, self.shape(out, node.name, axis))

    def node(self, node) -> None:
        op, b, name = node.op_type, self.b, node.name or node.output[0]
        acts = [self.value(i, node) for i in self.act_inputs(node)]
        x = acts[0]
        if op in PASS_OPS:
            self.values[node.output[0]] = x
        elif op in VIEW_OPS:
            axis = x.batch_axis
            if op == "Transpose":
                perm = list(self.attr(node, "perm"))
                axis = perm.index(x.batch_axis)
            elif op == "Squeeze":
                axes = self.attr(node, "axes") or (self.const(node.input[1]) if len(node.input) > 1 else [])
                axis -= sum(1 for a in axes if (a % len(x.shape)) < x.batch_axis)
            elif op == "Unsqueeze":
                axes = self.attr(node, "axes") or (self.const(node.input[1]) if len(node.input) > 1 else [])
                axis += sum(1 for a in sorted(axes) if a <= axis)
            elif op == "Flatten":
                axis = 0 if x.batch_axis < (self.attr(node, "axis", 1) % max(len(x.shape), 1)) else 1
            axis = self.batch_axis_of(node.output[0], axis)
            out_shape = self.shape(node.output[0], name, axis)
            self.values[node.output[0]] = _Value(b.reshape(x.name, self.per_sample(out_shape, axis), name), axis,
                                                 out_shape)
        elif op in ACT_OPS:
            self.emit(node, b.activation(x.name, ACT_OPS[op], name))
        elif op == "Conv":
            w = self.init_shape(node.input[1], node)
            pads = list(self.attr(node, "pads", [0] * 4))
            if len(set(pads)) > 1:
                raise ShapeError(f"asymmetric padding {pads} is not supported")
            self.emit(node, b.conv(x.name, w[0], tuple(self.attr(node, "kernel_shape", w[2:])),
                                   tuple(self.attr(node, "strides", [1, 1]))[0], pads[0] if pads else 0,
                                   tuple(self.attr(node, "dilations", [1, 1]))[0], self.attr(node, "group", 1),
                                   len(node.input) > 2 and bool(node.input[2]), name))
        elif op in ("Gemm", "MatMul"):
            w = self.init_shape(node.input[1], node)
            out = w[0] if (op == "Gemm" and self.attr(node, "transB", 0)) else w[-1]
            bias = op == "Gemm" and len(node.input) > 2 and bool(node.input[2])
            self.emit(node, b.linear(x.name, out, bias, name), x.batch_axis)
        elif op == "Add":
            if len(acts) == 2:
                self.emit(node, b.add([a.name for a in acts], name), acts[0].batch_axis)
            else:      # activation + constant: a bias
                self.emit(node, b.elementwise([x.name], None, 1, 0, "bias add", name), x.batch_axis)
        elif op in ("MaxPool", "AveragePool"):
            pads = list(self.attr(node, "pads", [0] * 4))
            kernel = tuple(self.attr(node, "kernel_shape"))
            self.emit(node, b.pool(x.name, "max" if op == "MaxPool" else "avg", kernel,
                                   tuple(self.attr(node, "strides", kernel))[0], pads[0] if pads else 0, name))
        elif op == "GlobalAveragePool":
            self.emit(node, b.global_avgpool(x.name, name))
        elif op == "BatchNormalization":
            self.emit(node, b.batchnorm(x.name, name))
        elif op == "LayerNormalization":
            self.emit(node, b.layernorm(x.name, name), x.batch_axis)
        elif op == "Concat":
            axis = self.attr(node, "axis", 1)
            rank = len(x.shape)
            if axis < 0:
                axis += rank
            if axis != x.batch_axis + 1 or any(a.batch_axis != x.batch_axis for a in acts):
                raise ShapeError("Concat is supported along the axis after the batch axis")
            self.emit(node, b.concat([a.name for a in acts], name), x.batch_axis)
        elif op in ("LSTM", "GRU"):
            if x.batch_axis != (0 if self.attr(node, "layout", 0) else 1):
                raise ShapeError("the recurrent input's batch axis does not match the layout attribute")
            hidden = self.attr(node, "hidden_size")
            layer = b.recurrent(x.name, op.lower(), hidden, name)
            out = node.output[0]
            out_axis = self.batch_axis_of(out, 2 if self.attr(node, "layout", 0) == 0 else 0)
            shape = self.shape(out, name, out_axis)
            self.values[out] = _Value(b.reshape(layer, self.per_sample(shape, out_axis), f"{name}.Y"), out_axis,
                                      shape)
        elif op == "Gather":
            table = self.init_shape(node.input[0], node)
            self.emit(node, b.embedding(x.name, table[0], table[1], name), x.batch_axis)
        elif op == "Softmax":
            if node.output[0] not in {o.name for o in self.graph.output}:
                raise ShapeError("Softmax is supported only as the model's output (taken as the loss)")
            b.softmax_ce(x.name, name)
        else:                                        # an unsupported operator, allowed by the policy
            out_shape = self.shape(node.output[0], name, x.batch_axis)
            per = self.per_sample(out_shape, x.batch_axis)
            if self.options.unsupported == "skip":
                if per != b.shape(x.name):
                    raise ShapeError(f"cannot skip {op}: it changes the shape {b.shape(x.name)} -> {per}")
                self.values[node.output[0]] = x
            else:
                self.values[node.output[0]] = _Value(
                    b.elementwise([a.name for a in acts], per, 1, 1, op, name), x.batch_axis, out_shape)

    def const(self, tensor: str) -> list[int]:
        if tensor not in self.init:
            raise ShapeError(f"'{tensor}' must be a constant")
        return [int(v) for v in self.onnx.numpy_helper.to_array(self.init[tensor]).ravel()]

    def init_shape(self, tensor: str, node) -> tuple[int, ...]:
        if tensor not in self.init:
            raise ShapeError(f"input '{tensor}' must be a constant (an initializer)")
        return tuple(self.init[tensor].dims)


@ntframe.hookimpl
def ntframe_register_workload_frontends(register):
    register(ONNXFrontend)


__all__ = ["ONNXFrontend"]
