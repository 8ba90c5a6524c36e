"""A seeded, budgeted, vectorised search over a mapping space (used by the ``native`` and
``neurotrainer-dataflow`` mappers).

A candidate assigns every prime factor of every loop bound to a *slot* — a temporal loop at storage level
``l`` (slots ``0..K-1``) or a spatial split into level ``l`` / the compute units (slots ``K..2K``) — and carries
a loop-order key per level and dimension and a keep/bypass bit per level and tensor. The search explores
first (``EXPLORE`` of the budget): the mapping that keeps every loop at the outermost level (always valid),
random samples that fit by construction (every prime factor is offered a random slot in a random order, and the
move is kept when the fan-outs and capacities still hold), then batches of mutations of the best candidates
found so far (move a factor to another slot, swap two loops, flip a bypass bit; a change that no longer fits is
undone) with fresh samples. Then it descends: from the best explored candidates, to the best neighbour
(:meth:`Space.neighbours`) while it improves, then kicks the best local optimum and descends again while budget
remains. Every batch is canonicalised and de-duplicated, checked, and only the valid candidates are priced —
all as numpy arrays. ``Constraints`` restrict which slots a dimension may use and pin loops to the inside of a
level: that is how a data-flow template is expressed. :mod:`ntframe.mapping.exhaustive` enumerates the same
space for small operations (the test oracle).

The outcome depends on the operation, the architecture, the constraints, the seed and the evaluation budget
only; the seconds cap stops a search early and is reported.

For searchers built on it: :func:`search_operation` (one operation searched and priced: a searcher's
``SearchResult``), :func:`batch_evaluator` (a cost model seen as a batch evaluator) and :func:`vault_split` (the
split over the vaults, for external searchers that model one vault).
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from typing import TYPE_CHECKING

import numpy as np

from ntframe.components import CostModel
from ntframe.jit import clock
from ntframe.errors import MappingError
from ntframe.hardware.architecture import Architecture
from ntframe.mapping.bounded import bounded_search
from ntframe.mapping.constraints import Constraints, for_operation
from ntframe.mapping.mapspace import Problem, from_batch
from ntframe.mapping.space import (FITS, IDLE_KICKS, KICK, Evaluator, Outcome, Shortlist, Space, batch_evaluator,
                                   objective_value)
from ntframe.results import SearchResult
from ntframe.workload.ir import Operation

if TYPE_CHECKING:
    from ntframe.components import Budget

EXPLORE = 0.5
"""Share of the evaluation budget spent exploring (random samples, mutations) before the descent."""
STARTS = 4
"""Descents from the best explored candidates before the iterated descent."""
INCUMBENT = 0.1
"""Share of the budget a bounded search first spends on a sampling search (seed 0 whatever the spec's, so the
answer stays seed-independent) whose best mapping it starts from: structures with loose bounds then cannot end
the search on a worse mapping."""



def _seed(seed: int, problem: Problem, arch: Architecture, tag: str) -> int:
    text = f"{seed}|{tag}|{problem.op.shape_key()}|{arch.content_sha256}"
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")


def search(problem: Problem, arch: Architecture, evaluate: Evaluator, *, evaluations: int, seconds: float,
           seed: int, objective: str = "edp", constraints: Constraints | None = None, tag: str = "",
           explore: float = EXPLORE, shortlist: Shortlist | None = None) -> Outcome:
    """Price at most ``evaluations`` distinct candidates (all valid by construction) and return the best.

    Two phases: exploration (random samples and mutations of the best found, ``explore`` of the budget), then
    descent: from the best candidates not yet descended from, in order, move to the best of all neighbours
    (:meth:`Space.neighbours`) while it improves; a local optimum ends a descent. The budget ends the search.
    ``Outcome.evaluated`` counts every candidate considered (priced, duplicate, or a change undone because it
    broke a fan-out or a capacity); ``valid`` the priced ones; ``invalid_reasons`` the rest by reason.
    ``shortlist`` is offered every priced candidate."""
    space = Space(problem, arch, constraints or Constraints())
    rng = np.random.default_rng(_seed(seed, problem, arch, tag))
    start = clock()
    seen: set[bytes] = set()
    state = {"duplicates": 0, "priced": 0, "truncated": False}
    pool_A, pool_O, pool_keep, pool_score = [], [], [], []
    best: list = []                                     # [value, batch, energy, cycles]

    def price(A: np.ndarray, O: np.ndarray, keep: np.ndarray, check: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Price the candidates not seen before, within the budget: (their indices, their values). ``check``:
        drop those that do not fit first (callers whose candidates fit by construction leave it off)."""
        batch = space.decode(A, O, keep)
        keys = batch.keys()
        fits = space.fits(A, keep).tolist() if check else [True] * len(keys)      # (lists: cheaper per item)
        fresh = [i for i, k in enumerate(keys) if fits[i] and k not in seen and not seen.add(k)]   # type: ignore[func-returns-value]
        state["duplicates"] += sum(fits) - len(fresh)
        fresh = fresh[: evaluations - state["priced"]]
        if not fresh:
            return np.zeros(0, np.int64), np.zeros(0)
        batch = batch.take(fresh)
        state["priced"] += len(fresh)
        energy, cycles = evaluate(problem, batch)
        value = objective_value(objective, energy, cycles)
        if shortlist is not None:
            shortlist.offer(value, batch.take, batch.T)
        i = int(np.argmin(value))
        if not best or value[i] < best[0]:
            best[:] = [float(value[i]), batch.take([i]), float(energy[i]), float(cycles[i])]
        return np.array(fresh, np.int64), value

    def out_of_time() -> bool:
        if clock() - start > seconds:
            state["truncated"] = True
        return bool(state["truncated"])

    def remember(A, O, keep, value) -> None:
        pool_A.append(A)
        pool_O.append(O)
        pool_keep.append(keep)
        pool_score.append(value)
        if len(pool_score) > 4:                          # keep the pool small: merge and trim to the best
            s = np.concatenate(pool_score)
            top = np.argsort(s, kind="stable")[:64]
            pool_A[:], pool_O[:], pool_keep[:] = ([np.concatenate(x)[top]] for x in (pool_A, pool_O, pool_keep))
            pool_score[:] = [s[top]]

    explore_budget = max(1, int(round(evaluations * explore)))
    batch_size = max(32, min(512, explore_budget // 4))
    A, O, keep = space.outermost()
    # samples grow from the outermost mapping and fit by construction when it does; under constraints it may not
    # (a capacity), and then every exploration batch is checked
    check = bool(space.fit_codes(A, keep)[0] != FITS)     # (not counted as a rejection)
    rounds = stale = 0
    while state["priced"] < explore_budget and stale < 3:
        if rounds:
            if out_of_time():
                break
            n = min(batch_size, 2 * (explore_budget - state["priced"]))
            n_fresh = max(1, n // 4) if pool_score else n
            parts = [space.sample(rng, n_fresh)]
            if pool_score and n - n_fresh:
                scores = np.concatenate(pool_score)
                elite = np.argsort(scores, kind="stable")[:16]
                pick = elite[rng.integers(0, len(elite), n - n_fresh)]
                cA, cO, ck = (np.concatenate(x)[pick] for x in (pool_A, pool_O, pool_keep))
                parts.append(space.kick(rng, cA, cO, ck, int(rng.integers(1, 4))))
            A = np.concatenate([p[0] for p in parts])
            O = np.concatenate([p[1] for p in parts])
            keep = np.concatenate([p[2] for p in parts])
        rounds += 1
        before = state["duplicates"]
        idx, value = price(A, O, keep, check)
        stale = stale + 1 if len(idx) < max(1, (len(idx) + state["duplicates"] - before) // 20) else 0
        if len(idx):
            remember(A[idx], O[idx], keep[idx], value)

    def descend(A1, O1, k1, current):
        """Steepest descent from (A1, O1, k1): to the best neighbour while it improves."""
        while state["priced"] < evaluations and not out_of_time():
            NA, NO, NK = space.neighbours(A1, O1, k1)
            fit = space.fits(NA, NK)
            NA, NO, NK = NA[fit], NO[fit], NK[fit]
            if not len(NA):
                break
            order = rng.permutation(len(NA))            # a budget that ends mid-step prices a random share
            NA, NO, NK = NA[order], NO[order], NK[order]
            idx, value = price(NA, NO, NK)
            if not len(idx):
                break
            i = int(np.argmin(value))
            if value[i] >= current:
                break
            A1, O1, k1, current = NA[idx[i]], NO[idx[i]], NK[idx[i]], value[i]
        return A1, O1, k1, current

    # descent from the best candidates found, best first; then iterated: kick the best local optimum (a few
    # random changes) and descend again, keeping the result when it is no worse
    scores = np.concatenate(pool_score) if pool_score else np.zeros(0)
    starts = np.argsort(scores, kind="stable")[:STARTS]
    cA_all, cO_all, ck_all = (np.concatenate(x) if x else None for x in (pool_A, pool_O, pool_keep))
    local = []
    for s_i in starts:
        if state["priced"] >= evaluations or out_of_time():
            break
        local.append(descend(cA_all[s_i], cO_all[s_i], ck_all[s_i], scores[s_i]))
    if local:
        x = min(local, key=lambda item: item[3])
        idle = 0
        while state["priced"] < evaluations and not out_of_time() and idle < IDLE_KICKS:
            kA, kO, kk = space.kick(rng, x[0][None], x[1][None], x[2][None], int(rng.integers(2, KICK + 1)))
            idx, value = price(kA, kO, kk)
            if not len(idx):
                idle += 1
                continue
            y = descend(kA[0], kO[0], kk[0], value[0])
            idle = 0
            if y[3] <= x[3]:
                x = y
    if not best:
        raise MappingError(f"no mapping of {problem.op.name} that satisfies the constraints was found within the "
                         f"budget ({state['priced']} priced; rejected: "
                         f"{', '.join(f'{k} {v}' for k, v in space.rejected.items() if v) or 'none'})")
    reasons = {k: v for k, v in space.rejected.items() if v}
    if state["duplicates"]:
        reasons["duplicate"] = state["duplicates"]
    priced = state["priced"]
    return Outcome(best[1], best[2], best[3], priced + sum(reasons.values()), priced, bool(state["truncated"]),
                   reasons)


def vault_split(operation: Operation, architecture: Architecture, cost_model: CostModel, budget: "Budget",
                seed: int, objective: str, option: str | dict[str, int], tag: str) -> tuple[tuple[str, int], ...]:
    """The split over the outermost level's instances (the vaults) for searchers that model one vault (external
    mappers): ``option`` as explicit factors, or (``"search"``) the split of the best mapping ntframe's own search
    finds with ``cost_model`` in a quarter of the budget (at least 200 evaluations)."""
    if isinstance(option, dict):
        return tuple(option.items())
    quarter = budget.model_copy(update={"evaluations": max(200, budget.evaluations // 4)})
    found = search_operation(operation, architecture, cost_model, quarter, seed, objective, Constraints(), tag)
    return found.mapping.levels[0].spatial


def search_operation(operation: Operation, architecture: Architecture, cost_model: CostModel, budget: "Budget",
                     seed: int, objective: str, constraints: Constraints, tag: str) -> SearchResult:
    """One operation searched under ``constraints`` and the architecture's mapping constraints, the best mapping
    priced again by ``cost_model``: what a mapping searcher returns. With a cost model that bounds whole
    structures (:meth:`~ntframe.components.CostModel.bounds`), the bounded search
    (:mod:`ntframe.mapping.bounded`), started from a short sampling search with seed 0 (``INCUMBENT``): the
    spec's seed changes nothing; otherwise :func:`search`.

    With a cost model that prices batches (:meth:`~ntframe.components.CostModel.evaluate_batch`, which may
    estimate what :meth:`~ntframe.components.CostModel.evaluate` counts exactly: the native model's DRAM lines),
    the search's best ``RERANK`` distinct mappings within ``RERANK_MARGIN`` of its best are priced again by
    :meth:`evaluate` and the best of them by that price is returned: the mapping is chosen by the figures the run
    reports."""
    problem = Problem(operation)
    c = for_operation(problem, architecture, constraints)
    evaluate = batch_evaluator(cost_model, architecture)
    batched = type(cost_model).evaluate_batch is not CostModel.evaluate_batch
    shortlist = Shortlist(RERANK) if batched else None
    bounder = cost_model.bounds(problem, architecture)
    if bounder is not None:
        start = clock()
        first = search(problem, architecture, evaluate, evaluations=max(1, int(budget.evaluations * INCUMBENT)),
                       seconds=budget.seconds, seed=0, objective=objective, constraints=c, tag="incumbent",
                       shortlist=shortlist)
        found = bounded_search(problem, architecture, bounder, evaluate,
                               evaluations=max(1, budget.evaluations - first.evaluated),
                               seconds=max(1e-3, budget.seconds - (clock() - start)), objective=objective,
                               constraints=c, incumbent=first.batch, shortlist=shortlist)
        reasons = dict(first.invalid_reasons)
        for reason, count in found.invalid_reasons.items():
            reasons[reason] = reasons.get(reason, 0) + count
        found = dataclasses.replace(found, evaluated=first.evaluated + found.evaluated, valid=first.valid + found.valid,
                                    invalid_reasons=reasons,
                                    truncated_by_time=first.truncated_by_time or found.truncated_by_time)
        extra = {"method": "bounded", "structures": found.structures, "structures_mapped": found.mapped,
                 "lower_bound": found.lower_bound}
    else:
        found = search(problem, architecture, evaluate, evaluations=budget.evaluations, seconds=budget.seconds,
                       seed=seed, objective=objective, constraints=c, tag=tag, shortlist=shortlist)
        extra = {"method": "sampling"}
    mapping = from_batch(problem, found.batch, architecture, 0)
    cost = cost_model.evaluate(operation, mapping, architecture)
    if shortlist is not None:
        mapping, cost, extra["reranked"], extra["rerank_gain"], extra["ties"] = _rerank(
            problem, architecture, cost_model, objective, c, found, mapping, cost, shortlist)
    return SearchResult(mapping, cost, found.evaluated, found.valid, found.invalid_reasons, found.truncated_by_time,
                        objective, **extra)


def _outer_steps(mapping) -> int:
    """Temporal iterations of the outermost level (each fetches a new box from it)."""
    return math.prod(f for _, f in mapping.levels[0].temporal)


RERANK = 6
"""Distinct mappings, the search's best first, priced again by the cost model's :meth:`evaluate`."""
RERANK_MARGIN = 0.15
"""Only those whose search value is within this share of the best's (the native model's estimate of a mapping's
DRAM lines is within 40 % of the count on VGG-16's operations, where the DRAM is under a third of the energy)."""


def _rerank(problem: Problem, arch: Architecture, cost_model: CostModel, objective: str, c: Constraints,
            found: Outcome, mapping, cost, shortlist: Shortlist):
    """The shortlist's mappings priced by :meth:`evaluate`, the best kept: (mapping, cost, mappings priced again,
    the reported objective's gain over the search's best, ties). Ties (the same figure to 1e-12) go to the mapping
    that fetches from the outermost level in fewer steps (fewer, larger boxes: longer streams and more DRAM row
    hits, which no cost model here prices), then to the search's order. The shortlist's tie of the fewest DRAM
    steps (:meth:`Shortlist.fewest_steps`) is priced too: the answer if better, else returned as a tie if the
    figures tie (the runner lets the memory backend decide: the steps are only a hint of the row hits)."""
    space = Space(problem, arch, c)
    first = objective_value(objective, cost.energy_pJ, cost.cycles)
    best, seen, repriced = first, {found.batch.canonical().keys()[0]}, 0
    limit = objective_value(objective, found.energy_pJ, found.cycles) * (1 + RERANK_MARGIN)

    def price(batch):
        A, _, keep = space.encode(batch)
        if batch.keys()[0] in seen or not space.fits(A[None], keep[None])[0]:
            return None
        seen.add(batch.keys()[0])
        candidate = from_batch(problem, batch, arch, 0)
        priced = cost_model.evaluate(problem.op, candidate, arch)
        return candidate, priced, objective_value(objective, priced.energy_pJ, priced.cycles)

    for value, batch in shortlist.best():
        if value > limit:
            break
        got = price(batch)
        if got is None:
            continue
        repriced += 1
        candidate, priced, reported = got
        if reported < best * (1 - 1e-12) or (reported <= best * (1 + 1e-12)
                                             and _outer_steps(candidate) < _outer_steps(mapping)):
            best, mapping, cost = min(best, reported), candidate, priced
    ties: tuple = ()
    fewest = shortlist.fewest_steps()
    got = price(fewest) if fewest is not None else None
    if got is not None:         # the estimate's tie of the fewest DRAM steps, wherever the search priced it
        repriced += 1
        candidate, priced, reported = got
        if reported < best * (1 - 1e-12):
            best, mapping, cost = reported, candidate, priced
        elif reported <= best * (1 + 1e-12):
            ties = (candidate,)
    return mapping, cost, repriced, (first / best - 1) if best > 0 else 0.0, ties
