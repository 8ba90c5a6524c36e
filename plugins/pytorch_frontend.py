"""``pytorch`` workload frontend: trace an ``nn.Module`` with torch.fx into ntframe's IR.

Options: ``module: "package.module:Class"`` (an installed package, or a module in the spec's folder: importing
that runs code that came with the spec, so it is refused unless ``NTFRAME_ALLOW_SPEC_CODE=1``), ``kwargs`` for its constructor, and ``inputs``: the per-sample shape and kind (``float`` or
``index`` for token ids) of each forward argument. The module is traced symbolically (``torch.fx``) and its
shapes propagated on a batch of 2 example inputs (``ShapeProp``); no weights are trained or read.

Mapped: modules Conv2d, Linear, BatchNorm2d, LayerNorm, ReLU, GELU, Sigmoid, Tanh, MaxPool2d, AvgPool2d,
AdaptiveAvgPool2d, Embedding, LSTM and GRU (``batch_first=True``, one direction, any number of layers), Flatten,
Dropout, Identity; functions and methods relu/gelu/sigmoid/tanh, add (+), cat, flatten, view, reshape,
adaptive_avg_pool2d, and ``[0]`` of a recurrent module's output. Other operations on activations are listed
up front (``unsupported: error``), or passed through (``skip``) or approximated as element-wise
(``approximate``). Needs the optional extra: ``pip install 'ntframe[pytorch]'`` (torch==2.13.0, CPU build).
"""

from __future__ import annotations

import importlib
import importlib.util
import operator
import os
import sys
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveInt

import ntframe
from ntframe.components import WorkloadFrontend, WorkloadRequest
from ntframe.errors import SpecError, ToolError
from ntframe.workload import Network, NetworkBuilder, ShapeError


class InputSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    shape: list[PositiveInt] = Field(min_length=1, max_length=3)
    """Shape of one sample (no batch axis): (C, H, W), (T, F), (F,) or (T,) for token ids."""
    dtype: Literal["float", "index"] = "float"
    """float: activations; index: integer token ids (for an embedding)."""
    vocab: PositiveInt = 2
    """For index inputs: example token ids are drawn below this."""


class PyTorchOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    module: str
    """``package.module:Class`` of an nn.Module."""
    kwargs: dict[str, Any] = {}
    """Keyword arguments of the module's constructor."""
    inputs: list[InputSpec] = Field(min_length=1)
    """The module's inputs, in the order forward() takes them."""
    unsupported: Literal["error", "skip", "approximate"] = "error"
    """Operators ntframe cannot expand: error (list them and stop), skip (pass shape-preserving ones through) or
    approximate (as element-wise operations); what was skipped or approximated is noted in the results."""


def _torch():
    try:
        import torch
        import torch.fx
        from torch.fx.passes.shape_prop import ShapeProp
    except ImportError:
        raise ToolError("the pytorch frontend needs torch",
                        fix="pip install 'ntframe[pytorch]'  (torch==2.13.0, the CPU build)") from None
    return torch, ShapeProp


ALLOW_SPEC_CODE = "NTFRAME_ALLOW_SPEC_CODE"
"""Set to 1 to let a spec's ``module:`` import Python code from the spec's own folder (running someone else's spec
would otherwise run their code). Installed packages (``torchvision.models:resnet18``) need no permission."""


def _installed(modname: str) -> bool:
    """Whether the module's top-level package is importable without the spec's folder."""
    try:
        return importlib.util.find_spec(modname.split(".")[0]) is not None
    except (ImportError, ValueError):
        return False


def _in_folder(modname: str, folder: Path) -> Path | None:
    """The file or package of the module's top level in ``folder``, if there is one."""
    top = folder / modname.split(".")[0]
    for candidate in (top.with_suffix(".py"), top / "__init__.py", top):
        if candidate.exists():
            return candidate
    return None


class PyTorchFrontend(WorkloadFrontend):
    name = "pytorch"
    description = "nn.Module traced with torch.fx (optional extra: pytorch)"
    Options = PyTorchOptions

    def load(self, request: WorkloadRequest) -> Network:
        torch, ShapeProp = _torch()
        modname, _, clsname = self.options.module.partition(":")
        if not clsname:
            raise SpecError(f"module '{self.options.module}' must be written 'package.module:Class'")
        local = not _installed(modname) and _in_folder(modname, request.spec_dir)
        if local and os.environ.get(ALLOW_SPEC_CODE) != "1":
            raise SpecError(f"module '{self.options.module}' is code in the spec's folder ({local}); importing it "
                            f"runs it. For a spec you trust, allow it: {ALLOW_SPEC_CODE}=1")
        added = bool(local) and str(request.spec_dir) not in sys.path
        if added:
            sys.path.insert(0, str(request.spec_dir))
        try:
            cls = getattr(importlib.import_module(modname), clsname)
        except (ImportError, AttributeError) as exc:
            raise SpecError(f"cannot import '{self.options.module}': {exc}") from None
        finally:
            if added:
                sys.path.remove(str(request.spec_dir))
        torch.manual_seed(0)
        model = cls(**self.options.kwargs).eval()
        examples = [torch.randint(0, i.vocab, (2, *i.shape)) if i.dtype == "index" else torch.randn(2, *i.shape)
                    for i in self.options.inputs]
        try:
            gm = torch.fx.symbolic_trace(model)
            ShapeProp(gm).propagate(*examples)
        except Exception as exc:  # torch raises many types for untraceable code
            raise SpecError(f"torch.fx could not trace {self.options.module}: {type(exc).__name__}: {exc}"
                            .splitlines()[0]) from None
        return _Tracer(torch, gm, self.options).run(request.batch)


class _Tracer:
    def __init__(self, torch, gm, options: PyTorchOptions) -> None:
        self.torch, self.gm, self.options = torch, gm, options
        self.modules = dict(gm.named_modules())
        self.b = NetworkBuilder(type(gm).__name__.replace("GraphModule", "") or options.module)
        self.values: dict[str, str] = {}          # fx node name -> builder value

    def meta(self, node):
        tm = node.meta.get("tensor_meta")
        return tm if tm is not None and hasattr(tm, "shape") else None

    def is_act(self, arg) -> bool:
        return hasattr(arg, "op") and arg.name in self.values

    def acts(self, node) -> list:
        flat = []
        for a in list(node.args) + list(node.kwargs.values()):
            flat.extend(a if isinstance(a, (list, tuple)) else [a])
        return [a for a in flat if self.is_act(a)]

    def classify(self, node) -> tuple[str, Any] | None:
        """(kind, payload) for a node the frontend maps; None if unsupported."""
        nn = self.torch.nn
        F = self.torch.nn.functional
        if node.op == "call_module":
            m = self.modules[node.target]
            table = [(nn.Conv2d, "conv"), (nn.Linear, "linear"), (nn.BatchNorm2d, "batchnorm"),
                     (nn.LayerNorm, "layernorm"), (nn.ReLU, "relu"), (nn.GELU, "gelu"), (nn.Sigmoid, "sigmoid"),
                     (nn.Tanh, "tanh"), (nn.MaxPool2d, "maxpool"), (nn.AvgPool2d, "avgpool"),
                     (nn.AdaptiveAvgPool2d, "adaptive"), (nn.Embedding, "embedding"), (nn.Flatten, "view"),
                     (nn.Dropout, "pass"), (nn.Identity, "pass"), (nn.LSTM, "rnn"), (nn.GRU, "rnn")]
            for cls, kind in table:
                if type(m) is cls:
                    if kind == "rnn" and (not m.batch_first or m.bidirectional):
                        return None
                    return kind, m
            return None
        fn = node.target
        if node.op == "call_method":
            return {"relu": ("relu", None), "view": ("view", None), "reshape": ("view", None),
                    "flatten": ("view", None), "sigmoid": ("sigmoid", None), "tanh": ("tanh", None)}.get(fn)
        if node.op == "call_function":
            if fn in (F.relu, self.torch.relu):
                return "relu", None
            if fn is F.gelu:
                return "gelu", None
            if fn in (self.torch.sigmoid,):
                return "sigmoid", None
            if fn in (self.torch.tanh,):
                return "tanh", None
            if fn in (operator.add, self.torch.add):
                return "add", None
            if fn is self.torch.cat:
                return "cat", None
            if fn in (self.torch.flatten, self.torch.reshape):
                return "view", None
            if fn is F.adaptive_avg_pool2d:
                return "adaptive_fn", None
            if fn is operator.getitem:
                src = node.args[0]
                if (getattr(src, "op", "") == "call_module" and isinstance(self.modules.get(src.target),
                                                                          (nn.LSTM, nn.GRU)) and node.args[1] == 0):
                    return "pass", None
            return None
        return None

    def run(self, batch: int) -> Network:
        b = self.b
        problems = []
        placeholders = [n for n in self.gm.graph.nodes if n.op == "placeholder"]
        if len(placeholders) != len(self.options.inputs):
            raise SpecError(f"the module's forward takes {len(placeholders)} inputs; 'inputs' describes "
                            f"{len(self.options.inputs)}")
        for node, spec in zip(placeholders, self.options.inputs):
            self.values[node.name] = b.input(node.name, tuple(spec.shape), spec.dtype)
        plan = []
        for node in self.gm.graph.nodes:
            if node.op in ("placeholder", "output", "get_attr"):
                continue
            acts = self.acts(node)
            if not acts:
                continue
            kind = self.classify(node)
            if self.meta(node) is None and not (kind and kind[0] == "rnn"):
                continue                            # not a tensor (x.size(0), ...): nothing to compute
            if kind is None:
                problems.append(f"node '{node.name}' ({node.op} {getattr(node.target, '__name__', node.target)})")
            plan.append((node, kind))
            self.values[node.name] = node.name      # provisional, so later nodes see an activation
        if problems and self.options.unsupported == "error":
            raise SpecError(f"{len(problems)} operation(s) cannot be mapped:\n  " + "\n  ".join(problems)
                            + "\n  (set workload.unsupported: skip or approximate to go on)")
        self.values = {n.name: self.values[n.name] for n in placeholders}
        for node, kind in plan:
            try:
                self.values[node.name] = self.emit(node, kind)
            except ShapeError as exc:
                raise SpecError(f"node '{node.name}': {exc}") from None
        verb = "skipped" if self.options.unsupported == "skip" else "approximated as element-wise"
        return b.build(batch, source=f"pytorch:{self.options.module}",
                       notes=tuple(f"{p} — {verb}" for p in problems))

    def per_sample(self, node) -> tuple[int, ...]:
        meta = self.meta(node)
        if meta is None:
            raise ShapeError("no tensor shape was recorded for it")
        return tuple(int(d) for d in meta.shape[1:])

    def emit(self, node, kind) -> str:
        b = self.b
        srcs = [self.values[a.name] for a in self.acts(node)]
        x = srcs[0]
        if kind is None:
            out = self.per_sample(node)
            if self.options.unsupported == "skip":
                if out != b.shape(x):
                    raise ShapeError(f"cannot skip it: it changes the shape {b.shape(x)} -> {out}")
                return x
            return b.elementwise(srcs, out, 1, 1, str(getattr(node.target, "__name__", node.target)), node.name)
        k, m = kind
        if k == "pass":
            return x
        if k == "view":
            out = self.per_sample(node)
            return x if out == b.shape(x) else b.reshape(x, out, node.name)
        if k in ("relu", "gelu", "sigmoid", "tanh"):
            return b.activation(x, k, node.name)
        if k == "conv":
            if isinstance(m.padding, str):
                raise ShapeError(f"padding='{m.padding}' is not supported; give it as a number")
            return b.conv(x, m.out_channels, m.kernel_size, m.stride, m.padding, m.dilation, m.groups,
                          m.bias is not None, node.name)
        if k == "linear":
            return b.linear(x, m.out_features, m.bias is not None, node.name)
        if k == "batchnorm":
            return b.batchnorm(x, node.name)
        if k == "layernorm":
            return b.layernorm(x, node.name)
        if k in ("maxpool", "avgpool"):
            return b.pool(x, "max" if k == "maxpool" else "avg", m.kernel_size, m.stride, m.padding, node.name)
        if k in ("adaptive", "adaptive_fn"):
            out = self.per_sample(node)
            _, h, w = b.shape(x)
            if out[1:] == (h, w):
                return x
            if out[1:] == (1, 1):
                return b.global_avgpool(x, node.name)
            if h % out[1] or w % out[2]:
                raise ShapeError(f"adaptive pooling {h}x{w} -> {out[1]}x{out[2]} is not a whole window")
            return b.pool(x, "avg", (h // out[1], w // out[2]), h // out[1], 0, node.name)
        if k == "embedding":
            return b.embedding(x, m.num_embeddings, m.embedding_dim, node.name)
        if k == "rnn":
            cell = "lstm" if isinstance(m, self.torch.nn.LSTM) else "gru"
            for i in range(m.num_layers):
                x = b.recurrent(x, cell, m.hidden_size, f"{node.name}.l{i}" if m.num_layers > 1 else node.name)
            return x
        if k == "add":
            if len(srcs) == 2:
                return b.add(srcs, node.name)
            return b.elementwise([x], None, 1, 0, "add a constant", node.name)
        if k == "cat":
            dim = node.kwargs.get("dim", node.args[1] if len(node.args) > 1 else 0)
            if dim != 1:
                raise ShapeError("torch.cat is supported along dim=1 (the axis after the batch)")
            return b.concat(srcs, node.name)
        raise ShapeError(f"unhandled kind {k}")


@ntframe.hookimpl
def ntframe_register_workload_frontends(register):
    register(PyTorchFrontend)
