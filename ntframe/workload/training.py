"""Training expansion: one training step of a Network as a list of Operations (loop nests).

The rules per layer kind are tabulated in ``docs/training.md``; the conventions that matter most:

* conv / linear / attention / recurrent matrix products: every phase runs a loop nest with the forward MAC
  count (backward_data of a strided conv in the "scatter" form, so no multiplications by inserted zeros;
  ``backward_data="transposed"`` gives the zero-padded transposed convolution other tools count instead),
  FLOPs = 2 per MAC, which is what PyTorch's FlopCounterMode counts for each phase.
* Recurrent layers (LSTM, GRU) are unrolled over their ``T`` steps: the input projection of all steps is one
  matrix product; the recurrent products and the cell's element-wise work carry ``T`` as a *sequential*
  dimension (a mapper must keep it a temporal, outermost loop). The initial hidden and cell states are zero,
  so the recurrent product runs for steps 1..T-1 only, forward and backward.
* A layer gets no backward_data for an input that needs no gradient (network inputs, or anything with no
  parameters upstream). Where a value feeds several layers, their gradients are summed in a ``gradsum``
  operation. ``add``, ``concat`` and ``reshape`` pass gradients through without computing.
* Non-linear element-wise work has conventional FLOP counts per element (``EW_FLOPS``); PyTorch counts none.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Literal

from ntframe.workload.builder import VIEWS
from ntframe.workload.ir import Layer, Network, Operation, OpKind, Phase, TensorAccess

# FLOPs per element (forward, backward) of element-wise functions: a convention, stated in the docs.
EW_FLOPS = {"relu": (1, 1), "sigmoid": (4, 3), "tanh": (4, 3), "gelu": (12, 18)}
# per hidden unit and step: (forward cell, backward cell); divided over the gate elements of the unit
CELL_FLOPS = {"lstm": (32, 24), "gru": (24, 24)}
# optimizer: (action, datapath ops per parameter, FLOPs per parameter, state tensors)
OPTIMIZERS: dict[str, tuple[Literal["mac", "add"], int, int, tuple[str, ...]]] = {
    "sgd": ("mac", 1, 2, ()),
    "momentum": ("mac", 2, 4, ("velocity",)),
    "adam": ("mac", 6, 12, ("m", "v")),
}
INDEX_BITS = 32
PASSTHROUGH = ("add", "concat", *VIEWS)

Proj = list[list[tuple[str, int]]]


def _ident(names: Iterable[str]) -> Proj:
    return [[(d, 1)] for d in names]


def act_dims(shape: tuple[int, ...]) -> list[str]:
    """Loop dimension names of a per-sample activation shape (the batch dimension N comes first)."""
    return {3: ["C", "H", "W"], 2: ["T", "F"], 1: ["F"]}[len(shape)]


class _Graph:
    """Tensor identities across layers: forward values, gradients, and where gradients must be summed."""

    def __init__(self, network: Network) -> None:
        self.layers = {layer.name: layer for layer in network.layers}
        self.inputs = {i.name for i in network.inputs}
        self.consumers: dict[str, list[str]] = {}
        for layer in network.layers:
            for i, src in enumerate(layer.inputs):
                if layer.grad_inputs and layer.grad_inputs[i]:
                    self.consumers.setdefault(src, []).append(layer.name)

    def value(self, name: str) -> str:
        layer = self.layers.get(name)
        if layer is not None and layer.kind in VIEWS:
            return self.value(layer.inputs[0])
        return name if layer is None else f"{name}.Y"

    def grad(self, name: str) -> str:
        cons = self.consumers.get(name, [])
        if len(cons) == 1 and self.layers[cons[0]].kind in PASSTHROUGH:
            return self.grad(cons[0])
        return f"{name}.dY"

    def partial(self, consumer: str, src: str) -> str:
        """The tensor in which ``consumer`` writes its gradient contribution for ``src``."""
        if self.layers[consumer].kind in PASSTHROUGH:
            return self.grad(consumer)
        return self.grad(src) if len(self.consumers.get(src, [])) == 1 else f"{consumer}.d[{src}]"


@dataclass
class _Emit:
    layer: Layer
    graph: _Graph
    batch: int
    phases: set[Phase]
    bits: dict[Phase, int]
    out: list[Operation]
    backward_data: str = "scatter"

    def t(self, name: str, tensor: str, role: str, proj: Proj, shape: tuple[int, ...], phase: Phase,
          offsets: tuple[int, ...] = (), bits: int | None = None) -> TensorAccess:
        return TensorAccess(name, tensor, role, tuple(tuple(a) for a in proj), tuple(shape),  # type: ignore[arg-type]
                            bits or self.bits[phase], offsets)

    def op(self, phase: Phase, part: str, kind: OpKind, dims: list[tuple[str, int]], tensors: list[TensorAccess],
           action: Literal["mac", "add"], flops: int, ops: int | None = None, sequential: tuple[str, ...] = (),
           note: str = "") -> None:
        if phase not in self.phases or any(b < 1 for _, b in dims):
            return
        name = f"{self.layer.name}.{phase.value}" + (f".{part}" if part else "")
        self.out.append(Operation(name, self.layer.name, phase, kind, tuple(dims), tuple(tensors), action, flops,
                                  flops if ops is None else ops, sequential, note))

    # ids
    def x(self, i: int = 0) -> str:
        return self.graph.value(self.layer.inputs[i])

    @property
    def y(self) -> str:
        return f"{self.layer.name}.Y"

    def dx(self, i: int = 0) -> str:
        return self.graph.partial(self.layer.name, self.layer.inputs[i])

    @property
    def dy(self) -> str:
        return self.graph.grad(self.layer.name)

    def needs_dx(self, i: int = 0) -> bool:
        return bool(self.layer.grad_inputs) and self.layer.grad_inputs[i]

    def param(self, p: str) -> str:
        return f"{self.layer.name}.{p}"


# --- matrix-product layers: forward, backward_data, backward_weight of one weighted product ------------------

def _weighted(e: _Emit, kind: OpKind, dims: list[tuple[str, int]], x: tuple, w: tuple, y: tuple, part: str = "",
              x_index: int = 0, dy: str | None = None, with_backward_data: bool = True) -> None:
    """``Y[y] += X[x]·W[w]`` and its two gradients. x, w, y: (id, projection, shape, offsets); ``dy`` is the
    gradient of Y (default: the layer output's); the weight gradient is named after the weight."""
    (xid, xp, xs, xo), (wid, wp, ws, wo), (yid, yp, ys, yo) = x, w, y
    dy = dy or e.dy
    dw = wid[: -len(".W")] + ".dW" if wid.endswith(".W") else f"{wid}.grad"
    F, D, G = Phase.forward, Phase.backward_data, Phase.backward_weight
    e.op(F, part, kind, dims, [e.t("I", xid, "read", xp, xs, F, xo), e.t("W", wid, "read", wp, ws, F, wo),
                               e.t("O", yid, "accumulate", yp, ys, F, yo)], "mac", 2, 1)
    if with_backward_data and e.needs_dx(x_index):
        e.op(D, part, kind, dims, [e.t("dO", dy, "read", yp, ys, D, yo), e.t("W", wid, "read", wp, ws, D, wo),
                                   e.t("dI", e.dx(x_index), "accumulate", xp, xs, D, xo)], "mac", 2, 1)
    e.op(G, part, kind, dims, [e.t("dO", dy, "read", yp, ys, G, yo), e.t("I", xid, "read", xp, xs, G, xo),
                               e.t("dW", dw, "accumulate", wp, ws, G, wo)], "mac", 2, 1)


def _conv(e: _Emit) -> None:
    p, L = e.layer.params, e.layer
    c, h, w = L.input_shape
    m, pp, qq = L.output_shape
    (r, s), st, pad, dil, g = p["kernel"], p["stride"], p["padding"], p.get("dilation", 1), p.get("groups", 1)
    n = e.batch
    dims, cin, cout = _conv_loops(n, ("M", m), ("C", c), pp, qq, r, s, g)
    xp = [[("N", 1)], cin, [("P", st), ("R", dil)], [("Q", st), ("S", dil)]]
    transposed = e.backward_data == "transposed"
    _weighted(e, OpKind.conv, dims, (e.x(), xp, (n, c, h, w), (0, 0, -pad, -pad)),
              (e.param("W"), [cout, [("C", 1)], [("R", 1)], [("S", 1)]], (m, c // g, r, s), ()),
              (e.y, [[("N", 1)], cout, [("P", 1)], [("Q", 1)]], (n, m, pp, qq), ()), with_backward_data=not transposed)
    if transposed and e.needs_dx():
        _conv_transposed_backward_data(e, n, c, h, w, m, r, s, st, pad, dil, g)
    if p.get("bias", True):
        _bias(e, [("N", n), ("M", m), ("P", pp), ("Q", qq)], "M", (n, m, pp, qq))


def _conv_loops(n: int, first: tuple[str, int], second: tuple[str, int], p: int, q: int, r: int, s: int,
                g: int) -> tuple[list[tuple[str, int]], list, list]:
    """A convolution's loops (channels in the order given, per group when ``g`` > 1) and the projections of the
    input-channel (C) and output-channel (M) tensor axes."""
    channels = dict((first, second))                   # {"C": input channels, "M": output channels}
    if g == 1:
        dims = [("N", n), first, second]
        cin, cout = [("C", 1)], [("M", 1)]
    else:
        dims = [("N", n), ("G", g), *((d, k // g) for d, k in (first, second))]
        cin, cout = [("G", channels["C"] // g), ("C", 1)], [("G", channels["M"] // g), ("M", 1)]
    return dims + [("P", p), ("Q", q), ("R", r), ("S", s)], cin, cout


def _conv_transposed_backward_data(e: _Emit, n: int, c: int, h: int, w: int, m: int, r: int, s: int, st: int,
                                   pad: int, dil: int, g: int) -> None:
    """dX as ZigZag and nn-dataflow count it: a stride-1 convolution of the kernel over dY with ``stride − 1``
    zeros inserted between its elements and ``dil·(k − 1) − pad`` zeros around them, producing every element of
    dX (P, Q over X's height and width; M now the reduction). The zero-padded dY is a dense operand of that size
    (``<dY>.transposed``), so MACs and its traffic include the inserted zeros."""
    hd, wd = h + dil * (r - 1), w + dil * (s - 1)
    dims, cin, cout = _conv_loops(n, ("C", c), ("M", m), h, w, r, s, g)
    D = Phase.backward_data
    e.op(D, "", OpKind.conv, dims, [
        e.t("dO", f"{e.dy}.transposed", "read", [[("N", 1)], cout, [("P", 1), ("R", dil)], [("Q", 1), ("S", dil)]],
            (n, m, hd, wd), D),
        e.t("W", e.param("W"), "read", [cout, [("C", 1)], [("R", 1)], [("S", 1)]], (m, c // g, r, s), D),
        e.t("dI", e.dx(), "accumulate", [[("N", 1)], cin, [("P", 1)], [("Q", 1)]], (n, c, h, w), D)], "mac", 2, 1,
         note=f"transposed form: dY with {st - 1} zero(s) between elements and {dil * (r - 1) - pad} around")


def _bias(e: _Emit, dims: list[tuple[str, int]], channel: str, yshape: tuple[int, ...]) -> None:
    names = [d for d, _ in dims]
    bound = dict(dims)[channel]
    F, G = Phase.forward, Phase.backward_weight
    e.op(F, "bias", OpKind.elementwise, dims, [e.t("B", e.param("b"), "read", [[(channel, 1)]], (bound,), F),
                                              e.t("O", e.y, "readwrite", _ident(names), yshape, F)], "add", 1,
         note="Y += b (broadcast)")
    e.op(G, "bias", OpKind.reduction, dims, [e.t("dO", e.dy, "read", _ident(names), yshape, G),
                                            e.t("dB", e.param("db"), "accumulate", [[(channel, 1)]], (bound,), G)],
         "add", 1, note="db = sum of dY over all but the channel")


def _linear(e: _Emit) -> None:
    L, n = e.layer, e.batch
    m = L.output_shape[-1]
    c = L.params["in_features"]
    tok = [("T", L.input_shape[0])] if len(L.input_shape) == 2 else []
    dims = [("N", n), *tok, ("M", m), ("C", c)]
    lead = [[("N", 1)]] + ([[("T", 1)]] if tok else [])
    lead_shape = (n, *(t for _, t in tok))
    _weighted(e, OpKind.matmul, dims, (e.x(), lead + [[("C", 1)]], (*lead_shape, c), ()),
              (e.param("W"), _ident(["M", "C"]), (m, c), ()),
              (e.y, lead + [[("M", 1)]], (*lead_shape, m), ()))
    if L.params.get("bias", True):
        _bias(e, [("N", n), *tok, ("M", m)], "M", (*lead_shape, m))


def _elementwise(e: _Emit, shape: tuple[int, ...]) -> tuple[list[tuple[str, int]], Proj, tuple[int, ...]]:
    names = ["N", *act_dims(shape)]
    full = (e.batch, *shape)
    return list(zip(names, full)), _ident(names), full


def _activation(e: _Emit) -> None:
    dims, proj, full = _elementwise(e, e.layer.output_shape)
    fwd, bwd = EW_FLOPS[e.layer.kind]
    F, D = Phase.forward, Phase.backward_data
    e.op(F, "", OpKind.elementwise, dims, [e.t("I", e.x(), "read", proj, full, F),
                                           e.t("O", e.y, "write", proj, full, F)], "add", fwd)
    if e.needs_dx():
        saved = e.x() if e.layer.kind == "gelu" else e.y       # what the derivative needs
        e.op(D, "", OpKind.elementwise, dims, [e.t("dO", e.dy, "read", proj, full, D),
                                               e.t("S", saved, "read", proj, full, D),
                                               e.t("dI", e.dx(), "write", proj, full, D)], "add", bwd)


def _generic(e: _Emit) -> None:
    """An operator approximated as element-wise over its output: each point reads every input once and writes
    the output (an input of another shape is taken to be streamed alongside the output)."""
    dims, proj, full = _elementwise(e, e.layer.output_shape)
    fwd, bwd = e.layer.params["flops"]
    F, D = Phase.forward, Phase.backward_data
    note = f"approximated as element-wise: {e.layer.params.get('label', '')}"
    shapes = [(e.batch, *s) for s in e.layer.input_shapes]
    e.op(F, "", OpKind.elementwise, dims, [*(e.t(f"I{i}", e.x(i), "read", proj, shapes[i], F)
                                             for i in range(len(shapes))),
                                           e.t("O", e.y, "write", proj, full, F)], "add", fwd, note=note)
    for i in range(len(shapes)):
        if e.needs_dx(i):
            e.op(D, f"input{i}" if len(shapes) > 1 else "", OpKind.elementwise, dims, [
                e.t("dO", e.dy, "read", proj, full, D), e.t("dI", e.dx(i), "write", proj, shapes[i], D)],
                "add", bwd, note=note)


def _pool(e: _Emit) -> None:
    p, L, n = e.layer.params, e.layer, e.batch
    c, h, w = L.input_shape
    _, pp, qq = L.output_shape
    (r, s), st, pad = p["kernel"], p["stride"], p["padding"]
    dims = [("N", n), ("C", c), ("P", pp), ("Q", qq), ("R", r), ("S", s)]
    xp = [[("N", 1)], [("C", 1)], [("P", st), ("R", 1)], [("Q", st), ("S", 1)]]
    xs, xo = (n, c, h, w), (0, 0, -pad, -pad)
    yp, ys = _ident(["N", "C", "P", "Q"]), (n, c, pp, qq)
    F, D = Phase.forward, Phase.backward_data
    fwd = [e.t("I", e.x(), "read", xp, xs, F, xo), e.t("O", e.y, "accumulate", yp, ys, F)]
    if p["mode"] == "max":
        fwd.append(e.t("A", e.param("argmax"), "write", yp, ys, F, bits=8))
    e.op(F, "", OpKind.pool, dims, fwd, "add", 1, note=f"{p['mode']} pooling")
    if not e.needs_dx():
        return
    if p["mode"] == "max":   # route each gradient to its window's maximum: one add per output
        e.op(D, "", OpKind.scatter, dims[:4], [
            e.t("dO", e.dy, "read", yp, ys, D), e.t("A", e.param("argmax"), "read", yp, ys, D, bits=8),
            e.t("dI", e.dx(), "accumulate", [[("N", 1)], [("C", 1)], [("P", st)], [("Q", st)]], xs, D, xo)],
            "add", 1, note="dX[argmax] += dY")
    else:
        e.op(D, "", OpKind.pool, dims, [e.t("dO", e.dy, "read", yp, ys, D),
                                        e.t("dI", e.dx(), "accumulate", xp, xs, D, xo)], "add", 1,
             note="dX[window] += dY / window size")


def _norm(e: _Emit) -> None:
    """Batch norm (statistics per channel over N, H, W) and layer norm (per token over features)."""
    dims, proj, full = _elementwise(e, e.layer.output_shape)
    names = [d for d, _ in dims]
    if e.layer.kind == "batchnorm":
        stat_dims, par_dims = ["C"], ["C"]
        flops = {"stats": 3, "norm": 2, "wgrad": 5, "dgrad": 6}
    else:
        stat_dims, par_dims = names[:-1], [names[-1]]
        flops = {"stats": 3, "norm": 4, "wgrad": 5, "dgrad": 8}
    bound = dict(dims)
    sp, ss = _ident(stat_dims), tuple(bound[d] for d in stat_dims)
    pp, ps = _ident(par_dims), tuple(bound[d] for d in par_dims)
    F, D, G = Phase.forward, Phase.backward_data, Phase.backward_weight

    def stats(ph, role="read"):
        return [e.t("mu", e.param("mean"), role, sp, ss, ph), e.t("sq", e.param("sqsum"), role, sp, ss, ph)]

    e.op(F, "stats", OpKind.reduction, dims, [e.t("I", e.x(), "read", proj, full, F), *stats(F, "accumulate")],
         "add", flops["stats"], note="sum and sum of squares")
    e.op(F, "", OpKind.norm, dims, [e.t("I", e.x(), "read", proj, full, F), *stats(F),
                                    e.t("g", e.param("gamma"), "read", pp, ps, F),
                                    e.t("b", e.param("beta"), "read", pp, ps, F),
                                    e.t("O", e.y, "write", proj, full, F)], "add", flops["norm"])
    e.op(G, "", OpKind.reduction, dims, [e.t("dO", e.dy, "read", proj, full, G),
                                         e.t("I", e.x(), "read", proj, full, G), *stats(G),
                                         e.t("dg", e.param("dgamma"), "accumulate", pp, ps, G),
                                         e.t("db", e.param("dbeta"), "accumulate", pp, ps, G)],
         "add", flops["wgrad"], note="dgamma = sum dY*xhat, dbeta = sum dY")
    if e.needs_dx():
        e.op(D, "", OpKind.norm, dims, [e.t("dO", e.dy, "read", proj, full, D),
                                        e.t("I", e.x(), "read", proj, full, D), *stats(D),
                                        e.t("g", e.param("gamma"), "read", pp, ps, D),
                                        e.t("dg", e.param("dgamma"), "read", pp, ps, D),
                                        e.t("db", e.param("dbeta"), "read", pp, ps, D),
                                        e.t("dI", e.dx(), "write", proj, full, D)], "add", flops["dgrad"])


def _add(e: _Emit) -> None:
    dims, proj, full = _elementwise(e, e.layer.output_shape)
    k = len(e.layer.inputs)
    F = Phase.forward
    e.op(F, "", OpKind.elementwise, dims, [*(e.t(f"I{i}", e.x(i), "read", proj, full, F) for i in range(k)),
                                           e.t("O", e.y, "write", proj, full, F)], "add", k - 1)


def _concat(e: _Emit) -> None:
    start = 0
    F = Phase.forward
    out_dims, out_proj, out_full = _elementwise(e, e.layer.output_shape)
    for i, shape in enumerate(e.layer.input_shapes):
        dims, proj, full = _elementwise(e, shape)
        offsets = (0, start) + (0,) * (len(full) - 2)
        e.op(F, f"part{i}", OpKind.elementwise, dims, [e.t("I", e.x(i), "read", proj, full, F),
                                                       e.t("O", e.y, "write", proj, out_full, F, offsets)],
             "add", 0, 0, note="copy into the joined tensor")
        start += shape[0]


def _embedding(e: _Emit) -> None:
    (t,), (_, d) = e.layer.input_shape, e.layer.output_shape
    v, n = e.layer.params["vocab"], e.batch
    dims = [("N", n), ("T", t), ("E", d)]
    rows = [[("N", t), ("T", 1)], [("E", 1)]]     # gathered rows, taken as distinct
    ids = _ident(["N", "T"])
    F, G = Phase.forward, Phase.backward_weight
    e.op(F, "", OpKind.gather, dims, [e.t("ids", e.x(), "read", ids, (n, t), F, bits=INDEX_BITS),
                                      e.t("W", e.param("W"), "read", rows, (v, d), F),
                                      e.t("O", e.y, "write", _ident(["N", "T", "E"]), (n, t, d), F)],
         "add", 0, 0, note="Y[n,t] = W[ids[n,t]]")
    e.op(G, "", OpKind.scatter, dims, [e.t("ids", e.x(), "read", ids, (n, t), G, bits=INDEX_BITS),
                                       e.t("dO", e.dy, "read", _ident(["N", "T", "E"]), (n, t, d), G),
                                       e.t("dW", e.param("dW"), "accumulate", rows, (v, d), G)],
         "add", 1, note="dW[ids[n,t]] += dY[n,t]")


def _recurrent(e: _Emit) -> None:
    L, n = e.layer, e.batch
    (t, f), (_, hd) = L.input_shape, L.output_shape
    gates = L.params["gates"]
    gh = gates * hd
    F, D, G = Phase.forward, Phase.backward_data, Phase.backward_weight
    x = (e.x(), _ident(["N", "T", "C"]), (n, t, f), ())
    gx = (e.param("Gx"), _ident(["N", "T", "G"]), (n, t, gh), ())
    _weighted(e, OpKind.matmul, [("N", n), ("T", t), ("G", gh), ("C", f)], x,
              (e.param("W"), _ident(["G", "C"]), (gh, f), ()), gx, part="input", dy=e.param("dG"))
    # h[t] feeds the gates of step t+1: steps 1..T-1 (the initial state is zero)
    rec_dims = [("T", t - 1), ("N", n), ("G", gh), ("K", hd)]
    h_prev = _ident(["N", "T", "K"])
    g_next = (_ident(["N", "T", "G"]), (n, t, gh), (0, 1, 0))
    e.op(F, "recurrent", OpKind.matmul, rec_dims, [
        e.t("I", e.y, "read", h_prev, (n, t, hd), F), e.t("W", e.param("U"), "read", _ident(["G", "K"]), (gh, hd), F),
        e.t("O", e.param("Gh"), "accumulate", g_next[0], g_next[1], F, g_next[2])], "mac", 2, 1, ("T",))
    cell_dims = [("T", t), ("N", n), ("J", gates), ("H", hd)]
    gate_proj = [[("N", 1)], [("T", 1)], [("J", hd), ("H", 1)]]
    unit = _ident(["N", "T", "H"])
    prev = (0, -1, 0)
    fwd_cell, bwd_cell = (x // gates for x in CELL_FLOPS[L.kind])
    state = [e.t("c0", e.param("C"), "read", unit, (n, t, hd), F, prev),
             e.t("c", e.param("C"), "write", unit, (n, t, hd), F)] if L.kind == "lstm" else \
        [e.t("h0", e.y, "read", unit, (n, t, hd), F, prev)]
    e.op(F, "cell", OpKind.elementwise, cell_dims, [
        e.t("gx", e.param("Gx"), "read", gate_proj, (n, t, gh), F),
        e.t("gh", e.param("Gh"), "read", gate_proj, (n, t, gh), F),
        e.t("b", e.param("b"), "read", [[("J", hd), ("H", 1)]], (2 * gh,), F), *state,
        e.t("S", e.param("S"), "write", gate_proj, (n, t, gh), F),
        e.t("O", e.y, "write", unit, (n, t, hd), F)], "add", fwd_cell, sequential=("T",),
        note="gate activations and state update")
    dstate = [e.t("c", e.param("C"), "read", unit, (n, t, hd), D),
              e.t("dc", e.param("dC"), "readwrite", unit, (n, t, hd), D)] if L.kind == "lstm" else \
        [e.t("h0", e.y, "read", unit, (n, t, hd), D, prev)]
    e.op(D, "cell", OpKind.elementwise, cell_dims, [
        e.t("dO", e.dy, "read", unit, (n, t, hd), D),
        e.t("dh", e.param("dHrec"), "read", unit, (n, t, hd), D),
        e.t("S", e.param("S"), "read", gate_proj, (n, t, gh), D), *dstate,
        e.t("dG", e.param("dG"), "write", gate_proj, (n, t, gh), D)], "add", bwd_cell, sequential=("T",),
        note="gradient through the gates, step by step backwards")
    e.op(D, "recurrent", OpKind.matmul, rec_dims, [
        e.t("dO", e.param("dG"), "read", g_next[0], g_next[1], D, g_next[2]),
        e.t("W", e.param("U"), "read", _ident(["G", "K"]), (gh, hd), D),
        e.t("dI", e.param("dHrec"), "accumulate", h_prev, (n, t, hd), D)], "mac", 2, 1, ("T",))
    dg = (_ident(["N", "T", "G"]), (n, t, gh))
    e.op(G, "recurrent", OpKind.matmul, rec_dims, [
        e.t("dO", e.param("dG"), "read", g_next[0], g_next[1], G, g_next[2]),
        e.t("I", e.y, "read", h_prev, (n, t, hd), G),
        e.t("dW", e.param("dU"), "accumulate", _ident(["G", "K"]), (gh, hd), G)], "mac", 2)
    e.op(G, "bias", OpKind.reduction, [("N", n), ("T", t), ("G", gh)], [
        e.t("dO", e.param("dG"), "read", dg[0], dg[1], G),
        e.t("dB", e.param("db"), "accumulate", [[("G", 1)]], (2 * gh,), G)], "add", 1)
    order = {"cell": 0, "recurrent": 1, "input": 2}     # backward through time first, then to the input
    e.out.sort(key=lambda o: order.get(o.name.rsplit(".", 1)[-1], 3) if o.phase == D else 0)


def _attention(e: _Emit) -> None:
    L, n = e.layer, e.batch
    (t, d), (s, _) = L.input_shapes[0], L.input_shapes[1]
    heads = L.params["heads"]
    dk = d // heads
    F, D = Phase.forward, Phase.backward_data

    def tok(pos: str, length: int):      # Q/K/V/O as stored: (N, tokens, D), channel = head * dk + k
        return [[("N", 1)], [(pos, 1)], [("H", dk), ("K", 1)]], (n, length, d)

    (qp, qs), (kp, ks) = tok("I", t), tok("J", s)
    sp, ss = _ident(["N", "H", "I", "J"]), (n, heads, t, s)
    score_dims = [("N", n), ("H", heads), ("I", t), ("J", s), ("K", dk)]
    ctx_dims = [("N", n), ("H", heads), ("I", t), ("K", dk), ("J", s)]
    q, k, v = e.x(0), e.x(1), e.x(2)
    S, P, dS, dP = (e.param(x) for x in ("S", "P", "dS", "dP"))
    e.op(F, "scores", OpKind.matmul, score_dims, [e.t("Q", q, "read", qp, qs, F), e.t("K", k, "read", kp, ks, F),
                                                  e.t("S", S, "accumulate", sp, ss, F)], "mac", 2, 1)
    e.op(F, "softmax", OpKind.elementwise, score_dims[:4], [e.t("S", S, "read", sp, ss, F),
                                                            e.t("P", P, "write", sp, ss, F)], "add", 5)
    e.op(F, "context", OpKind.matmul, ctx_dims, [e.t("P", P, "read", sp, ss, F), e.t("V", v, "read", kp, ks, F),
                                                 e.t("O", e.y, "accumulate", qp, qs, F)], "mac", 2, 1)
    e.op(D, "dprobs", OpKind.matmul, score_dims, [e.t("dO", e.dy, "read", qp, qs, D),
                                                  e.t("V", v, "read", kp, ks, D),
                                                  e.t("dP", dP, "accumulate", sp, ss, D)], "mac", 2, 1)
    if e.needs_dx(2):
        e.op(D, "dvalue", OpKind.matmul, [("N", n), ("H", heads), ("J", s), ("K", dk), ("I", t)], [
            e.t("P", P, "read", sp, ss, D), e.t("dO", e.dy, "read", qp, qs, D),
            e.t("dV", e.dx(2), "accumulate", kp, ks, D)], "mac", 2, 1)
    e.op(D, "softmax", OpKind.elementwise, score_dims[:4], [e.t("P", P, "read", sp, ss, D),
                                                            e.t("dP", dP, "read", sp, ss, D),
                                                            e.t("dS", dS, "write", sp, ss, D)], "add", 4)
    if e.needs_dx(0):
        e.op(D, "dquery", OpKind.matmul, ctx_dims, [e.t("dS", dS, "read", sp, ss, D),
                                                    e.t("K", k, "read", kp, ks, D),
                                                    e.t("dQ", e.dx(0), "accumulate", qp, qs, D)], "mac", 2, 1)
    if e.needs_dx(1):
        e.op(D, "dkey", OpKind.matmul, [("N", n), ("H", heads), ("J", s), ("K", dk), ("I", t)], [
            e.t("dS", dS, "read", sp, ss, D), e.t("Q", q, "read", qp, qs, D),
            e.t("dK", e.dx(1), "accumulate", kp, ks, D)], "mac", 2, 1)


def _softmax_ce(e: _Emit) -> None:
    dims, proj, full = _elementwise(e, e.layer.input_shape)
    F, D = Phase.forward, Phase.backward_data
    e.op(F, "", OpKind.elementwise, dims, [e.t("I", e.x(), "read", proj, full, F),
                                           e.t("P", e.param("P"), "write", proj, full, F)], "add", 5,
         note="softmax and cross-entropy")
    if e.needs_dx():
        e.op(D, "", OpKind.elementwise, dims, [e.t("P", e.param("P"), "read", proj, full, D),
                                               e.t("dI", e.dx(), "write", proj, full, D)], "add", 2,
             note="dX = (P - onehot) / N")


def _no_ops(e: _Emit) -> None:
    """reshape: a view; its gradient is its input's."""


EXPANDERS = {"conv": _conv, "linear": _linear, "pool": _pool, "batchnorm": _norm, "layernorm": _norm,
             "add": _add, "concat": _concat, "reshape": _no_ops, "embedding": _embedding, "lstm": _recurrent,
             "gru": _recurrent, "attention": _attention, "softmax_ce": _softmax_ce, "elementwise": _generic,
             **{k: _activation for k in EW_FLOPS}}

# the trainable tensors of each layer kind: (parameter, gradient, dimension names)
PARAMETERS = {
    "conv": lambda L: [("W", "dW", ["M", "C", "R", "S"],
                        (L.output_shape[0], L.input_shape[0] // L.params.get("groups", 1), *L.params["kernel"]))]
    + ([("b", "db", ["M"], (L.output_shape[0],))] if L.params.get("bias", True) else []),
    "linear": lambda L: [("W", "dW", ["M", "C"], (L.output_shape[-1], L.params["in_features"]))]
    + ([("b", "db", ["M"], (L.output_shape[-1],))] if L.params.get("bias", True) else []),
    "batchnorm": lambda L: [("gamma", "dgamma", ["C"], (L.input_shape[0],)),
                            ("beta", "dbeta", ["C"], (L.input_shape[0],))],
    "layernorm": lambda L: [("gamma", "dgamma", ["F"], (L.input_shape[-1],)),
                            ("beta", "dbeta", ["F"], (L.input_shape[-1],))],
    "embedding": lambda L: [("W", "dW", ["V", "E"], (L.params["vocab"], L.params["dim"]))],
    "lstm": lambda L: _rnn_params(L), "gru": lambda L: _rnn_params(L),
}


def _rnn_params(L: Layer):
    gh, f, hd = L.params["gates"] * L.params["hidden"], L.input_shape[1], L.params["hidden"]
    return [("W", "dW", ["G", "C"], (gh, f)), ("U", "dU", ["G", "K"], (gh, hd)), ("b", "db", ["G"], (2 * gh,))]


def _update(e: _Emit, optimizer: str) -> None:
    action, ops, flops, states = OPTIMIZERS[optimizer]
    P = Phase.update
    for param, grad, names, shape in PARAMETERS.get(e.layer.kind, lambda L: [])(e.layer):
        dims, proj = list(zip(names, shape)), _ident(names)
        tensors = [e.t("dW", e.param(grad), "read", proj, shape, P),
                   e.t("W", e.param(param), "readwrite", proj, shape, P),
                   *(e.t(st, e.param(f"{param}.{st}"), "readwrite", proj, shape, P) for st in states)]
        e.op(P, "" if param == "W" else param, OpKind.update, dims, tensors, action, flops, ops,
             note=f"{optimizer} update of {param}")


def _gradsum(e: _Emit, graph: _Graph, name: str, shape: tuple[int, ...]) -> None:
    cons = graph.consumers.get(name, [])
    if len(cons) < 2 or graph.grad(name) != f"{name}.dY":
        return
    dims, proj, full = _elementwise(e, shape)
    D = Phase.backward_data
    e.op(D, "gradsum", OpKind.elementwise, dims,
         [*(e.t(f"g{i}", graph.partial(c, name), "read", proj, full, D) for i, c in enumerate(cons)),
          e.t("dO", f"{name}.dY", "write", proj, full, D)], "add", len(cons) - 1,
         note=f"sum of the gradients from {', '.join(cons)}")


def expand(network: Network, phases: Iterable[Phase], precision_bits: dict[Phase, int],
           optimizer: str = "sgd", backward_data: str = "scatter") -> list[Operation]:
    """All operations of one training step in execution order: forward over the layers; then, from the last
    layer to the first, the gradient sums of its output, its backward_data, its backward_weight; then the
    optimizer updates. ``backward_data``: ``scatter`` (a convolution's input gradient as the useful MACs, through
    the forward window) or ``transposed`` (the zero-padded transposed convolution other tools count)."""
    if backward_data not in ("scatter", "transposed"):
        raise ValueError(f"unknown backward_data form '{backward_data}' (known: scatter, transposed)")
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer '{optimizer}' (known: {', '.join(OPTIMIZERS)})")
    wanted = set(phases)
    graph = _Graph(network)
    per_layer: dict[str, list[Operation]] = {}
    for layer in network.layers:
        ops: list[Operation] = []
        e = _Emit(layer, graph, network.batch, wanted, precision_bits, ops, backward_data)
        if Phase.backward_data in wanted:
            _gradsum(e, graph, layer.name, layer.output_shape)
        EXPANDERS[layer.kind](e)
        _update(e, optimizer)
        per_layer[layer.name] = ops
    ordered: list[Operation] = []
    ordered += [o for layer in network.layers for o in per_layer[layer.name] if o.phase == Phase.forward]
    for layer in reversed(network.layers):
        ordered += [o for o in per_layer[layer.name] if o.phase == Phase.backward_data and o.name.endswith("gradsum")]
        ordered += [o for o in per_layer[layer.name] if o.phase == Phase.backward_data
                    and not o.name.endswith("gradsum")]
        ordered += [o for o in per_layer[layer.name] if o.phase == Phase.backward_weight]
    ordered += [o for layer in network.layers for o in per_layer[layer.name] if o.phase == Phase.update]
    return ordered


def activation_stash(operations: list[Operation], network: Network) -> dict[str, int]:
    """Bytes of each network input or forward-phase result that a backward phase reads again: what must be
    kept (or recomputed) between the two."""
    inputs = {i.name for i in network.inputs}
    written = {t.tensor: t for o in operations if o.phase == Phase.forward for t in o.tensors
               if t.written or t.tensor in inputs}
    read_back = {t.tensor for o in operations if o.phase in (Phase.backward_data, Phase.backward_weight)
                 for t in o.tensors if not t.written or t.role == "readwrite"}
    return {name: written[name].bytes for name in sorted(read_back) if name in written}


__all__ = ["expand", "activation_stash", "act_dims", "EW_FLOPS", "OPTIMIZERS", "PARAMETERS"]
