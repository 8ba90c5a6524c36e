"""An architecture's mapping constraints (Timeloop's vocabulary, :class:`~ntframe.hardware.architecture.MappingRules`)
applied to one operation: the search's :class:`~ntframe.mapping.search.Constraints`, merged with a mapper's own.

Tensor names are the operation's data-space names (``I``, ``W``, ``O``, ``dO``, …) or a role: ``output`` (the
tensors it writes) and ``operands`` (those it only reads). A tensor or dimension the operation lacks does not
apply to it; a constraint that cannot hold (a factor that does not divide the bound, a split of a time-step loop)
raises :class:`~ntframe.errors.MappingError` naming it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from ntframe.errors import MappingError
from ntframe.hardware.architecture import Architecture
from ntframe.mapping.mapspace import Problem


@dataclass
class Constraints:
    """Restrictions of the mapping space (indices are dimension positions in the problem)."""

    spatial: dict[int, set[int]] = field(default_factory=dict)
    """Spatial row -> dimensions allowed to be split there (rows not listed: any dimension)."""
    temporal: dict[int, set[int]] = field(default_factory=dict)
    """Dimension -> temporal levels allowed (not listed: any)."""
    innermost: dict[int, list[int]] = field(default_factory=dict)
    """Level -> dimensions whose loops sit innermost at that level, the last one innermost."""
    keep: dict[tuple[int, int], bool] = field(default_factory=dict)
    """(level, tensor) -> forced keep (True) or bypass (False)."""
    factors: dict[tuple[int, int], tuple[int, int]] = field(default_factory=dict)
    """(slot, dimension) -> (least, most) product of the dimension's factors in the slot (slot ``l < K``:
    temporal at level ``l``; ``K + row``: spatial in that fan-out row); equal for an exact factor."""
    spatial_probability: float = 0.6




def _tensors(problem: Problem, names: list[str]) -> list[int]:
    out = []
    for name in names:
        for j, t in enumerate(problem.tensors):
            role = "output" if t.role != 0 else "operands"
            if name in (t.name, role):
                out.append(j)
    return out


def _bounds(value: int | str) -> tuple[int, int]:
    if isinstance(value, int):
        return value, value
    return 1, int(value.replace("<=", "").strip())


def for_operation(problem: Problem, arch: Architecture, base: Constraints | None = None) -> Constraints:
    """``base`` (a mapper's constraints, e.g. a data-flow template) with the architecture's added."""
    c = dataclasses.replace(base) if base is not None else Constraints()
    c.spatial = {row: set(dims) for row, dims in c.spatial.items()}
    c.innermost = {lvl: list(dims) for lvl, dims in c.innermost.items()}
    c.keep, c.factors = dict(c.keep), dict(c.factors)
    rules = arch.constraints
    if rules is None:
        return c
    K = len(arch.levels)
    idx = problem.index
    names = [lvl.name for lvl in arch.levels]
    written = {d for t in problem.tensors if t.role != 0 for d in problem.dims if t.relevant[idx[d]]}

    def keep(lvl: int, tensors: list[int], value: bool) -> None:
        for j in tensors:
            if c.keep.get((lvl, j), value) != value:
                raise MappingError(f"{names[lvl]}: {problem.tensors[j].name} is both kept and bypassed")
            if lvl == 0 and not value:
                raise MappingError(f"{names[0]}: the outermost level holds every tensor; it cannot bypass "
                                 f"{problem.tensors[j].name}")
            c.keep[(lvl, j)] = value

    def factor(slot: int, dim: str, value: int | str, where: str) -> None:
        lo, hi = _bounds(value)
        d = idx[dim]
        if lo > 1 and int(problem.bounds[d]) % lo:
            raise MappingError(f"{where}: factor {lo} of {dim} does not divide its bound {int(problem.bounds[d])}")
        old = c.factors.get((slot, d))
        if old is not None:
            lo, hi = max(lo, old[0]), min(hi, old[1])
            if lo > hi:
                raise MappingError(f"{where}: the factors of {dim} conflict")
        c.factors[(slot, d)] = (lo, hi)

    for lvl, rule in enumerate(rules.levels):
        if rule is None:
            continue
        keep(lvl, _tensors(problem, rule.keep), True)
        keep(lvl, _tensors(problem, rule.bypass), False)
        order = [idx[d] for d in rule.permutation if d in idx]          # innermost first
        if order:
            pinned = order[::-1]                                         # Constraints: the last one innermost
            have = c.innermost.get(lvl, [])
            if have and have[-len(pinned):] != pinned[-len(have):]:
                raise MappingError(f"{names[lvl]}: permutation {''.join(rule.permutation)} conflicts with the "
                                 f"mapper's innermost loops {''.join(problem.dims[d] for d in have[::-1])}")
            c.innermost[lvl] = pinned if len(pinned) >= len(have) else have
        for dim, value in rule.factors.items():
            if dim in idx:
                factor(lvl, dim, value, names[lvl])
    for row, rule in enumerate(rules.rows):
        if rule is None:
            continue
        where = f"the fan-out into {names[row] if row < K else arch.compute.name}"
        allowed = set(range(problem.D)) if rule.dims is None else {idx[d] for d in rule.dims if d in idx}
        if rule.no_spatial_reduction:
            allowed &= {idx[d] for d in written}
        c.spatial[row] = (c.spatial[row] & allowed if row in c.spatial else allowed) or {-1}
        for dim, value in rule.factors.items():
            if dim in idx:
                if idx[dim] in problem.sequential and _bounds(value)[0] > 1:
                    raise MappingError(f"{where}: {dim} is a time-step loop, it cannot be split")
                factor(K + row, dim, value, where)
    return c


def violations(problem: Problem, mapping, arch: Architecture, c: Constraints) -> list[str]:
    """Where ``mapping`` (a :class:`~ntframe.mapping.mapping.Mapping`) breaks the constraints ``c``: one line each."""
    K = len(arch.levels)
    names = [lvl.name for lvl in arch.levels] + [arch.compute.name]
    dims = problem.dims
    out = []
    rows = mapping.spatial_rows()
    for (lvl, j), keep in sorted(c.keep.items()):
        if (problem.tensors[j].name in mapping.levels[lvl].bypass) == keep:
            out.append(f"{names[lvl]}: {problem.tensors[j].name} must be {'kept' if keep else 'bypassed'}")
    for (slot, d), (lo, hi) in sorted(c.factors.items()):
        pairs = mapping.levels[slot].temporal if slot < K else rows[slot - K]
        f = 1
        for dim, v in pairs:
            f *= v if dim == dims[d] else 1
        if not lo <= f <= hi or f % lo:
            what = f"temporal at {names[slot]}" if slot < K else f"spatial into {names[slot - K]}"
            out.append(f"{what}: factor {f} of {dims[d]}, allowed {lo if lo == hi else f'<= {hi}'}")
    for row, allowed in sorted(c.spatial.items()):
        bad = sorted({d for d, v in rows[row] if v > 1 and problem.index[d] not in allowed})
        if bad:
            out.append(f"spatial into {names[row]}: {', '.join(bad)} may not be split there")
    for lvl, pinned in sorted(c.innermost.items()):
        order = [d for d, v in mapping.levels[lvl].temporal if v > 1]          # outermost first
        want = [dims[d] for d in pinned if dims[d] in order]
        if order[len(order) - len(want):] != want:
            out.append(f"{names[lvl]}: loops {', '.join(want)} must be innermost in that order (found "
                       f"{', '.join(order)})")
    return out


__all__ = ["Constraints", "for_operation", "violations"]
