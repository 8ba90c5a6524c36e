"""Mapping constraints in Timeloop's vocabulary, in the architecture file and in the spec: every kind honoured
by the native and neurotrainer-dataflow mappers, the exhaustive optimum under them, clear errors; zigzag-loma
honours the kinds ZigZag can express and names the others it refuses."""

from __future__ import annotations

import math

import pytest

import ntframe
from ntframe.components import Budget
from ntframe.errors import MappingError, SpecError
from ntframe.api import load_architecture
from ntframe.mapping.constraints import for_operation
from ntframe.mapping.exhaustive import optimum
from ntframe.mapping.mapspace import Problem
from ntframe.mapping.search import search
from ntframe.mapping.space import batch_evaluator
from ntframe_plugins.dataflow_mapper import DataflowMapper
from ntframe_plugins.native_cost import NativeCostModel
from ntframe_plugins.native_mapper import NativeMapper
from tests.conftest import ROOT
from tests.test_exhaustive import TINY, small_ops, tiny_optimum

NEUROTRAINER = ROOT / "arch_specs" / "neurotrainer" / "hmc2-32vault.yaml"


def constrained(tmp_path, buffer: str = "", pe: str = "", rf: str = ""):
    """The tiny architecture with constraints added to the buffer, the PE container and the register file."""
    text = TINY.read_text()
    source = '        constraints: "[A] test"\n'
    for node, rule, anchor in (("global_buffer", buffer, '        capacity_bytes: "[A] 2 KiB'),
                               ("rf", rf, '        capacity_bytes: "[A] 32 x')):
        if rule:
            head = f"      name: {node}\n      class: {'SRAM' if node == 'global_buffer' else 'regfile'}\n"
            text = text.replace(head, head + f"      constraints: {rule}\n").replace(anchor, source + anchor)
    if pe:
        mesh = "      spatial: {meshX: 8, meshY: 8}\n"
        text = text.replace(mesh + "      sources:\n", mesh + f"      constraints: {pe}\n      sources:\n" + source)
    path = tmp_path / "constrained.yaml"
    path.write_text(text)
    return load_architecture(path)


def mapped(arch, name="fc.forward", mapper=None, evaluations=600):
    op = small_ops(batch=2, features=32)[name]
    budget = Budget(evaluations=evaluations, seconds=600)
    res = (mapper or NativeMapper()).search(op, arch, NativeCostModel(), budget, 0)
    return op, res.mapping


def test_keep_and_bypass(tmp_path):
    arch = constrained(tmp_path, buffer="{keep: [output], bypass: [W]}", rf="{keep: [operands]}")
    for mapper in (NativeMapper(), DataflowMapper()):
        op, m = mapped(arch, mapper=mapper)
        assert "O" not in m.levels[1].bypass and "W" in m.levels[1].bypass
        assert "I" not in m.levels[2].bypass and "W" not in m.levels[2].bypass


def test_permutation_innermost_first(tmp_path):
    arch = constrained(tmp_path, buffer="{permutation: CM}")
    for mapper in (NativeMapper(), DataflowMapper()):
        _, m = mapped(arch, mapper=mapper)
        order = [d for d, _ in m.levels[1].temporal]            # outermost first
        listed = [d for d in order if d in "CM"]
        assert listed == [d for d in ("M", "C") if d in listed]   # C innermost, M just above it
        assert order[-len(listed):] == listed                     # the listed loops are the innermost ones


def test_factors_exact_and_bounded(tmp_path):
    arch = constrained(tmp_path, rf="{factors: {M: 2, C: '<=2'}}", pe="{factors: {M: 4}}")
    for mapper in (NativeMapper(), DataflowMapper()):
        op, m = mapped(arch, mapper=mapper)
        assert m.levels[2].temporal_factor("M") == 2
        assert m.levels[2].temporal_factor("C") <= 2
        assert m.levels[2].spatial_factor("M") == 4
    # the data-flow template keeps reduction loops off the engines: a spatial C factor conflicts with it
    arch = constrained(tmp_path, pe="{factors: {C: 4}}")
    assert mapped(arch)[1].levels[2].spatial_factor("C") == 4
    with pytest.raises(MappingError, match="factor of C .* cannot be placed"):
        mapped(arch, mapper=DataflowMapper())


def test_spatial_dims_and_no_spatial_reduction(tmp_path):
    only_m = constrained(tmp_path, pe="{dims: [M]}")
    _, m = mapped(only_m)
    assert all(d == "M" for d, _ in m.levels[2].spatial) and m.levels[2].spatial
    no_red = constrained(tmp_path, pe="{no_spatial_reduction: true}")
    for name in ("fc.forward", "conv.backward_weight"):
        op, m = mapped(no_red, name=name)
        written = {d for t in op.tensors if t.written for d in t.dims}
        assert {d for d, _ in m.levels[2].spatial} <= written
    # without the switch, the search splits a reduction dimension here: the constraint changes the answer
    free = load_architecture(TINY)
    op, m = mapped(free, name="fc.forward")
    written = {d for t in op.tensors if t.written for d in t.dims}
    assert {d for d, _ in m.levels[2].spatial} - written


def test_search_reaches_the_constrained_optimum(tmp_path):
    arch = constrained(tmp_path, buffer="{keep: [output]}", pe="{no_spatial_reduction: true}",
                       rf="{factors: {C: '<=4'}}")
    op = small_ops(batch=2, features=32)["fc.forward"]
    problem = Problem(op)
    evaluate = batch_evaluator(NativeCostModel(), arch)
    c = for_operation(problem, arch)
    best = optimum(problem, arch, evaluate, constraints=c)
    whole = tiny_optimum("fc.forward", 2, 32)      # the unconstrained design's (enumerated once per session)
    assert best.mappings < whole.mappings and best.value > whole.value
    for seed in range(5):
        found = search(problem, arch, evaluate, evaluations=2000, seconds=600, seed=seed, constraints=c)
        assert best.value * (1 - 1e-9) <= found.energy_pJ * found.cycles <= best.value * 1.01


def test_impossible_constraints_are_named(tmp_path):
    arch = constrained(tmp_path, rf="{factors: {M: 3}}")                  # 3 does not divide M = 32
    with pytest.raises(MappingError, match="factor 3 of M does not divide"):
        mapped(arch)
    with pytest.raises(Exception, match="cannot be both kept and bypassed"):
        constrained(tmp_path, buffer="{keep: [W], bypass: [W]}")


def test_identity_counts_constraints(tmp_path):
    free = load_architecture(NEUROTRAINER)
    tight = load_architecture(NEUROTRAINER, constraints={"vault_buffer": {"keep": ["output"]}})
    assert tight.content_sha256 != free.content_sha256
    assert load_architecture(NEUROTRAINER).content_sha256 == free.content_sha256


def test_spec_constraints_and_their_errors():
    spec = {"version": 1, "name": "c", "workload": {"frontend": "zoo", "network": "mlp", "batch": 2},
            "architecture": {"spec": "neurotrainer/hmc2-32vault"},
            "mapper": {"budget": {"evaluations": 60, "seconds": 600},
                       "constraints": {"vault": {"no_spatial_reduction": True}, "pe_rf": {"keep": ["output"]}}}}
    result = ntframe.run(spec)
    assert result.operations
    checked = 0
    for op in result.operations:
        if op["kind"] in ("matmul", "conv"):          # what they write: O, dI or dW, kept in the register files
            assert not [t for t in op["mapping"]["levels"][2]["bypass"] if t in ("O", "dI", "dW")]
            checked += 1
    assert checked >= 9
    bad = {**spec, "mapper": {**spec["mapper"], "constraints": {"nowhere": {"keep": ["O"]}}}}
    with pytest.raises(SpecError, match="mapper.constraints.*nowhere"):
        ntframe.validate(bad)
    bad = {**spec, "mapper": {**spec["mapper"], "constraints": {"vault": {"keep": ["O"]}}}}
    with pytest.raises(SpecError, match="constraints.vault.keep.*container"):
        ntframe.validate(bad)
    assert math.isfinite(result.totals["energy_pJ"])


# --- zigzag-loma: what ZigZag expresses is honoured, the rest refused by name ------------------------------------

def loma(arch, name="fc.forward", op=None, evaluations=50):
    """zigzag-loma on a small layer, kept fast (lpf_limit 4, one spatial mapping); the mapping and its violations."""
    from ntframe.mapping.constraints import violations
    from ntframe_plugins.zigzag_tools import ZigZagLoma, ZigZagLomaOptions
    op = op or small_ops(batch=2, features=32)[name]
    res = ZigZagLoma(ZigZagLomaOptions(lpf_limit=4, spatial_mappings=1)).search(
        op, arch, NativeCostModel(), Budget(evaluations=evaluations, seconds=60), 0)
    return res.mapping, violations(Problem(op), res.mapping, arch, for_operation(Problem(op), arch))


def test_zigzag_loma_keep_and_bypass(tmp_path):
    """A bypass is the ZigZag memory's operand list; a kept tensor is listed (ZigZag keeps what it is given)."""
    pytest.importorskip("zigzag")
    m, broken = loma(constrained(tmp_path, buffer="{keep: [output], bypass: [W]}", rf="{keep: [operands]}"))
    assert broken == []
    assert m.levels[1].bypass == ("W",) and m.levels[2].bypass == ()
    m, broken = loma(constrained(tmp_path, rf="{bypass: [I]}"))
    assert broken == [] and m.levels[2].bypass == ("I",) and m.levels[1].bypass == ()


def test_zigzag_loma_spatial_dims_and_no_spatial_reduction(tmp_path):
    """Allowed dimensions are the spatial-mapping hint of the array dimension: the constraint changes the answer."""
    pytest.importorskip("zigzag")
    from ntframe.api import load_architecture as load
    free, _ = loma(load(TINY))
    assert [d for d, _ in free.levels[2].spatial] == ["M"]
    m, broken = loma(constrained(tmp_path, pe="{dims: [C]}"))
    assert broken == [] and m.levels[2].spatial and all(d == "C" for d, _ in m.levels[2].spatial)
    free, _ = loma(load(TINY), "fc.backward_data")                  # splits M, which dI (N, C) does not index
    assert {d for d, _ in free.levels[2].spatial} == {"M"}
    m, broken = loma(constrained(tmp_path, pe="{no_spatial_reduction: true}"), "fc.backward_data")
    assert broken == [] and m.levels[2].spatial and {d for d, _ in m.levels[2].spatial} <= {"N", "C"}
    # the spec's mapper.constraints arrive merged into the architecture's, by node name
    m, broken = loma(load(TINY, constraints={"PE": {"dims": ["N"]}, "global_buffer": {"bypass": ["I"]}}))
    assert broken == [] and m.levels[2].spatial == (("N", 2),) and m.levels[1].bypass == ("I",)


def test_zigzag_loma_exact_spatial_factors(tmp_path):
    """Exact spatial factors fix the array dimension's user spatial mapping; a factor of 1 keeps a dimension off."""
    pytest.importorskip("zigzag")
    m, broken = loma(constrained(tmp_path, pe="{factors: {M: 4}}"))
    assert broken == [] and m.levels[2].spatial == (("M", 4),)
    m, broken = loma(constrained(tmp_path, pe="{factors: {M: 32, C: 2}}"))
    assert broken == [] and dict(m.levels[2].spatial) == {"M": 32, "C": 2}
    m, broken = loma(constrained(tmp_path, pe="{factors: {M: 1}}"))
    assert broken == [] and m.levels[2].spatial and m.levels[2].spatial_factor("M") == 1


def test_zigzag_loma_innermost_permutation(tmp_path):
    """The innermost level's permutation is a loop-order constraint on LOMA's orderings (the listed loops open the
    nest, in that order)."""
    pytest.importorskip("zigzag")
    for perm, want in (("NC", ["C", "N"]), ("CN", ["N", "C"])):
        m, broken = loma(constrained(tmp_path, rf=f"{{permutation: {perm}}}"))
        assert broken == []
        order = [d for d, _ in m.levels[2].temporal]                 # outermost first
        listed = [d for d in want if d in order]
        assert listed and order[-len(listed):] == listed


def test_zigzag_loma_keeps_time_steps_outermost():
    """Time-step loops are never unrolled and close every LOMA ordering, so they land outermost at the DRAM (or
    move there when nothing sits above them)."""
    pytest.importorskip("zigzag")
    from ntframe.api import load_architecture as load
    from ntframe.mapping import structural_problems
    from tests.test_zoo import BITS, PHASES, expand, zoo_network
    for hidden in (8, 32):              # 8: the whole operation fits in the buffer; 32: it does not
        ops = {o.name: o for o in expand(zoo_network("lstm_lm", 2, {"vocab": 50, "hidden": hidden, "layers": 1,
                                                                     "seq": 5}), PHASES, BITS)}
        for name in ("lstm1.forward.recurrent", "lstm1.backward_data.recurrent"):
            op = ops[name]
            m, broken = loma(load(TINY), op=op)
            assert op.sequential == ("T",) and broken == [] and structural_problems(op, m, load(TINY)) == []
            assert m.levels[0].temporal[0] == ("T", 4)


@pytest.mark.parametrize("where, rule, named", [
    pytest.param("rf", "{factors: {C: '<=2'}}", "factors: {C: '<=2'} on rf (LOMA takes no loop factor per memory "
                 "level", id="temporal-bound"),
    pytest.param("rf", "{factors: {M: 2}}", "factors: {M: 2} on rf (LOMA takes no loop factor per memory level",
                 id="temporal-exact"),
    pytest.param("buffer", "{permutation: CM}", "permutation: CM on global_buffer (ZigZag's loop-order constraints",
                 id="permutation-not-innermost"),
    pytest.param("pe", "{factors: {M: '<=4'}}", "factors: {M: '<=4'} on the fan-out into rf (ZigZag's "
                 "spatial-mapping generator takes fixed unrollings", id="spatial-bound"),
])
def test_zigzag_loma_names_what_it_cannot_express(tmp_path, where, rule, named):
    pytest.importorskip("zigzag")
    import time
    from ntframe_plugins.zigzag_tools import ZigZagLoma
    arch = constrained(tmp_path, **{where: rule})
    started = time.perf_counter()
    with pytest.raises(MappingError) as err:
        ZigZagLoma().search(small_ops(batch=2, features=32)["fc.forward"], arch, NativeCostModel(),
                            Budget(evaluations=50, seconds=60), 0)
    message = str(err.value)
    assert named in message and "this mapping constraint for fc.forward: " in message and "\n" not in message
    assert message.endswith("use the native or neurotrainer-dataflow mapper, which honour every kind")
    assert time.perf_counter() - started < 2                        # refused before any search


def test_zigzag_loma_names_every_refused_constraint_and_ignores_what_does_not_apply(tmp_path):
    pytest.importorskip("zigzag")
    from ntframe_plugins.zigzag_tools import loma_plan
    op = small_ops(batch=2, features=32)["fc.forward"]
    arch = constrained(tmp_path, buffer="{permutation: CM, bypass: [W]}", rf="{factors: {C: 4, R: 3}}")
    with pytest.raises(MappingError, match=r"permutation: CM on global_buffer .*; factors: \{C: 4\} on rf"):
        loma_plan(op, arch)
    # a bound the loop cannot exceed anyway is no constraint; R is not a dimension of a matrix product
    plan = loma_plan(op, constrained(tmp_path, rf="{factors: {C: '<=16', R: 3}}", pe="{factors: {M: '<=64'}}"))
    assert plan.spatial == {} and plan.hints == {} and plan.innermost == ()


def test_zigzag_loma_checks_an_explicit_vault_split_and_its_result(tmp_path, monkeypatch):
    """An explicit vault split must honour the vault fan-out's constraints (checked before LOMA runs); a mapping
    that breaks a constraint is never returned."""
    pytest.importorskip("zigzag")
    from ntframe.errors import PluginError
    from ntframe_plugins import zigzag_tools
    from ntframe_plugins.zigzag_tools import Tally, ZigZagLoma, ZigZagLomaOptions
    op = small_ops(batch=2, features=32)["fc.forward"]
    tight = load_architecture(NEUROTRAINER, constraints={"vault": {"dims": ["M"]}})
    with pytest.raises(MappingError, match=r"vault_split \{'N': 2\} .*spatial into vault_dram: N may not be split"):
        ZigZagLoma(ZigZagLomaOptions(vault_split={"N": 2})).search(op, tight, NativeCostModel(),
                                                                   Budget(evaluations=50, seconds=60), 0)
    arch = constrained(tmp_path, pe="{dims: [C]}")
    _, free = mapped(load_architecture(TINY))                     # splits N across the engines
    monkeypatch.setattr(zigzag_tools, "_loma", lambda *args: (free, Tally(evaluated=1, priced=1)))
    with pytest.raises(PluginError, match=r"breaks the mapping constraints: spatial into rf: N may not be split"):
        ZigZagLoma().search(op, arch, NativeCostModel(), Budget(evaluations=50, seconds=60), 0)


def test_violations_name_what_a_mapping_breaks(tmp_path):
    """The check external mappers' results go through: a mapping found without the constraints breaks them,
    the one found with them does not."""
    from ntframe.mapping.constraints import violations
    arch = constrained(tmp_path, buffer="{keep: [output], permutation: C}", pe="{dims: [M]}",
                       rf="{factors: {C: '<=2'}}")
    op = small_ops(batch=2, features=32)["fc.forward"]
    problem = Problem(op)
    c = for_operation(problem, arch)
    _, honouring = mapped(arch)
    assert violations(problem, honouring, arch, c) == []
    _, free = mapped(load_architecture(TINY))
    found = violations(problem, free, arch, c)
    assert found and all(isinstance(line, str) for line in found)


def test_timeloop_constraints_file(tmp_path):
    """Timeloop's vocabulary, written for timeloop-mapper: bypass, temporal factors and partial permutation
    (innermost first), and at the parent of a fan-out the spatial factors (disallowed dimensions at 1)."""
    from ntframe.interop.timeloop import constraints_yaml
    arch = constrained(tmp_path, buffer="{keep: [output], bypass: [W], permutation: CM}",
                       pe="{no_spatial_reduction: true, factors: {M: 4}}", rf="{factors: {C: '<=2', N: 2}}")
    op = small_ops(batch=2, features=32)["fc.forward"]
    doc = constraints_yaml(op, arch, for_operation(Problem(op), arch))["mapspace_constraints"]
    assert {"target": "global_buffer", "type": "bypass", "keep": ["O"], "bypass": ["W"]} in doc
    assert {"target": "global_buffer", "type": "temporal", "permutation": "CM"} in doc
    assert {"target": "rf", "type": "temporal", "factors": "N=2 C<=2"} in doc
    spatial = [e for e in doc if e["type"] == "spatial"]
    assert spatial == [{"target": "global_buffer", "type": "spatial", "factors": "M=4 C=1"}]


def _timeloop_mapper() -> bool:
    import os
    import shutil
    folder = os.environ.get("NTFRAME_TIMELOOP_BIN")
    return bool(folder and os.path.exists(os.path.join(folder, "timeloop-mapper"))) or bool(
        shutil.which("timeloop-mapper"))


@pytest.mark.skipif(not _timeloop_mapper(), reason="timeloop-mapper not found (set NTFRAME_TIMELOOP_BIN to the "
                                                   "folder holding it to run this live check)")
def test_timeloop_mapper_live_honours_the_constraints(tmp_path):
    """The live program, given the constraints file: its mapping keeps the output in the buffer, bypasses W
    there, splits only M across the engines, and keeps the register file's C factor within 2 (the searcher
    refuses a mapping that breaks them, so a result is the proof)."""
    from ntframe.mapping.constraints import violations
    from ntframe_plugins.timeloop_tools import TimeloopMapper
    arch = constrained(tmp_path, buffer="{keep: [output], bypass: [W]}", pe="{dims: [M]}",
                       rf="{factors: {C: '<=2'}}")
    op = small_ops(batch=2, features=32)["fc.forward"]
    res = TimeloopMapper().search(op, arch, NativeCostModel(), Budget(evaluations=300, seconds=120), 0)
    assert violations(Problem(op), res.mapping, arch, for_operation(Problem(op), arch)) == []
    assert "W" in res.mapping.levels[1].bypass and all(d == "M" for d, _ in res.mapping.levels[2].spatial)


def test_sampling_search_fits_under_forced_keeps():
    """Forced keeps apply before the fit check: every mapping the sampling search returns with the register file
    and the buffer forced to keep every tensor fits them (the check once read the sampled keep bits, and a tensor
    it took for bypassed was kept after all)."""
    from ntframe.mapping.mapspace import from_batch
    from ntframe.mapping.nest import capacity_problems
    from ntframe.mapping.search import Constraints
    from tests.test_bounded import big_ops
    arch = load_architecture(NEUROTRAINER)
    op = big_ops()["c.forward"]
    problem = Problem(op)
    c = for_operation(problem, arch, Constraints(keep={(lvl, t): True for lvl in (1, 2)
                                                       for t in range(len(problem.tensors))}))
    evaluate = batch_evaluator(NativeCostModel(), arch)
    for seed in range(4):
        found = search(problem, arch, evaluate, evaluations=400, seconds=600, seed=seed, constraints=c)
        assert capacity_problems(op, from_batch(problem, found.batch, arch, 0), arch) == []
