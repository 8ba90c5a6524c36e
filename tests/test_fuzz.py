"""Issue 14: seeded mutations of every input file kind ntframe reads: no traceback, no hang, the documented exit
codes, and no NaN or Infinity in anything written.

Each case mutates a shipped file (the example spec, the NeuroTrainer architecture, the small-CNN workload) a few
times over — lines deleted, duplicated, swapped, re-indented or cut short, numbers replaced by extremes (negative,
zero, huge, NaN, infinities, strings, lists), bytes of garbage inserted — and runs the command a user would on
it, in this process (an exception escaping ``ntframe.cli.main`` is a traceback). Specs that still validate are
run (a small search budget, a deadline), and what they write is read back as strict JSON. The mutations are
seeded: a failure names its seed and the mutated text is in the test's folder.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest

from ntframe.cli import main
from tests.conftest import EXAMPLE, ROOT

ARCH = ROOT / "arch_specs" / "neurotrainer" / "hmc2-32vault.yaml"
WORKLOAD = ROOT / "workloads" / "small-cnn.yaml"
EXTREMES = ["-1", "0", "1e300", "-1e300", ".nan", ".inf", "-.inf", "99999999999999999999999", "1e-300", "true",
            "[]", "{}", "'x'", "null", "2.5", "&a 1", "*a"]


def mutate(text: str, rng: random.Random) -> str:
    """One to three random edits of ``text``."""
    for _ in range(rng.randint(1, 3)):
        lines = text.splitlines()
        if not lines:
            return text
        i = rng.randrange(len(lines))
        kind = rng.randrange(8)
        if kind == 0:
            del lines[i]
        elif kind == 1:
            lines.insert(i, lines[i])
        elif kind == 2:
            j = rng.randrange(len(lines))
            lines[i], lines[j] = lines[j], lines[i]
        elif kind == 3:
            lines[i] = " " * rng.randint(0, 6) + lines[i].lstrip()
        elif kind == 4:
            numbers = list(re.finditer(r"(?<![\w.])-?\d+(\.\d+)?(e-?\d+)?(?![\w.])", text))
            if numbers:
                m = rng.choice(numbers)
                text = text[:m.start()] + rng.choice(EXTREMES) + text[m.end():]
                continue
        elif kind == 5:
            at = rng.randrange(len(text) + 1)
            garbage = "".join(chr(rng.choice([0x7b, 0x5b, 0x3a, 0x2c, 0x22, 0x27, 0x26, 0x2a, 0x21, 0x7c, 0xe9,
                                               0x1f600, 0x0]))
                              for _ in range(rng.randint(1, 4)))
            text = text[:at] + garbage + text[at:]
            continue
        elif kind == 6:
            text = text[:rng.randrange(len(text) + 1)]
            continue
        else:
            keys = re.findall(r"(\w+):", text)
            if keys:
                lines[i] = re.sub(r"\w+:", rng.choice(keys) + ":", lines[i], count=1)
        text = "\n".join(lines) + "\n"
    return text


def example_spec(folder: Path, arch: Path = ARCH, workload: Path = WORKLOAD) -> str:
    return (EXAMPLE.read_text().replace("file: small-cnn", f"file: {workload}")
            .replace("spec: neurotrainer/hmc2-32vault", f"spec: {arch}"))


def _call(argv: list[str], capsys) -> tuple[int, str]:
    code = main(argv)                 # an exception escaping here is a traceback for a user
    err = capsys.readouterr().err
    assert isinstance(code, int) and "Traceback" not in err
    return code, err


def _strict(path: Path) -> None:
    def refuse(name):
        raise AssertionError(f"{path} holds {name}")
    json.loads(path.read_text(), parse_constant=refuse)
    for other in path.parent.glob("*.csv"):
        assert not re.search(r"(?i)\b(nan|inf|infinity)\b", other.read_text()), other


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["spec", "architecture", "workload"])
def test_mutated_inputs_give_one_clear_error_or_a_clean_run(kind, tmp_path, capsys):
    rng = random.Random(f"ntframe-fuzz-{kind}")
    source = {"spec": None, "architecture": ARCH, "workload": WORKLOAD}[kind]
    runs = 0
    codes: dict[int, int] = {}
    for case in range(40):
        folder = tmp_path / f"case{case}"
        folder.mkdir()
        arch, workload = ARCH, WORKLOAD
        if kind == "spec":
            text = mutate(example_spec(folder), rng)
        else:
            mutated = folder / source.name
            mutated.write_text(mutate(source.read_text(), rng), encoding="utf-8", errors="surrogatepass")
            arch, workload = (mutated, WORKLOAD) if kind == "architecture" else (ARCH, mutated)
            text = example_spec(folder, arch, workload)
        spec = folder / "spec.yaml"
        spec.write_text(text, encoding="utf-8", errors="surrogatepass")
        code, err = _call(["validate", str(spec)], capsys)
        codes[code] = codes.get(code, 0) + 1
        assert code in (0, 2), f"case {case}: exit {code}: {err}"
        if code == 2:
            assert err.startswith("error: ") and len(err.strip().splitlines()) <= 5, f"case {case}: {err}"
        elif runs < 3:                 # a few of the mutants that still validate are run, bounded
            runs += 1
            code, err = _call(["run", str(spec), "-q", "-o", str(folder / "out"), "-j", "1", "--deadline", "30",
                               "--set", "mapper.budget.evaluations=40", "--set", "mapper.budget.seconds=5"], capsys)
            assert code in (0, 1, 2), f"case {case}: exit {code}: {err}"
            if (folder / "out" / "results.json").exists():
                _strict(folder / "out" / "results.json")
    assert codes.get(2, 0) >= 5, codes        # the mutations do reach the checks


def mutate_bytes(data: bytes, rng: random.Random) -> bytes:
    """Byte-level damage: flips, cuts, duplicated or inserted stretches."""
    data = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        if not data:
            break
        kind = rng.randrange(4)
        i = rng.randrange(len(data))
        if kind == 0:
            data[i] = rng.randrange(256)
        elif kind == 1:
            del data[i:]
        elif kind == 2:
            j = min(len(data), i + rng.randint(1, 64))
            data[i:i] = data[i:j]
        else:
            data[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
    return bytes(data)


@pytest.mark.slow
def test_mutated_traces_are_read_or_refused_in_one_line(tmp_path, capsys):
    spec = tmp_path / "spec.yaml"
    spec.write_text(example_spec(tmp_path).replace("evaluations: 20000", "evaluations: 40"))
    rng = random.Random("ntframe-fuzz-traces")
    refused = 0
    for fmt in ("nttrace", "csv", "ramulator", "dramsim3"):
        good = tmp_path / f"conv1.{fmt}"
        code, err = _call(["trace", str(spec), "--layer", "conv1", "--phase", "forward", "--format", fmt,
                           "--max-requests", "300", "-o", str(good)], capsys)
        assert code == 0, err
        for case in range(25):
            bad = tmp_path / f"case{case}.{fmt}"
            bad.write_bytes(mutate_bytes(good.read_bytes(), rng))
            code, err = _call(["trace", "inspect", str(bad)], capsys)
            assert code in (0, 2), f"{fmt} case {case}: exit {code}: {err}"
            if code == 2:
                refused += 1
                assert err.startswith("error: ") and str(bad) in err and len(err.strip().splitlines()) == 1, err
    assert refused >= 20


@pytest.mark.slow
def test_damaged_cache_entries_are_recomputed_to_the_same_figures(tmp_path, monkeypatch, capsys):
    """Every cache entry of a run damaged at random (bytes flipped, cut, padded): the next run recomputes what it
    must and gives the same document."""
    monkeypatch.setenv("NTFRAME_CACHE_DIR", str(tmp_path / "cache"))
    spec = tmp_path / "spec.yaml"
    spec.write_text(example_spec(tmp_path).replace("evaluations: 20000", "evaluations: 60"))
    code, err = _call(["run", str(spec), "-q", "-o", str(tmp_path / "first")], capsys)
    assert code == 0, err
    rng = random.Random("ntframe-fuzz-cache")
    entries = sorted((tmp_path / "cache").rglob("*.json"))
    assert len(entries) > 20
    for entry in entries:
        if rng.random() < 0.7:
            entry.write_bytes(mutate_bytes(entry.read_bytes(), rng))
    code, err = _call(["run", str(spec), "-q", "-o", str(tmp_path / "second")], capsys)
    assert code == 0, err
    first, second = (json.loads((tmp_path / f / "results.json").read_text()) for f in ("first", "second"))
    assert first["operations"] == second["operations"] and first["totals"] == second["totals"]
