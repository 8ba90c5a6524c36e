"""``nn-dataflow`` cost model and searcher: the TETRIS authors' own scheduler (Gao et al., ASPLOS 2017;
stanford-mast/nn_dataflow, ``nn-dataflow`` 2.1 on PyPI, the ``nn-dataflow`` extra) on ntframe's operations,
architectures and mappings.

**Architecture** (:func:`hardware`): nn-dataflow models one shape — DRAM vaults, each under a node of a 2-D mesh,
each node a global buffer (GBUF) over a 2-D array of processing engines with register files (REGF), one MAC per
engine per cycle. An architecture of that shape (three storage levels DRAM → SRAM → regfile, the vault fan-out
at the DRAM, one buffer per vault, the engines' fan-out at the register file, one MAC per engine) becomes a
``Resource``: ``proc_region`` and ``dram_region`` the vault mesh (the logic-die network's, else the squarest
factorisation of the vault fan-out; one vault per node, TETRIS' "3D" memory), ``dim_array`` the engines' mesh
(``pe_array``, else the squarest factorisation of the fan-out: 196 → 14 × 14), ``size_gbuf`` and ``size_regf``
the capacities in words of the operation's precision, ``dram_bandwidth`` the vaults' bandwidth in words per cycle
(all vaults together), ``array_bus_width`` the buffer's bandwidth in words per cycle (``array_bus``). The
``Cost`` comes from the architecture file's energies, per word: ``mac_op`` the MAC's at the precision,
``mem_hier`` (DRAM, GBUF, ITCN, REGF) the levels' energies per bit × the word's bits (the mean of read and write
where they differ: nn-dataflow has one energy per access, said in the notes), ITCN — the network inside the
engine array, which ntframe has no level for — 0, ``noc_hop`` the logic-die network's hop energy per bit × bits
(0 without one), ``idl_unit`` the leakage of every component per cycle (:meth:`Architecture.silicon`; 0 when
the file gives no static power) — used by the search's objective only: the cost model's energy leaves it out,
because the runner charges every model's leakage over its latency. Other shapes are refused, naming why.

**Operations** (:func:`roles`): a multiply-accumulate with two read tensors and one accumulated tensor whose
indices fit nn-dataflow's ``ConvLayer``: ``OFM[b][o][h][w] += IFM[b][i][h·s + r][w·s + t] · FIL[o][i][r][t]``
(``FCLayer`` without the windows). Forward convolutions and matrix products map natively (``b, i, o`` = N, C, M;
the weight is the filter). The training phases are re-indexings of the same loop nest:

* backward_weight ``dW[m][c][r][t] += dO[n][m][p][q] · I[n][c][p·u + r][q·u + t]`` is a ConvLayer with
  nifm = N, nofm = M, ofmap R × S, filter P × Q (the output gradient), batch C, when the forward stride u is 1
  (a strided one dilates the filter, which nn-dataflow has no form for);
* backward_data ``dI[n][c][p + r][q + t] += dO[n][m][p][q] · W[m][c][r][t]`` is the full convolution of the
  zero-padded dO with the flipped filter: a ConvLayer with nifm = M, nofm = C, ofmap P × Q, filter R × S, batch
  N, exact in its multiply-accumulates when dI has the size of dO ('same' padding, stride 1); otherwise the full
  convolution would count padded products (H·R instead of P·R) or, strided, need u² phase sub-convolutions,
  each its own schedule, which one ntframe mapping cannot hold — refused with that reason. The transposed form
  (``backward_data: transposed``) is a plain convolution and maps natively.
* matrix products: backward_data FCLayer(nifm = M, nofm = C), batch N; backward_weight FCLayer(nifm = N,
  nofm = M), batch C (with a token dimension T the batch or reduction is N·T).

Element-wise work, pooling, normalisation, the loss, optimiser updates, grouped or dilated convolutions,
time-step loops and mixed precisions do not translate; the cost model and the searcher say which and why.

**Schedules and ntframe mappings** (:func:`encode`, :func:`decode`). An nn-dataflow schedule is a partition over
the vaults (OUTP, OFMP, BATP, INPP), one of ``MapStrategyEyeriss``'s row-stationary array mappings (filter rows
× output rows on the array, folded when larger, replicated over input and output channels), and a blocking of
the three loops it keeps (input channels, output channels, batch × row folds) over DRAM, GBUF and REGF with two
loop orders. Its ntframe mapping on the levels [vault DRAM, buffer, register file]:

* vault split: OUTP → the output-channel dimensions, OFMP → output rows and columns, BATP → the batch
  dimensions, INPP → the input-channel dimensions (nn-dataflow always uses every vault; where on the mesh each
  part sits is not an ntframe notion: the cost model takes the placement nn-dataflow prices lowest);
* engine split: the filter rows on the array (rows / ``fold.h``), the output rows (rows / ``fold.w``), and the
  replication over input and output channels;
* DRAM level: the top blocking level's loops in nn-dataflow's order; buffer level: the middle level's loops, then
  the filter-row folds (``fold.h``), then the output columns (one output at a time streams out of an engine);
  register file: the inner level's loops (batch, output, input channels) and the filter columns (the 1-D
  convolution of a row);
* the batch loop is the batch dimensions × the output-row folds (``fold.w``), the folds innermost; a loop of
  several ntframe dimensions (N·T) is split innermost dimension first; factor-1 loops are left out;
* the buffer keeps what nn-dataflow stores there (``stored_in_gbuf``); of the tensors nn-dataflow streams past it,
  each the architecture lets the buffer hold is kept when that brings the nest's DRAM traffic of it closer (as a
  ratio) to nn-dataflow's count, as many of them as fit (:func:`_kept`); the register files keep every tensor.

What differs: nn-dataflow's unit of work, a processing pass, streams each engine's row (an input window, a
filter row and one partial sum at a time: what it sizes a register file for) and runs its filter-row folds
inside; its blocking loops sit above whole passes, and its reuse counting lets a pass's data stay in the register
files across them — a pass's partial sums through an outer input-channel loop, a folded filter row through a
batch loop — which the register files it sized cannot hold. The ntframe nest runs the same loops on the same
register files (their tiles are nn-dataflow's ``usize_regf`` × its unit counts), so it streams the row and folds
the filter at the buffer level, under the blocking loops, and what the register files cannot hold goes to the
buffer or DRAM. Only schedules that split every loop exactly translate (nn-dataflow also allows idle engines and
uneven splits: a 55-row map over 14 array rows, 4,096 channels over 14 columns). The searcher takes nn-dataflow's
best schedule that translates, fits ntframe's capacities and the architecture's mapping constraints, and whose
nest moves at most ``dram_tolerance`` times the DRAM words nn-dataflow counts (``.inf``: its best that
translates), and says which it took and why it passed over the better ones.

**Cost model** ``nn-dataflow``: recovers the schedule from an ntframe mapping — the partition sizes from the vault
split, the array mapping from the engine split, the blocking factors and orders from the levels' loops — and
accepts the mapping only when the schedule's own mapping (:func:`encode`) is that mapping; then prices it with
nn-dataflow's code (``LoopBlockingScheme`` and ``Scheduling._get_result``, what its search does for every
candidate). Per-level accesses, energies and cycles (``max(processing, array bus, DRAM)``) are nn-dataflow's.

**Searcher** ``nn-dataflow``: nn-dataflow's ``Scheduling.schedule_search`` on the operation's layer (the TETRIS
loop-blocking solver by default, hybrid partitioning; deterministic), in a child process stopped at
``budget.seconds``, with two guards (``MapStrategyEyeriss`` asserts a PE utilisation above 50 %, and the solver
raises ``UnboundLocalError`` when no blocking fits: either skips that candidate instead of ending the search).
Operations it cannot map go to ntframe's native search (``otherwise: native``) or fail (``otherwise: error``).

PyPI's nn-dataflow 2.1 predates the fix of the array network's (ITCN) unit accesses in the authors' repository
(d7b7ac3, "fix ITCN unit access", after 2.1); ITCN is priced at 0 here and bounds no time, so the fix would change
only the ITCN counts reported. nn-dataflow's
whole-network search needs sympy < 1.10; the single-layer ``Scheduling`` used here works with any sympy.
"""

from __future__ import annotations

import importlib.metadata
import itertools
import math
import time
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveInt

import ntframe
from ntframe.components import Budget, CostModel, MappingSearcher
from ntframe.errors import PluginError, ToolError
from ntframe.hardware import Architecture
from ntframe.mapping import LevelMapping, Mapping, structural_problems
from ntframe.mapping.constraints import for_operation, violations
from ntframe.mapping.mapspace import Problem
from ntframe.mapping.nest import analyse, capacity_problems
from ntframe.mapping.search import Constraints, search_operation
from ntframe.parallel import run_pieces
from ntframe.results import ComputeCost, LevelCost, SearchResult, bytes_by_tensor
from ntframe.workload import Operation, Phase

NND_FIX = ("pip install 'ntframe[nn-dataflow]'  (nn-dataflow 2.1, the TETRIS authors' scheduler; its fastcache "
           "dependency builds a C extension)")

# nn-dataflow's enums (checked against its own when it is imported)
FIL, IFM, OFM = 0, 1, 2                 # DataCategoryEnum
L_IFM, L_OFM, L_BAT = 0, 1, 2           # LoopEnum
OUTP, OFMP, BATP, INPP = 0, 1, 2, 3     # ParallelEnum
DRAM, GBUF, ITCN, REGF = 0, 1, 2, 3     # MemHierEnum
ARRAY_NETWORK = "array_network"
"""The level under which nn-dataflow's ITCN accesses (the network inside an engine array) are reported."""


def _nnd():
    """nn-dataflow's ``core`` package (imported on first use: it imports sympy, about a second)."""
    try:
        import nn_dataflow.core as core
    except ImportError as exc:
        raise ToolError(f"nn-dataflow is not importable ({exc})", fix=NND_FIX) from None
    assert (core.DataCategoryEnum.FIL, core.DataCategoryEnum.IFM, core.DataCategoryEnum.OFM) == (FIL, IFM, OFM)
    assert (core.LoopEnum.IFM, core.LoopEnum.OFM, core.LoopEnum.BAT) == (L_IFM, L_OFM, L_BAT)
    assert (core.ParallelEnum.OUTP, core.ParallelEnum.OFMP, core.ParallelEnum.BATP,
            core.ParallelEnum.INPP) == (OUTP, OFMP, BATP, INPP)
    assert (core.MemHierEnum.DRAM, core.MemHierEnum.GBUF, core.MemHierEnum.ITCN,
            core.MemHierEnum.REGF) == (DRAM, GBUF, ITCN, REGF)
    return core


def nn_dataflow_version() -> str:
    try:
        return importlib.metadata.version("nn-dataflow")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


class NotTranslatable(ValueError):
    """The operation, architecture or mapping has no nn-dataflow equivalent (the reason is the message)."""


# --- the architecture ---------------------------------------------------------------------------------------

class HardwareOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    pe_array: tuple[PositiveInt, PositiveInt] | None = None
    """The engine array's rows and columns (nn-dataflow's ``dim_array``); omitted: the squarest factorisation of
    the register file's fan-out (196 → 14 × 14). The searcher and the cost model must be given the same."""
    array_bus: Literal["buffer_bandwidth", "unbounded"] = "buffer_bandwidth"
    """nn-dataflow's ``array_bus_width`` (words per cycle from the buffer to the array, per data category): the
    buffer level's bandwidth, or unbounded (TETRIS' configuration). The searcher and the cost model must agree."""


def _mesh(count: int, given: tuple[int, int] | None, what: str) -> tuple[int, int]:
    if given is not None:
        if given[0] * given[1] != count:
            raise NotTranslatable(f"{what}: {given[0]} x {given[1]} is not the architecture's {count} instances")
        return given
    rows = max(d for d in range(1, math.isqrt(count) + 1) if count % d == 0)
    return rows, count // rows


def shape_problems(arch: Architecture) -> list[str]:
    """Why the architecture is not nn-dataflow's shape (an empty list: it is)."""
    out = []
    classes = [lvl.cls for lvl in arch.levels]
    if classes != ["DRAM", "SRAM", "regfile"]:
        out.append(f"storage levels {', '.join(f'{lvl.name} ({lvl.cls})' for lvl in arch.levels)}: nn-dataflow "
                   "models DRAM → one global buffer (SRAM) → the engines' register files (regfile)")
        return out
    if arch.levels[1].fanout != 1:
        out.append(f"{arch.levels[1].fanout} buffers per vault ({arch.levels[1].name}): nn-dataflow's node has one")
    if arch.compute.fanout != 1:
        out.append(f"{arch.compute.fanout} compute units per register file: nn-dataflow's engine has one MAC")
    if arch.compute.ops_per_cycle != 1:
        out.append(f"{arch.compute.name} does {arch.compute.ops_per_cycle} operations per cycle: nn-dataflow's "
                   "engines do one MAC per cycle")
    for lvl in arch.levels[1:]:
        if lvl.capacity_bytes is None:
            out.append(f"{lvl.name} has no capacity")
    return out


@dataclass(frozen=True)
class Hardware:
    """An architecture as nn-dataflow's ``Resource`` and ``Cost`` for one word size."""

    resource: Any
    cost: Any
    word_bits: int
    nodes: tuple[int, int]
    array: tuple[int, int]
    static_pJ_per_cycle: float
    notes: tuple[str, ...]


def hardware(arch: Architecture, word_bits: int, options: HardwareOptions) -> Hardware:
    """``arch`` as nn-dataflow's Resource and Cost (energies in pJ per word of ``word_bits``)."""
    nnd = _nnd()
    problems = shape_problems(arch)
    if problems:
        raise NotTranslatable(f"architecture {arch.name}: {'; '.join(problems)}")
    dram, gbuf, regf = arch.levels
    nodes = arch.network.mesh if arch.network is not None else _mesh(dram.fanout, None, "vaults")
    if nodes[0] * nodes[1] != dram.fanout:
        raise NotTranslatable(f"architecture {arch.name}: the network's {nodes[0]} x {nodes[1]} mesh does not "
                              f"hold the {dram.fanout} vaults")
    array = _mesh(regf.fanout, options.pe_array, "pe_array")
    word_bytes = word_bits / 8
    notes = []

    def per_word(level) -> float:
        if level.read_energy_pJ_per_bit != level.write_energy_pJ_per_bit:
            notes.append(f"{level.name}: nn-dataflow has one energy per access; charged the mean of read "
                         f"({level.read_energy_pJ_per_bit} pJ/bit) and write ({level.write_energy_pJ_per_bit})")
            return (level.read_energy_pJ_per_bit + level.write_energy_pJ_per_bit) / 2 * word_bits
        return level.read_energy_pJ_per_bit * word_bits

    hop = arch.network.hop_energy_pJ_per_bit * word_bits if arch.network is not None else 0.0
    if arch.network is None:
        notes.append("the architecture has no logic-die network: nn-dataflow's hops between vaults cost nothing")
    silicon = arch.silicon()
    static_mW = silicon["logic_die"]["static_power_mW"] + silicon["dram"]["static_power_mW"]
    static = static_mW / arch.clock_GHz                             # mW x ns per cycle = pJ per cycle
    proc = nnd.NodeRegion(origin=nnd.PhyDim2(0, 0), dim=nnd.PhyDim2(*nodes), type=nnd.NodeRegion.PROC)
    mem = nnd.NodeRegion(origin=nnd.PhyDim2(0, 0), dim=nnd.PhyDim2(*nodes), type=nnd.NodeRegion.DRAM)
    bus: float = float("inf")
    if options.array_bus == "buffer_bandwidth":
        bus = max(1, int(gbuf.bytes_per_cycle // word_bytes))       # nn-dataflow takes whole words per cycle
        if bus * word_bytes != gbuf.bytes_per_cycle:
            notes.append(f"{gbuf.name}: {gbuf.bytes_per_cycle:g} B per cycle is {bus} whole words for "
                         "nn-dataflow's array bus")
    resource = nnd.Resource(proc_region=proc, dram_region=mem, src_data_region=mem, dst_data_region=mem,
                            dim_array=nnd.PhyDim2(*array), size_gbuf=int(gbuf.capacity_bytes // word_bytes),
                            size_regf=int(regf.capacity_bytes // word_bytes), array_bus_width=bus,
                            dram_bandwidth=dram.bytes_per_cycle * dram.fanout / word_bytes, no_time_mux=False)
    cost = nnd.Cost(mac_op=arch.compute.energy_pJ("mac", word_bits),
                    mem_hier=(per_word(dram), per_word(gbuf), 0.0, per_word(regf)), noc_hop=hop, idl_unit=static)
    notes.append(f"{ARRAY_NETWORK}: nn-dataflow's ITCN (the network inside the engine array), priced at 0 — "
                 "ntframe's architectures have no such level")
    if static:
        notes.append(f"leakage ({static:.4g} pJ per cycle) is in the search's objective, not in this energy: the "
                     "runner adds every model's leakage over its latency")
    return Hardware(resource, cost, word_bits, tuple(nodes), tuple(array), static, tuple(notes))


# --- the operation ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Roles:
    """An operation's loop dimensions and tensors in nn-dataflow's ``ConvLayer`` roles:
    ``OFM[bat][ofm][h][w] += IFM[bat][ifm][h·stride + fr][w·stride + fc] · FIL[ofm][ifm][fr][fc]``."""

    ifm: tuple[str, ...]            # input channels (nn-dataflow's IFM loop), outer to inner
    ofm: tuple[str, ...]            # output channels (OFM loop)
    bat: tuple[str, ...]            # batch (BAT loop, with the output-row folds)
    h: str | None                   # output rows
    w: str | None                   # output columns
    fr: str | None                  # filter rows
    fc: str | None                  # filter columns
    stride: tuple[int, int]
    tensors: tuple[str, str, str]   # ntframe names of FIL, IFM, OFM
    bits: int
    reindexed: str = ""             # how a training phase was re-indexed ("" for a native forward layer)

    def of(self, d: str) -> str:
        """The role of dimension ``d``: ifm, ofm, bat, h, w, fr, fc ("" for none)."""
        for role in ("ifm", "ofm", "bat"):
            if d in getattr(self, role):
                return role
        return next((role for role in ("h", "w", "fr", "fc") if getattr(self, role) == d), "")

    def layer(self, bounds: dict[str, int]) -> tuple[Any, int]:
        """nn-dataflow's layer and batch size for these bounds."""
        nnd = _nnd()
        nifm, nofm, batch = (math.prod(bounds[d] for d in dims) for dims in (self.ifm, self.ofm, self.bat))
        if self.h is None:
            return nnd.FCLayer(nifm, nofm), batch
        size = (lambda d: bounds[d] if d else 1)
        return nnd.ConvLayer(nifm, nofm, (size(self.h), size(self.w)), (size(self.fr), size(self.fc)),
                             strd=self.stride), batch

    def describe(self, bounds: dict[str, int]) -> str:
        layer, batch = self.layer(bounds)

        def dims(ds: tuple[str, ...]) -> str:
            return "·".join(ds) if ds else "1"
        if self.h is None:
            text = f"FCLayer(nifm={dims(self.ifm)}={layer.nifm}, nofm={dims(self.ofm)}={layer.nofm})"
        else:
            text = (f"ConvLayer(nifm={dims(self.ifm)}={layer.nifm}, nofm={dims(self.ofm)}={layer.nofm}, "
                    f"sofm={self.h}×{self.w or 1}={layer.hofm}×{layer.wofm}, "
                    f"sfil={self.fr}×{self.fc or 1}={layer.hfil}×{layer.wfil}, strd={self.stride[0]})")
        return (f"{text}, batch {dims(self.bat)}={batch}; filter {self.tensors[0]}, ifmap {self.tensors[1]}, "
                f"ofmap {self.tensors[2]}")


FILTER_PREFERENCE = ("W", "dO")
"""Which read tensor is tried as nn-dataflow's filter first (a matrix product fits either way): the weight, else
the output gradient (backward_weight: the batch loop is then the input channels, as in the TETRIS-style training
re-indexing)."""


def roles(op: Operation) -> Roles:
    """The operation in nn-dataflow's ConvLayer roles, or :class:`NotTranslatable` naming what does not fit."""
    if not op.is_mac or op.action != "mac":
        raise NotTranslatable(f"nn-dataflow schedules convolutions and matrix products (multiply-accumulates); "
                              f"this operation is {op.kind.value} ({op.action})")
    reads = [t for t in op.tensors if t.role == "read"]
    outs = [t for t in op.tensors if t.role == "accumulate"]
    if len(reads) != 2 or len(outs) != 1 or len(op.tensors) != 3:
        raise NotTranslatable(f"nn-dataflow's layers read two tensors and accumulate one; this operation has "
                              f"{', '.join(f'{t.name} ({t.role})' for t in op.tensors)}")
    if op.ops_per_point != 1:
        raise NotTranslatable(f"{op.ops_per_point} datapath actions per loop point; nn-dataflow's is one MAC")
    if op.sequential:
        raise NotTranslatable(f"time-step loops ({', '.join(op.sequential)}) have no nn-dataflow form")
    bits = sorted({t.precision_bits for t in op.tensors})
    if len(bits) != 1:
        raise NotTranslatable(f"tensors of {' and '.join(map(str, bits))} bits: nn-dataflow counts words of one "
                              "size")
    order = sorted(reads, key=lambda t: FILTER_PREFERENCE.index(t.name) if t.name in FILTER_PREFERENCE else 9)
    first_reason = ""
    for fil, ifm in (order, order[::-1]):
        try:
            return _match(op, fil, ifm, outs[0], bits[0])
        except NotTranslatable as exc:
            first_reason = first_reason or str(exc)
    raise NotTranslatable(first_reason)


def _match(op: Operation, fil, ifm, ofm, bits: int) -> Roles:
    bounds = op.bounds

    def plain(t) -> list[str] | None:
        return [a[0][0] for a in t.projection] if all(len(a) == 1 and a[0][1] == 1 for a in t.projection) else None

    fil_dims = plain(fil)
    if fil_dims is None:
        raise NotTranslatable(f"{fil.formula()} as nn-dataflow's filter: its indices must be single loop "
                              "dimensions (a grouped convolution's channel index G·k + M has no nn-dataflow form)")
    windows: list[tuple[str, int, str]] = []        # (output row dimension, stride, filter row dimension)
    ifm_dims: list[str] = []
    ofm_dims: list[str] = []
    reindexed = ""
    for axis in ifm.projection:
        if len(axis) == 1 and axis[0][1] == 1:
            ifm_dims.append(axis[0][0])
        elif len(axis) == 2:
            (a, ca), (b, cb) = axis
            row, s, f, c = (a, ca, b, cb) if b in fil_dims else (b, cb, a, ca)
            if f not in fil_dims:
                raise NotTranslatable(f"{ifm.formula()}: the window {axis} slides no filter dimension")
            if c != 1:
                what = ", the forward stride of a backward_weight" if op.phase == Phase.backward_weight else ""
                raise NotTranslatable(f"{ifm.formula()}: the filter dimension {f} has coefficient {c} (a dilation"
                                      f"{what}): nn-dataflow's convolutions have none; it would need {c}×{c} phase "
                                      "sub-convolutions, one schedule each")
            windows.append((row, s, f))
            ifm_dims += [row, f]
        else:
            raise NotTranslatable(f"{ifm.formula()}: an index that is not a dimension or a window")
    ifm_windowed = bool(windows)
    for axis in ofm.projection:
        if len(axis) == 1 and axis[0][1] == 1:
            ofm_dims.append(axis[0][0])
        elif len(axis) == 2 and not ifm_windowed:   # backward_data, scatter form: the full convolution of dO
            (a, ca), (b, cb) = axis
            row, s, f, c = (a, ca, b, cb) if b in fil_dims else (b, cb, a, ca)
            if f not in fil_dims or row not in [x[0][0] for x in ifm.projection if len(x) == 1]:
                raise NotTranslatable(f"{ofm.formula()}: the window {axis} does not pair an {ifm.name} dimension "
                                      f"with a {fil.name} dimension")
            if s != 1:
                raise NotTranslatable(f"{ofm.formula()}: backward_data of a stride-{s} convolution: nn-dataflow "
                                      "has no strided transposed convolution; it would need "
                                      f"{s}×{s} phase sub-convolutions, one schedule each, which one ntframe "
                                      "mapping cannot hold")
            if c != 1:
                raise NotTranslatable(f"{ofm.formula()}: a dilated filter ({f} with coefficient {c}): nn-dataflow's "
                                      "convolutions have none")
            size = ofm.shape[len(ofm_dims)]
            if size != bounds[row]:
                raise NotTranslatable(f"{ofm.formula()}: {ofm.name} has {size} elements along this axis where the "
                                      f"loop runs {row} = {bounds[row]} ({'no' if size > bounds[row] else 'more'} "
                                      "padding than 'same'): nn-dataflow's full convolution of the padded "
                                      f"{ifm.name} would compute all {size} ({size * bounds[f]:,} products per "
                                      f"row and channel pair instead of {bounds[row] * bounds[f]:,}); only "
                                      "'same' padding re-indexes exactly")
            windows.append((row, 1, f))
            ofm_dims.append(row)
            reindexed = (f"re-indexed as the full convolution of the zero-padded {ifm.name} with the flipped, "
                         f"transposed {fil.name} (the same multiply-accumulates)")
        else:
            raise NotTranslatable(f"{ofm.formula()}: an output index that is neither a dimension nor a "
                                  "'same'-padded window")
    if len(windows) > 2:
        raise NotTranslatable(f"{len(windows)} sliding windows: nn-dataflow's convolutions are 2-D")
    rows = {w[0] for w in windows} | {w[2] for w in windows}
    if len(rows) != 2 * len(windows) or any(row not in ofm_dims or row in fil_dims or f in ofm_dims
                                            for row, _, f in windows):
        raise NotTranslatable("sliding windows that share a dimension, or slide over the output's or the filter's "
                              "own dimensions: not a convolution nn-dataflow has")
    sf, si, so = set(fil_dims), set(ifm_dims) - rows, set(ofm_dims) - rows
    o = sf & so - si
    i = sf & si - so
    b = si & so - sf
    names = [d for d, _ in op.dims]
    left = [d for d in names if d not in o | i | b | rows]
    if left or (sf - rows) != o | i or si != i | b or so != o | b:
        extra = left or sorted((sf - rows) ^ (o | i)) or sorted(si ^ (i | b)) or sorted(so ^ (o | b))
        raise NotTranslatable(f"dimension(s) {', '.join(extra)} fit none of nn-dataflow's roles (batch, input and "
                              f"output channels, rows and columns): e.g. a grouped convolution's G, or an index "
                              f"shared by all three tensors")
    ordered = (lambda s: tuple(d for d in names if d in s))
    h, s_h, fr = windows[0] if windows else (None, 1, None)
    w, s_w, fc = windows[1] if len(windows) > 1 else (None, 1, None)
    if reindexed == "" and op.phase != Phase.forward:
        reindexed = f"re-indexed: {fil.name} as the filter, {ifm.name} as the input feature map"
    return Roles(ordered(i), ordered(o), ordered(b), h, w, fr, fc, (s_h, s_w), (fil.name, ifm.name, ofm.name),
                 bits, reindexed)


# --- schedules and mappings ---------------------------------------------------------------------------------

def _split(total: int, dims: tuple[str, ...], bounds: dict[str, int], what: str) -> dict[str, int]:
    """``total`` spread over ``dims`` (outer to inner), outermost first, each taking what divides its bound."""
    out, left = {}, total
    for d in dims:
        f = math.gcd(left, bounds[d])
        out[d], left = f, left // f
    if left != 1:
        raise NotTranslatable(f"{what}: {total} does not divide {'·'.join(dims) or 'nothing'} "
                              f"({'·'.join(str(bounds[d]) for d in dims) or '1'}) evenly")
    return out


@dataclass(frozen=True)
class Node:
    """One vault's share of the layer under a partition's sizes, with nn-dataflow's array mapping of it."""

    sizes: tuple[int, int, int, int, int]   # OUTP, OFMP rows, OFMP columns, BATP, INPP
    vault: dict[str, int]                   # the split over the vaults per dimension
    bounds: dict[str, int]                  # per vault
    layer: Any
    batch: int
    fold: tuple[int, int]                   # MapStrategyEyeriss' fold (h: filter rows, w: output rows)
    nlds: tuple[Any, ...]                   # its nested-loop descriptions, one per replication


def _pdims(sizes: tuple[int, int, int, int, int]) -> list[tuple[int, int]]:
    outp, ph, pw, batp, inpp = sizes
    pd = [(1, 1)] * 4
    pd[OUTP], pd[OFMP], pd[BATP], pd[INPP] = (1, outp), (ph, pw), (1, batp), (1, inpp)
    return pd


def sizes_of(part) -> tuple[int, int, int, int, int]:
    return (part.pdims[OUTP].size(), part.pdims[OFMP].h, part.pdims[OFMP].w, part.pdims[BATP].size(),
            part.pdims[INPP].size())


def node(op: Operation, r: Roles, hw: Hardware, sizes: tuple[int, int, int, int, int]) -> Node:
    """The per-vault layer for these partition sizes; :class:`NotTranslatable` where a split is uneven."""
    nnd = _nnd()
    bounds = op.bounds
    outp, ph, pw, batp, inpp = sizes
    vault: dict[str, int] = {}
    for dims, k, what in ((r.ofm, outp, "OUTP (output channels)"), (r.bat, batp, "BATP (batch)"),
                          (r.ifm, inpp, "INPP (input channels)"), ((r.h,) if r.h else (), ph, "OFMP (rows)"),
                          ((r.w,) if r.w else (), pw, "OFMP (columns)")):
        vault.update(_split(k, dims, bounds, f"{what} over {k} vaults"))
    layer, batch = r.layer(bounds)
    part = nnd.PartitionScheme(order=range(4), pdims=_pdims(sizes))
    p_layer, p_batch, occupancy = part.part_layer(layer, batch)
    per_vault = {d: bounds[d] // vault.get(d, 1) for d in bounds}
    if occupancy < 1 - 1e-9:
        raise NotTranslatable(f"the partition {sizes} leaves vaults idle (occupancy {occupancy:.3f})")
    try:
        strategy = nnd.MapStrategyEyeriss(p_layer, p_batch, 1.0, hw.resource.dim_array)
        nlds = tuple(strategy.gen_nested_loop_desc())
    except AssertionError as exc:
        raise NotTranslatable(f"nn-dataflow's row-stationary mapping refuses a vault's share {p_layer!r} "
                              f"(batch {p_batch}): {str(exc).splitlines()[0][:120]}") from None
    return Node(sizes, vault, per_vault, p_layer, p_batch, (strategy.fold.h, strategy.fold.w), nlds)


def replication(n: Node, nld) -> tuple[int, int]:
    """(input channels, output channels) a processing pass of ``nld`` replicates over the array: its buffer
    unit sizes over one unit pass's (``MapStrategyEyeriss._calc_unitpass``)."""
    layer, fold_w = n.layer, n.fold[1]
    rows = -(-layer.hofm // fold_w)
    ifmap = ((rows - 1) * layer.htrd + layer.hfil) * layer.wifm
    return round(nld.usize_gbuf[IFM] / ifmap), round(nld.usize_gbuf[OFM] / (rows * layer.wofm))


def _ordered(bl_t, bl_ord) -> list[int]:
    """The non-trivial loops of one blocking level, outermost first (``LoopBlockingScheme.ordered_loops``)."""
    return sorted((lpe for lpe in range(3) if bl_t[lpe] > 1), key=lambda lpe: bl_ord[lpe], reverse=True)


def encode(op: Operation, arch: Architecture, r: Roles, n: Node, nld, bl_ts, bl_ords,
           stored: tuple[bool, bool, bool], dram_words: tuple[float, float, float] | None = None,
           barred: frozenset[str] = frozenset()) -> Mapping:
    """The ntframe mapping of one nn-dataflow schedule (the module's docstring has the rules), or
    :class:`NotTranslatable` where a loop is not split exactly. The buffer keeps what nn-dataflow stores there
    (``stored``, per FIL, IFM, OFM) and, with ``dram_words`` (nn-dataflow's DRAM accesses per data category),
    every other tensor that the nest would otherwise fetch from DRAM more often than nn-dataflow counts
    (:func:`_kept`) unless the architecture bars it (``barred``: the tensors its constraints bypass there)."""
    b = n.bounds
    layer = n.layer
    fold_h, fold_w = n.fold
    ifms, ofms = replication(n, nld)
    engines: dict[str, int] = {}
    for dims, k, what in ((r.ifm, ifms, "input channels"), (r.ofm, ofms, "output channels")):
        for d, f in _split(k, tuple(reversed(dims)), b, f"the array's replication of {k} {what}").items():
            engines[d] = f
    if r.fr:
        if layer.hfil % fold_h:
            raise NotTranslatable(f"{layer.hfil} filter rows fold {fold_h} times onto the array unevenly")
        engines[r.fr] = layer.hfil // fold_h
    if r.h:
        if layer.hofm % fold_w:
            raise NotTranslatable(f"{layer.hofm} output rows fold {fold_w} times onto the array unevenly "
                                  f"({layer.hofm / fold_w:g} rows per pass)")
        engines[r.h] = layer.hofm // fold_w
    rest = {d: b[d] // engines.get(d, 1) for d in b}
    members = {L_IFM: [(d, rest[d]) for d in reversed(r.ifm)], L_OFM: [(d, rest[d]) for d in reversed(r.ofm)],
               L_BAT: ([(r.h, fold_w)] if r.h else []) + [(d, rest[d]) for d in reversed(r.bat)]}
    for lpe, what in ((L_IFM, "input-channel"), (L_OFM, "output-channel"), (L_BAT, "batch")):
        count = math.prod(f for _, f in members[lpe])
        if count != nld.loopcnt[lpe]:
            raise NotTranslatable(f"the {what} loop runs {nld.loopcnt[lpe]} times over {count} (idle engines or "
                                  "an uneven split)")
    # each level's factor of each loop, spread over the loop's dimensions innermost first
    per_level: list[dict[int, list[tuple[str, int]]]] = [{}, {}, {}]
    for lpe in range(3):
        left = dict(members[lpe])
        for lvl in (2, 1, 0):
            t = bl_ts[lvl][lpe]
            parts = []
            for d, _ in members[lpe]:
                f = math.gcd(t, left[d])
                parts.append((d, f))
                t, left[d] = t // f, left[d] // f
            if t != 1:
                raise NotTranslatable(f"blocking factor {bl_ts[lvl][lpe]} does not divide the loop's dimensions")
            per_level[lvl][lpe] = [(d, f) for d, f in reversed(parts) if f > 1]      # outer to inner

    def loops(lvl: int, order) -> list[tuple[str, int]]:
        return [pair for lpe in _ordered(bl_ts[lvl], order) for pair in per_level[lvl][lpe]]

    temporal = [loops(0, bl_ords[0]),
                loops(1, bl_ords[1]) + [(d, f) for d, f in ((r.fr, fold_h), (r.w, b.get(r.w, 1))) if d and f > 1],
                loops(2, (0, 1, 2)) + ([(r.fc, b[r.fc])] if r.fc and b[r.fc] > 1 else [])]
    names = [d for d, _ in op.dims]
    vault = tuple((d, n.vault[d]) for d in names if n.vault.get(d, 1) > 1)
    array = tuple((d, engines[d]) for d in names if engines.get(d, 1) > 1)
    bypass = tuple(sorted(r.tensors[dce] for dce in range(3) if not stored[dce]))
    levels = arch.levels
    mapping = Mapping((LevelMapping(levels[0].name, tuple(temporal[0]), vault),
                       LevelMapping(levels[1].name, tuple(temporal[1]), (), bypass),
                       LevelMapping(levels[2].name, tuple(temporal[2]), array)), ())
    if dram_words is None or not bypass:
        return mapping
    keep = [t for t in r.tensors if t in _kept(op, mapping, r, dram_words, barred)]
    for size in range(len(keep), 0, -1):        # the most of them the buffer holds (none: nn-dataflow's bypass)
        for subset in itertools.combinations(keep, size):
            kept = _keeping(mapping, subset)
            if not capacity_problems(op, kept, arch):
                return kept
    return mapping


def _keeping(mapping: Mapping, tensors) -> Mapping:
    gbuf = mapping.levels[1]
    return replace(mapping, levels=(mapping.levels[0], replace(gbuf, bypass=tuple(t for t in gbuf.bypass
                                                                                  if t not in tensors)),
                                    mapping.levels[2]))


def _kept(op: Operation, mapping: Mapping, r: Roles, dram_words: tuple[float, float, float],
          barred: frozenset[str]) -> set[str]:
    """The tensors nn-dataflow bypasses at the buffer that the ntframe mapping keeps there: each one, unless the
    architecture bars it, for which keeping brings the nest's DRAM traffic closer (as a ratio) to nn-dataflow's
    count. The two models place the same loops differently: nn-dataflow counts a processing pass's data as staying
    in the register files across the blocking loops above them (a pass's partial sums, sized as one streaming
    word, through an outer input-channel loop; a folded filter row through a batch loop), where the nest streams a
    row and folds the filter at the buffer level, under those loops — so a bypassed tensor may travel to DRAM far
    more often in the nest than nn-dataflow counts, and less once the buffer keeps it. A tensor's DRAM traffic in
    the nest depends on its own bypass alone, so each is decided on its own."""
    gbuf = mapping.levels[1]
    free = [name for name in r.tensors if name in gbuf.bypass and name not in barred]
    if not free:
        return set()
    keeping = _keeping(mapping, free)

    def words(m: Mapping) -> dict[str, float]:
        top = analyse(op, m).levels[0]
        return {t.tensor: (t.reads + t.updates) * top.instances for t in top.tensors}

    bypassed, kept = words(mapping), words(keeping)
    out = set()
    for dce, name in enumerate(r.tensors):
        if name in free and dram_words[dce] > 0 and kept[name] > 0 and (
                bypassed[name] <= 0 or abs(math.log(kept[name] / dram_words[dce]))
                < abs(math.log(bypassed[name] / dram_words[dce]))):
            out.add(name)
    return out


def dram_words(op: Operation, mapping: Mapping) -> float:
    """Elements the nest moves to and from the outermost level (every instance; the reuse analysis's, without the
    logic-die network's sharing), to set beside nn-dataflow's DRAM accesses."""
    top = analyse(op, mapping).levels[0]
    return sum(t.reads + t.updates for t in top.tensors) * top.instances


def barred(op: Operation, arch: Architecture) -> frozenset[str]:
    """The tensors the architecture's mapping constraints bypass at the buffer (for this operation)."""
    problem = Problem(op)
    c = for_operation(problem, arch)
    return frozenset(problem.tensors[j].name for (lvl, j), keep in c.keep.items() if lvl == 1 and not keep)


def _canonical(m: Mapping) -> tuple:
    """What of a mapping an nn-dataflow schedule decides: factor-1 loops dropped, spatial splits and bypasses
    as sets."""
    return (tuple((lvl.level, tuple((d, f) for d, f in lvl.temporal if f > 1),
                   tuple(sorted((d, f) for d, f in lvl.spatial if f > 1)), tuple(sorted(lvl.bypass)))
                  for lvl in m.levels), tuple(sorted((d, f) for d, f in m.compute_spatial if f > 1)))


def option(objective: str = "energy", solver: bool = True, batch: bool = True, ifmaps: bool = True,
           ntops: int = 1):
    """nn-dataflow's Option: the TETRIS solver (or the exhaustive search), hybrid partitioning."""
    nnd = _nnd()
    return nnd.Option(sw_gbuf_bypass=(True, True, True), sw_solve_loopblocking=solver, partition_hybrid=True,
                      partition_batch=batch, partition_ifmaps=ifmaps,
                      opt_goal={"energy": "e", "delay": "d", "edp": "ed"}[objective], ntops=ntops, nprocesses=1)


def ifmap_layout(layer, batch: int, resource):
    """Where the operation's input sits: spread over every vault, as nn-dataflow lays out a network's input
    (its partition-free projection onto the memory region: by sample)."""
    nnd = _nnd()
    inl = layer.input_layer()
    frng = nnd.FmapRange(nnd.FmapPosition(b=0, n=0, h=0, w=0),
                         nnd.FmapPosition(b=batch, n=inl.nofm, h=inl.hofm, w=inl.wofm))
    part = nnd.PartitionScheme(order=range(4), pdims=[(1, 1)] * 4)
    region = resource.src_data_region
    return nnd.DataLayout(frngs=(frng,), regions=(region,), parts=(part.projection(region, appl2frng=True),))


@dataclass(frozen=True)
class Schedule:
    """An nn-dataflow schedule as the cost model recovered it from a mapping."""

    node: Node
    nld_index: int
    bl_ts: tuple
    bl_ords: tuple
    parts: tuple                    # its placements on the vault mesh (nn-dataflow's PartitionSchemes)


def decode(op: Operation, arch: Architecture, r: Roles, hw: Hardware, mapping: Mapping) -> Schedule:
    """The nn-dataflow schedule whose mapping (:func:`encode`) is ``mapping``, or :class:`NotTranslatable` naming
    the first thing that does not fit."""
    names = [lvl.name for lvl in arch.levels]
    if [lvl.level for lvl in mapping.levels] != names:
        raise NotTranslatable(f"levels {[lvl.level for lvl in mapping.levels]}, not {names}")
    dram, gbuf, regf = mapping.levels
    if any(f > 1 for _, f in gbuf.spatial + mapping.compute_spatial):
        raise NotTranslatable("a split under the buffer or the register file: nn-dataflow has none")
    flat = {"ofm": 1, "h": 1, "w": 1, "bat": 1, "ifm": 1}
    for d, f in dram.spatial:
        role = r.of(d)
        if role not in flat:
            raise NotTranslatable(f"the vaults split {d} ({role}): nn-dataflow splits output channels, rows, "
                                  "columns, batch and input channels over the vaults")
        flat[role] *= f
    sizes = (flat["ofm"], flat["h"], flat["w"], flat["bat"], flat["ifm"])
    nodes = hw.nodes[0] * hw.nodes[1]
    if math.prod(sizes) != nodes:
        raise NotTranslatable(f"the mapping uses {math.prod(sizes)} of the {nodes} vaults: nn-dataflow spreads "
                              "every layer over all of them")
    n = node(op, r, hw, sizes)
    engines = {"ifm": 1, "ofm": 1}
    for d, f in regf.spatial:
        role = r.of(d)
        if role in engines:
            engines[role] *= f
    p = n.layer
    if p.nifm % engines["ifm"] or p.nofm % engines["ofm"]:
        raise NotTranslatable(f"the array replicates {engines['ifm']} input and {engines['ofm']} output channels, "
                              f"which do not divide a vault's {p.nifm} and {p.nofm}")
    want = (p.nifm // engines["ifm"], p.nofm // engines["ofm"], n.batch * n.fold[1])
    matches = [k for k, nld in enumerate(n.nlds) if tuple(nld.loopcnt) == want
               and replication(n, nld) == (engines["ifm"], engines["ofm"])]
    if not matches:
        offered = sorted({replication(n, nld) for nld in n.nlds})
        raise NotTranslatable(f"the array replicates {engines['ifm']} input × {engines['ofm']} output channels; "
                              f"nn-dataflow's row-stationary mapping of a vault's share offers {offered}")
    k = matches[0]
    nld = n.nlds[k]
    bl_ts, bl_ords = [], []
    for lvl, level in enumerate((dram, gbuf, regf)):
        t = [1, 1, 1]
        first: list[int] = []
        for d, f in level.temporal:
            role = r.of(d)
            lpe = {"ifm": L_IFM, "ofm": L_OFM, "bat": L_BAT}.get(role, L_BAT if role == "h" else None)
            if lpe is None:
                continue                   # filter rows/columns and output columns: checked by encoding again
            t[lpe] *= f
            if f > 1 and lpe not in first:
                first.append(lpe)
        bl_ts.append(tuple(t))
        if lvl < 2:                         # positions, innermost 0; trivial loops outside, in LoopEnum order
            positions = [0, 0, 0]
            for pos, lpe in enumerate([*reversed(first), *(x for x in range(3) if x not in first)]):
                positions[lpe] = pos
            bl_ords.append(tuple(positions))
    for lpe, what in ((L_IFM, "input-channel"), (L_OFM, "output-channel"), (L_BAT, "batch")):
        total = math.prod(ts[lpe] for ts in bl_ts)
        if total != nld.loopcnt[lpe]:
            raise NotTranslatable(f"the {what} loop's factors multiply to {total}, nn-dataflow's loop runs "
                                  f"{nld.loopcnt[lpe]}")
    parts = placements(op, r, hw, sizes)
    if not parts:
        raise NotTranslatable(f"nn-dataflow generates no partition with these sizes (output channels, rows, "
                              f"columns, batch, input channels: {sizes})")
    lbs = _blocking(hw, nld, bl_ts, bl_ords, parts[0])
    if not lbs.is_valid():
        raise NotTranslatable("nn-dataflow's buffers (GBUF or REGF) do not hold this blocking")
    ours = encode(op, arch, r, n, nld, bl_ts, bl_ords, tuple(lbs.stored_in_gbuf), tuple(lbs.get_access()[DRAM]),
                  barred(op, arch))
    if _canonical(ours) != _canonical(mapping):
        raise NotTranslatable(_difference(ours, mapping))
    return Schedule(n, k, tuple(bl_ts), tuple(bl_ords), tuple(parts))


def _difference(ours: Mapping, theirs: Mapping) -> str:
    """The first level where the mapping differs from the nn-dataflow schedule read from it."""
    for a, b in zip(_canonical(ours)[0], _canonical(theirs)[0]):
        for what, x, y in (("loops", a[1], b[1]), ("spatial split", a[2], b[2]), ("bypass", a[3], b[3])):
            if x != y:
                return (f"{a[0]}: {what} {list(y)} where nn-dataflow's schedule with the same factors has "
                        f"{list(x)} (its row-stationary array mapping and three blocking levels place every loop)")
    return "the mapping differs from nn-dataflow's schedule with the same factors"


def _blocking(hw: Hardware, nld, bl_ts, bl_ords, part):
    nnd = _nnd()
    bufshr = nnd.BufShrScheme(hw.resource.proc_region, part, nld.data_loops)
    return nnd.LoopBlockingScheme(nld, bl_ts, bl_ords, hw.resource, bufshr, option())


def placements(op: Operation, r: Roles, hw: Hardware, sizes: tuple[int, int, int, int, int]) -> list:
    """nn-dataflow's partitions (``gen_partition``, in its order) with these sizes: where on the vault mesh each
    part goes, which an ntframe mapping does not say."""
    nnd = _nnd()
    layer, batch = r.layer(op.bounds)
    return [part for part in nnd.partition.gen_partition(layer, batch, hw.resource.proc_region.dim, option(),
                                                         guaranteed=True) if sizes_of(part) == sizes]


def price(op: Operation, r: Roles, hw: Hardware, s: Schedule, objective: str = "energy"):
    """nn-dataflow's SchedulingResult for the schedule, at the placement on the vault mesh it prices lowest
    (every placement of the same partition sizes; the first of equals in ``gen_partition``'s order, as its
    search would keep)."""
    nnd = _nnd()
    layer, batch = r.layer(op.bounds)
    opt = option(objective)
    sched = nnd.Scheduling(layer, batch, hw.cost, nnd.MapStrategyEyeriss)
    resource = hw.resource
    ifl = ifmap_layout(layer, batch, resource)
    best = None
    for part in s.parts:
        result = _result(sched, layer, batch, resource, part, ifl, opt,
                         _blocking(hw, s.node.nlds[s.nld_index], s.bl_ts, s.bl_ords, part))
        if best is None or _key(result, objective) < _key(best, objective):
            best = result
    return best


def _key(result, objective: str):
    cost, t = result.total_cost, result.total_time
    return {"energy": (cost, t), "delay": (t, cost), "edp": (cost * t,)}[objective]


def _result(sched, layer, batch: int, resource, part, ifl, opt, lbs):
    """``Scheduling.schedule_search``'s record of one loop blocking at one partition (its own steps)."""
    nnd = _nnd()
    ofrng = nnd.FmapRange(nnd.FmapPosition(b=0, n=0, h=0, w=0),
                          nnd.FmapPosition(b=batch, n=layer.nofm, h=layer.hofm, w=layer.wofm))
    ofl = nnd.DataLayout(frngs=(ofrng,), regions=(resource.dst_data_region,),
                         parts=(part.projection(resource.dst_data_region, appl2frng=True),))
    hops = nnd.partition.unit_nhops_to_proc_region(layer, batch, resource.proc_region, part,
                                                   frozenset(resource.dram_region.iter_node()), ifl, ofl, opt)
    return sched._get_result(lbs, part, ofl, (0, 0, 0), hops)


# --- nn-dataflow's result as ntframe's ------------------------------------------------------------------------

def to_compute_cost(op: Operation, arch: Architecture, r: Roles, hw: Hardware, result,
                    notes: tuple[str, ...] = ()) -> ComputeCost:
    """nn-dataflow's SchedulingResult as a ComputeCost: its accesses per level and data category (words), their
    energies, its cycles (``max(processing, array bus, DRAM)``); leakage left out (the runner adds it)."""
    s = result.scheme
    access, fetch = s["access"], s["fetch"]
    cost = hw.cost
    bits = hw.word_bits
    names = r.tensors

    def split(words: float, fetches: float) -> tuple[float, float]:
        """An output's accesses (``2f - 1`` per element: f writes, f - 1 reads back) as (reads, updates)."""
        return words * (fetches - 1) / (2 * fetches), words * (fetches + 1) / (2 * fetches)

    def level(name: str, instances: int, energy_per_word: float, rows: dict[str, tuple[float, float]],
              bound: float, memory: bool = False) -> LevelCost:
        tensors = {t: {"reads": rd, "fills": 0.0, "updates": up, "energy_pJ": (rd + up) * energy_per_word}
                   for t, (rd, up) in rows.items()}
        reads = sum(v[0] for v in rows.values())
        updates = sum(v[1] for v in rows.values())
        return LevelCost(name, instances, reads, 0.0, updates, reads * bits, updates * bits,
                         (reads + updates) * energy_per_word, bound, is_memory=memory, tensors=tensors)

    gbuf_words = [a + rem for a, rem in zip(access[GBUF], s["remote_gbuf_access"])]
    dram_rows = {names[FIL]: (access[DRAM][FIL], 0.0), names[IFM]: (access[DRAM][IFM], 0.0),
                 names[OFM]: split(access[DRAM][OFM], fetch[0][OFM])}
    gbuf_rows = {names[FIL]: (gbuf_words[FIL], 0.0), names[IFM]: (gbuf_words[IFM], 0.0),
                 names[OFM]: split(gbuf_words[OFM], fetch[1][OFM])}
    regf_rows = {names[FIL]: (access[REGF][FIL], 0.0), names[IFM]: (access[REGF][IFM], 0.0),
                 names[OFM]: (access[REGF][OFM] / 2, access[REGF][OFM] / 2)}
    itcn_rows = {names[dce]: (access[ITCN][dce], 0.0) for dce in range(3)}
    dram, gbuf, regf = arch.levels
    levels = [level(dram.name, dram.instances, cost.mem_hier[DRAM], dram_rows, float(s["dram_time"]),
                    memory=dram.cls == "DRAM"),
              level(gbuf.name, gbuf.instances, cost.mem_hier[GBUF], gbuf_rows, float(s["bus_time"])),
              level(regf.name, regf.instances, cost.mem_hier[REGF], regf_rows, 0.0),
              level(ARRAY_NETWORK, gbuf.instances, cost.mem_hier[ITCN], itcn_rows, 0.0)]
    if arch.network is not None:
        hops = s["total_nhops"]
        levels.append(LevelCost(arch.network.name, 1, 0.0, 0.0, 0.0, 0.0, sum(hops) * bits,
                                float(s["cost_noc"]), 0.0, tensors={
                                    names[dce]: {"word_hops": hops[dce], "energy_pJ": hops[dce] * cost.noc_hop}
                                    for dce in range(3)}))
    cycles = float(s["time"])
    word_bytes = bits / 8
    reads = {t: v[0] * word_bytes for t, v in dram_rows.items()}
    writes = {t: v[1] * word_bytes for t, v in dram_rows.items()}
    return ComputeCost(
        cycles=cycles, on_die_cycles=float(max(s["proc_time"], s["bus_time"])), compute_cycles=float(s["proc_time"]),
        energy_pJ=float(s["cost"] - s["cost_static"]), compute_energy_pJ=float(s["cost_op"]),
        utilisation=op.points / (arch.peak_ops_per_cycle * cycles) if cycles else 0.0, levels=tuple(levels),
        dram_read_bytes_by_tensor=bytes_by_tensor(op, reads), dram_write_bytes_by_tensor=bytes_by_tensor(op, writes),
        dram_instances=dram.instances,
        notes=(f"nn-dataflow {nn_dataflow_version()}: {r.describe(op.bounds)}"
               + (f"; {r.reindexed}" if r.reindexed else ""),
               "nn-dataflow charges each word moved between two levels once, at the upper one (fills are not "
               f"counted); {dram.name} writes and reads back partial sums as its 2f - 1 accesses per output",
               *hw.notes, *notes))


# --- the components -----------------------------------------------------------------------------------------

def _prepare(op: Operation, arch: Architecture, options: HardwareOptions) -> tuple[Roles, Hardware]:
    r = roles(op)
    return r, hardware(arch, r.bits, options)


class _UsesNnDataflow:
    """What both components need: nn-dataflow importable, and its version in their cache keys."""

    def check_available(self) -> None:
        _nnd()

    def cache_identity(self) -> dict[str, Any]:
        return {"nn-dataflow": nn_dataflow_version()}


class NnDataflowModel(_UsesNnDataflow, CostModel):
    name = "nn-dataflow"
    description = ("Stanford's nn-dataflow (the TETRIS authors' scheduler) pricing a mapping that is one of its "
                   "schedules (row-stationary array, three blocking levels); conv and matrix products, training "
                   "phases re-indexed")
    Options = HardwareOptions

    def evaluate(self, operation: Operation, mapping: Mapping, architecture: Architecture) -> ComputeCost:
        try:
            r, hw = _prepare(operation, architecture, self.options)
            schedule = decode(operation, architecture, r, hw, mapping)
            result = price(operation, r, hw, schedule)
        except NotTranslatable as exc:
            raise PluginError(f"not expressible in nn-dataflow: {exc}") from None
        return to_compute_cost(operation, architecture, r, hw, result)


class NnDataflowSearchOptions(HardwareOptions):
    objective: Literal["energy", "delay", "edp"] = "energy"
    """What nn-dataflow minimises (its ``opt_goal``: e, d, ed); TETRIS minimises energy."""
    loop_blocking: Literal["solver", "exhaustive"] = "solver"
    """The TETRIS analytical loop-blocking solver (``sw_solve_loopblocking``), or nn-dataflow's exhaustive search
    (35-340 times slower on a VGG layer, within 0-2.4 % in energy)."""
    partition_batch: bool = True
    """Let nn-dataflow split the batch over the vaults (BATP)."""
    partition_ifmaps: bool = True
    """Let nn-dataflow split the input channels over the vaults (INPP: partial sums combined across vaults)."""
    dram_tolerance: float = Field(1.25, ge=1)
    """Take a schedule only if the ntframe nest of it moves at most this many times the DRAM words nn-dataflow
    counts for it (``.inf``: nn-dataflow's best schedule that translates, whatever the nest moves). nn-dataflow
    sizes a register file for one streaming word of a processing pass's partial sums and input row but counts them
    as staying there across the loops above; the nest runs the same loops on the same register files and moves
    what they cannot hold through the buffer (kept there where it fits) or DRAM."""
    ntops: PositiveInt = 2000
    """Schedules nn-dataflow keeps, best first (its ``ntops``); the best of them that translates into an ntframe
    mapping is taken (the solver yields a few per partition and array mapping, all of which are kept)."""
    otherwise: Literal["native", "error"] = "native"
    """Operations nn-dataflow cannot schedule (element-wise work, pooling, updates, strided backward passes):
    ntframe's native search with the run's cost model (the result's method says so), or an error."""


@dataclass
class Tally:
    """What the search met and what ntframe kept (returned from the child process)."""

    priced: int = 0                 # schedules nn-dataflow priced (every partition, array mapping and blocking)
    schedules: int = 0              # of which it kept (ntops), best first
    translated: int = 0             # taken (1), or 0: none of the kept ones translates
    rank: int = -1
    best: tuple[float, float] | None = None         # nn-dataflow's best schedule (energy pJ, cycles)
    chosen: tuple[float, float] | None = None
    reasons: dict[str, int] = field(default_factory=dict)

    def drop(self, reason: str) -> None:
        self.reasons[reason] = self.reasons.get(reason, 0) + 1


def _reason(text: str) -> str:
    """A dropped candidate's reason, without its numbers (one count per kind)."""
    out = "".join("#" if c.isdigit() else c for c in text)
    while "##" in out:
        out = out.replace("##", "#")
    return out[:160]


def _search(op: Operation, arch: Architecture, r: Roles, hw: Hardware,
            opts: NnDataflowSearchOptions) -> tuple[Mapping | None, Tally]:
    """nn-dataflow's schedule search on the operation's layer and the best schedule that translates (None if
    none), with the tally."""
    nnd = _nnd()
    tally = Tally()
    layer, batch = r.layer(op.bounds)
    opt = option(opts.objective, opts.loop_blocking == "solver", opts.partition_batch, opts.partition_ifmaps,
                 opts.ntops)
    sched = _scheduling_class()(layer, batch, hw.cost, nnd.MapStrategyEyeriss)
    sched.tally = tally
    cond = nnd.SchedulingCondition(resource=hw.resource, constraint=nnd.SchedulingConstraint(),
                                   ifmap_layout=ifmap_layout(layer, batch, hw.resource), sched_seq=(0, 0, 0))
    tops = sched.schedule_search(cond, opt)
    tally.schedules = len(tops)
    if tops:
        tally.best = (tops[0].total_cost - tops[0].scheme["cost_static"], tops[0].total_time)
    problem = Problem(op)
    constraints = for_operation(problem, arch)
    bars = barred(op, arch)
    nodes: dict[tuple, Node | str] = {}
    found = None
    for rank, top in enumerate(tops):
        s = top.scheme
        sizes = sizes_of(s["part"])
        if sizes not in nodes:
            try:
                nodes[sizes] = node(op, r, hw, sizes)
            except NotTranslatable as exc:
                nodes[sizes] = str(exc)
        n = nodes[sizes]
        if isinstance(n, str):
            tally.drop(f"does not translate: {_reason(n)}")
            continue
        try:
            mapping = encode(op, arch, r, n, s["nld"], s["tvals"], s["orders"], s["stored_in_gbuf"],
                             tuple(s["access"][DRAM]), bars)
        except NotTranslatable as exc:
            tally.drop(f"does not translate: {_reason(str(exc))}")
            continue
        problems = structural_problems(op, mapping, arch) or capacity_problems(op, mapping, arch) \
            or violations(problem, mapping, arch, constraints)
        if problems:
            tally.drop(_reason(problems[0]))
            continue
        if dram_words(op, mapping) > opts.dram_tolerance * sum(s["access"][DRAM]):
            tally.drop(f"the nest moves more than {opts.dram_tolerance:g}x nn-dataflow's DRAM words (its "
                       "register-file accounting keeps more than the register files hold)")
            continue
        tally.translated += 1
        found, tally.rank = mapping, rank
        tally.chosen = (top.total_cost - s["cost_static"], top.total_time)
        break
    return found, tally


_SCHEDULING: list[type] = []


def _scheduling_class() -> type:
    """nn-dataflow's ``Scheduling`` with two guards and a record of each result's array mapping (made once)."""
    if _SCHEDULING:
        return _SCHEDULING[0]
    nnd = _nnd()
    from nn_dataflow.core import loop_blocking, loop_blocking_solver

    class GuardedScheduling(nnd.Scheduling):
        """``schedule_search_per_node`` as nn-dataflow's (scheduling.py), except that a vault's share the
        row-stationary mapping refuses (``MapStrategyEyeriss`` asserts a PE utilisation above 50 %) and a
        solver case with no feasible blocking (``_solve_gbuf_reside`` raises ``UnboundLocalError``) are skipped
        and counted instead of ending the whole search; ``_get_result`` also keeps the array mapping
        (``nld``) and the buffer's bypasses of each result."""

        tally: Tally

        def schedule_search_per_node(self, part, resource, constraint, options):
            found = []
            p_layer, p_batch, p_occ = part.part_layer(self.layer, self.batch_size)
            try:
                strategy = self.map_strategy_class(p_layer, p_batch, p_occ, resource.dim_array)
            except AssertionError:
                self.tally.drop("nn-dataflow: the row-stationary mapping uses under 50 % of the engines")
                return found
            for nld in strategy.gen_nested_loop_desc():
                if options.sw_solve_loopblocking and nld.data_loops == nnd.ConvLayer.data_loops():
                    bufshr = nnd.BufShrScheme(resource.proc_region, part, nld.data_loops)
                    for reside in range(3):
                        if not all(options.sw_gbuf_bypass[d] for d in range(3) if d != reside):
                            continue
                        try:
                            bl_ts, bl_ords = loop_blocking_solver._solve_gbuf_reside(nld, resource, reside)
                        except UnboundLocalError:
                            self.tally.drop("nn-dataflow's solver: no blocking fits the buffers")
                            continue
                        lbs = nnd.LoopBlockingScheme(nld, bl_ts, bl_ords, resource, bufshr, options)
                        if constraint.is_valid_top_bl(lbs.bl_ts[0], lbs.bl_ords[0]) and lbs.is_valid():
                            found.append(lbs)
                else:
                    found += [lbs for lbs in loop_blocking.gen_loopblocking(nld, resource, part, constraint,
                                                                             self.cost, options) if lbs.is_valid()]
            return found

        def _get_result(self, lbs, part, ofmap_layout, sched_seq, unit_nhops):
            result = super()._get_result(lbs, part, ofmap_layout, sched_seq, unit_nhops)
            result.scheme["nld"] = lbs.nld
            result.scheme["stored_in_gbuf"] = tuple(bool(x) for x in lbs.stored_in_gbuf)
            self.tally.priced += 1
            return result

    _SCHEDULING.append(GuardedScheduling)
    return GuardedScheduling


class NnDataflowSearcher(_UsesNnDataflow, MappingSearcher):
    name = "nn-dataflow"
    description = ("Stanford's nn-dataflow schedule search (the TETRIS loop-blocking solver, hybrid partitioning): "
                   "its best schedule that translates into an ntframe mapping; other operations: native")
    Options = NnDataflowSearchOptions

    def search(self, operation: Operation, architecture: Architecture, cost_model: CostModel, budget: Budget,
               seed: int) -> SearchResult:
        started = time.perf_counter()
        problems = shape_problems(architecture)
        if problems:
            raise PluginError(f"nn-dataflow cannot model architecture {architecture.name}: {'; '.join(problems)}")
        try:
            r = roles(operation)
        except NotTranslatable as exc:
            return self._otherwise(operation, architecture, cost_model, budget, seed, str(exc))
        try:
            hw = hardware(architecture, r.bits, self.options)
        except NotTranslatable as exc:
            raise PluginError(f"nn-dataflow: {exc}") from None
        left = max(0.1, budget.seconds - (time.perf_counter() - started))
        answer = run_pieces(lambda _: _guarded(lambda: _search(operation, architecture, r, hw, self.options)), 1, 1,
                            timeout_s=left, late=lambda _, why: ("late", why),
                            died=lambda _: ("died", "its process died"))[0]
        if answer[0] == "late":
            raise ToolError(f"nn-dataflow's search of {operation.name} did not finish within the search budget "
                            f"({left:.1f} s)", fix="raise mapper.budget.seconds, or use loop_blocking: solver")
        if answer[0] != "ok":
            raise PluginError(f"nn-dataflow's search of {operation.name} failed: {answer[1]}")
        mapping, tally = answer[1]
        if mapping is None:
            why = "; ".join(f"{reason}: {n}" for reason, n in sorted(tally.reasons.items(), key=lambda x: -x[1]))
            return self._otherwise(operation, architecture, cost_model, budget, seed,
                                   f"none of its {tally.schedules} schedules translates into an ntframe mapping "
                                   f"that fits ({why or 'it found none'})")
        cost = cost_model.evaluate(operation, mapping, architecture)
        best, chosen = tally.best, tally.chosen
        method = (f"nn-dataflow {self.options.loop_blocking}: its schedule {tally.rank + 1} of {tally.schedules}"
                  + ("" if tally.rank == 0 else f" (its better ones do not translate: the best {best[0]:.4g} pJ, "
                     f"{best[1]:.4g} cycles; this one {chosen[0]:.4g} pJ, {chosen[1]:.4g} cycles)"))
        return SearchResult(mapping, cost, evaluated=tally.priced, valid=tally.translated,
                            invalid_reasons=dict(tally.reasons), objective=self.options.objective, method=method)

    def _otherwise(self, operation: Operation, architecture: Architecture, cost_model: CostModel, budget: Budget,
                   seed: int, reason: str) -> SearchResult:
        """An operation nn-dataflow does not map: ntframe's native search (``otherwise: native``) or an error."""
        if self.options.otherwise == "error":
            raise PluginError(f"nn-dataflow cannot map {operation.name}: {reason}")
        found = search_operation(operation, architecture, cost_model, budget, seed, self.options.objective,
                                 Constraints(), "nn-dataflow-otherwise")
        return replace(found, method=f"native, as nn-dataflow cannot map it: {reason}")


def _guarded(work):
    """``work()``'s result as ("ok", result), or ("error", text): exceptions need not pickle."""
    try:
        return ("ok", work())
    except NotTranslatable as exc:
        return ("error", str(exc))
    except Exception as exc:  # nn-dataflow's own failures (asserts) are reported, not raised across processes
        return ("error", f"{type(exc).__name__}: {exc}")


@ntframe.hookimpl
def ntframe_register_cost_models(register):
    register(NnDataflowModel)


@ntframe.hookimpl
def ntframe_register_mappers(register):
    register(NnDataflowSearcher)
