"""Hostile and damaged inputs: YAML alias bombs, deep nesting and huge files; malformed trace files; a closed
stdout; damaged mapping-cache entries; the permissions of cache files. Each gets one clear line (exit 2) or is
handled quietly, never a traceback, a hang or a wrong figure."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from ntframe import cache as cache_module
from ntframe.cache import MappingCache, from_json
from ntframe.errors import SpecError
from ntframe.mapping.mapping import LevelMapping, Mapping
from ntframe.memory.trace import ADDRESS_MAPPINGS, TraceWriter, inspect, records
from ntframe.results import ComputeCost, LevelCost, MemoryCost, to_jsonable
from ntframe.spec import load_spec
from ntframe.yamlio import MAX_ALIAS_NODES, MAX_DEPTH, MAX_FILE_BYTES, load_yaml, parse_yaml
from tests.conftest import EXAMPLE, ntframe_cmd


def one_error_line(result: subprocess.CompletedProcess, *words: str) -> str:
    """The single line a failing command printed, after checking exit code 2, no traceback, and ``words``."""
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    for w in words:
        assert w in lines[0], lines[0]
    return lines[0]


# --- YAML: alias bombs ------------------------------------------------------------------------------------

def bomb(levels: int = 9, fan: int = 9) -> str:
    """``levels`` lists of ``fan`` aliases of the list before: fan ** (levels + 1) leaves in about 1 KB."""
    lines = ["bomb0: &a0 [" + ", ".join(["x"] * fan) + "]"]
    lines += [f"bomb{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * fan) + "]" for i in range(1, levels + 1)]
    return "\n".join(lines) + "\n"


def test_alias_bomb_in_a_spec_fails_fast_from_the_cli(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text(EXAMPLE.read_text() + bomb())
    first_bomb_line = EXAMPLE.read_text().count("\n") + 1
    started = time.perf_counter()
    result = ntframe_cmd("validate", str(path), timeout=10)
    assert time.perf_counter() - started < 5          # before: > 5 GB and still growing after 42 s (in-process
                                                      # < 2 s below; here the command's start-up counts too)
    # the aliases of bomb6 (9 ** 7 nodes) are the first to pass the limit
    one_error_line(result, f"{path}:{first_bomb_line + 6}:", f"more than {MAX_ALIAS_NODES:,} nodes",
                   "YAML aliases (anchors & and *)")


def test_alias_bombs_fail_fast_when_loading(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text(EXAMPLE.read_text() + bomb())
    started = time.perf_counter()
    with pytest.raises(SpecError, match="expands to more than"):
        load_spec(path)
    # the same through merge keys, which PyYAML copies into every mapping that merges them
    merges = ["m0: &m0 {" + ", ".join(f"k{j}: {j}" for j in range(9)) + "}"]
    merges += [f"m{i}: &m{i} {{<<: [" + ", ".join([f"*m{i - 1}"] * 9) + "]}" for i in range(1, 10)]
    with pytest.raises(SpecError, match="expands to more than") as info:
        parse_yaml("\n".join(merges), "merges.yaml")
    assert info.value.line is not None
    assert time.perf_counter() - started < 2


def test_an_alias_inside_its_own_anchor_is_refused():
    for text, line, path in [("a: 1\nr: &r [*r]\n", 2, "r.0"), ("a: &a\n  b: 1\n  c: *a\n", 3, "a.c")]:
        with pytest.raises(SpecError, match="inside its own anchor") as info:
            parse_yaml(text, "self.yaml")
        assert (info.value.line, info.value.path) == (line, path)


def test_modest_aliases_load_and_paths_inside_them_point_at_the_alias():
    text = "a: &a [1, 2]\nb:\n  - 0\n  - *a\nc: *a\n"
    data, positions = parse_yaml(text, "ok.yaml")
    assert data == {"a": [1, 2], "b": [0, [1, 2]], "c": [1, 2]}
    assert positions.line(("b", 1, 0)) == 4 and positions.line(("c", 1)) == 5 and positions.line(("a", 1)) == 1
    # just under the limit is fine: 1,000 aliases of a 999-node list add 999,000 nodes
    text = "a: &a [" + ", ".join(["0"] * 998) + "]\nb: [" + ", ".join(["*a"] * 1000) + "]\n"
    assert len(parse_yaml(text, "many.yaml")[0]["b"]) == 1000


# --- YAML: nesting, keys, size ----------------------------------------------------------------------------

@pytest.mark.parametrize("text", ["x: " + "[" * 100_000, "{a: " * 20_000,
                                  "".join("  " * i + "a:\n" for i in range(2 * MAX_DEPTH)) + "  b: 1\n"],
                         ids=["lists", "flow-mappings", "block-mappings"])
def test_deep_nesting_is_refused_with_its_line(text):
    started = time.perf_counter()
    with pytest.raises(SpecError, match=f"nested more than {MAX_DEPTH} levels deep") as info:
        parse_yaml(text, "deep.yaml")
    assert info.value.line == (1 if "\n" not in text.strip() else MAX_DEPTH + 1)
    assert time.perf_counter() - started < 2


def test_deep_nesting_from_the_cli_gives_one_line(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text("x: " + "[" * 100_000 + "\n")
    one_error_line(ntframe_cmd("validate", str(path)), f"{path}:1:", "nested more than")


def test_nesting_up_to_the_limit_is_accepted():
    data, _ = parse_yaml("x: " + "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1), "deep.yaml")
    depth, node = 0, data["x"]
    while node:
        depth, node = depth + 1, node[0]
    assert depth == MAX_DEPTH - 2                        # the innermost list is empty


def test_a_list_or_mapping_as_a_key_is_refused_with_its_line():
    with pytest.raises(SpecError, match="mapping key must be a plain value") as info:
        parse_yaml("a: 1\n? [x, y]\n: 2\n", "key.yaml")
    assert info.value.line == 2


def test_files_over_the_size_limit_are_refused_before_parsing(tmp_path):
    path = tmp_path / "big.yaml"
    path.write_bytes(b"#" * (MAX_FILE_BYTES + 1))
    started = time.perf_counter()
    with pytest.raises(SpecError, match=re.escape(f"{path}: file larger than 16 MiB")):
        load_yaml(path)
    if Path("/dev/zero").exists():                        # no size to look at: read at most the limit
        with pytest.raises(SpecError, match="file larger than"):
            load_yaml("/dev/zero")
    assert time.perf_counter() - started < 2
    with pytest.raises(SpecError, match="is a directory"):
        load_yaml(tmp_path)


# --- trace files ------------------------------------------------------------------------------------------

def good_nttrace() -> bytes:
    recs = records(np.arange(10, dtype=np.uint64), np.arange(10, dtype=np.uint64) * 64, np.arange(10) % 2,
                   ADDRESS_MAPPINGS["RoCoBaVa"])
    path = Path(os.environ["NTFRAME_CACHE_DIR"]) / "good.nttrace"
    with TraceWriter(path, "nttrace", {"tensors": ["A"]}) as w:
        w.write(recs)
    return path.read_bytes()


CSV_HEAD = "time,address,vault,bank,row,column,write,bytes,tensor\n"
BAD_TRACES = {   # name: (file name, content or a function of the good nttrace bytes, words, line)
    "missing": ("gone.nttrace", None, ["file not found"], None),
    "directory": ("folder.nttrace", "<dir>", ["is a directory"], None),
    "empty": ("empty.nttrace", b"", ["empty file"], None),
    "magic-only": ("m.nttrace", b"NTTRACE 1\n", ["truncated", "header"], 2),
    "truncated-header": ("h.nttrace", lambda g: g[:15], ["truncated", "header"], 2),
    "header-not-json": ("j.nttrace", b"NTTRACE 1\n{tensors: [A]}\n", ["header is not valid JSON"], 2),
    "header-not-object": ("o.nttrace", b"NTTRACE 1\n[1, 2]\n", ["header must be a JSON object"], 2),
    "header-bad-tensors": ("t.nttrace", b'NTTRACE 1\n{"tensors": "AB"}\n', ["'tensors' must be a list"], 2),
    "wrong-version": ("v.nttrace", lambda g: b"NTTRACE 9" + g[9:], ["unsupported nttrace version"], None),
    "truncated-records": ("r.nttrace", lambda g: g[:-5], ["truncated", "partial record"], None),
    "junk-records": ("k.nttrace", lambda g: g[: g.index(b"}\n") + 2] + bytes(range(7, 39)) * 4,
                     ["record 0", "write flag"], None),
    "binary-junk": ("junk.bin", bytes(range(256)) * 16, ["not a trace file ntframe knows"], None),
    "csv-named-nttrace": ("c.nttrace", "time,address\n1,2\n", ["CSV header"], 1),
    "csv-too-few-columns": ("few.csv", CSV_HEAD + "1,2,3\n", ["3 values; a row has 9"], 2),
    "csv-not-a-number": ("nan.csv", CSV_HEAD + "0,64,0,0,0,0,0,64,0\n\nfive,64,0,0,0,0,0,64,0\n",
                         ["time 'five' is not a whole number"], 4),
    "csv-negative": ("neg.csv", CSV_HEAD + "-1,64,0,0,0,0,0,64,0\n", ["time -1 is out of range"], 2),
    "csv-vault-too-big": ("big.csv", CSV_HEAD + "0,64,70000,0,0,0,0,64,0\n", ["vault 70000 is out of range"], 2),
    "csv-write-flag": ("w.csv", CSV_HEAD + "0,64,0,0,0,0,2,64,0\n", ["write 2 is out of range (0 to 1)"], 2),
    "ramulator-bad-address": ("a.trace", "0x40 R\n0xzz W\n", ["address '0xzz' is not a hexadecimal"], 2),
    "ramulator-short-line": ("s.trace", "0x40 R\n0x80\n", ["is not ADDRESS R|W"], 2),
    "ramulator-unknown-op": ("u.trace", "0x40 R\n0x80 X\n", ["operation 'X' is neither a read"], 2),
    "dramsim3-no-cycle": ("d.txt", "0x40 READ 1\n0x80 WRITE\n", ["is not ADDRESS READ|WRITE CYCLE"], 2),
    "not-utf8": ("b.trace", b"0x40 R\n\xff\xfe\n", ["'??' is not ADDRESS R|W"], 2),
    "long-line": ("l.trace", "0x40 R\n0x" + "0" * 5000 + " R\n", ["line longer than 1024 bytes"], 2),
}


def bad_trace(tmp_path: Path, kind: str) -> tuple[Path, list[str], int | None]:
    name, content, words, line = BAD_TRACES[kind]
    path = tmp_path / name
    if content == "<dir>":
        path.mkdir()
    elif callable(content):
        path.write_bytes(content(good_nttrace()))
    elif content is not None:
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path, words, line


@pytest.mark.parametrize("kind", list(BAD_TRACES))
def test_bad_trace_files_are_one_spec_error(tmp_path, kind):
    path, words, line = bad_trace(tmp_path, kind)
    with pytest.raises(SpecError) as info:
        inspect(path)
    assert (info.value.file, info.value.line) == (str(path), line), str(info.value)
    for w in words:
        assert w in str(info.value)


@pytest.mark.parametrize("kind", ["missing", "directory", "truncated-header", "truncated-records", "binary-junk",
                                  "csv-not-a-number", "ramulator-bad-address"])
def test_trace_inspect_cli_gives_one_line(tmp_path, kind):
    path, words, line = bad_trace(tmp_path, kind)
    where = f"{path}:{line}: " if line else f"{path}: "
    one_error_line(ntframe_cmd("trace", "inspect", str(path)), "error: " + where, *words)


def test_good_text_traces_with_blank_lines_still_read(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text(CSV_HEAD + "0,64,1,2,3,4,1,64,0\n\n5,128,1,2,3,4,0,64,0\n")
    info = inspect(path)
    assert (info["requests"], info["reads"], info["writes"], info["time_span_cycles"]) == (2, 1, 1, 5)


def test_trace_inspect_into_a_closed_pipe_ends_quietly(tmp_path):
    # a record in vault 65535 makes --json print 65,536 per-vault figures: more than a pipe holds
    recs = records(np.arange(2, dtype=np.uint64), np.zeros(2, np.uint64), [0, 1], ADDRESS_MAPPINGS["RoCoBaVa"])
    recs["vault"][1] = 65535
    with TraceWriter(tmp_path / "wide.nttrace", "nttrace", {}) as w:
        w.write(recs)
    exe = shutil.which("ntframe", path=str(Path(sys.executable).parent)) or shutil.which("ntframe")
    proc = subprocess.Popen([exe, "trace", "inspect", str(tmp_path / "wide.nttrace"), "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout.read(40).startswith(b"{")
    proc.stdout.close()
    assert proc.wait(timeout=30) == 141
    assert proc.stderr.read() == b""
    proc.stderr.close()


# --- the mapping cache ------------------------------------------------------------------------------------

COST = ComputeCost(10.0, 8, 6.0, 5.0, 1.0, 0.5, (LevelCost("dram", 32, 1, 2, 3, 4, 5, 6.0, 7.0, True,
                                                          {"A": {"reads": 1.0}}),), {"A": 64}, {}, 32, ("n",))
MAPPING = Mapping((LevelMapping("dram", (("K", 2),), (("C", 4),), ("W",)),), (("K", 3),))
MEMORY = MemoryCost(1.0, 2.0, 64, 0, 5.0, 6.0, {"row_hit_rate": 0.5})


def entry_from(cached: dict) -> tuple[Mapping, ComputeCost]:
    return from_json(Mapping, cached["mapping"]), from_json(ComputeCost, cached["cost"])


GARBAGE = {"list": b"[1, 2]", "string": b'"mapping"', "number": b"7", "null": b"null", "empty": b"",
           "truncated": b'{"mapping": {"levels": [', "binary": bytes(range(256)), "deep": b"[" * 100_000,
           "wrong-keys": b'{"mapping": {"levls": []}, "cost": {}}',
           "wrong-types": json.dumps({"mapping": MAPPING.to_dict(),
                                      "cost": {**to_jsonable(COST), "cycles": "10"}}).encode()}


@pytest.mark.parametrize("kind", list(GARBAGE))
def test_damaged_cache_entries_are_misses_and_deleted(tmp_path, kind):
    cache = MappingCache(tmp_path)
    key = MappingCache.key({"op": kind})
    path = tmp_path / "mappings" / key[:2] / f"{key}.json"
    path.parent.mkdir(parents=True)
    path.write_bytes(GARBAGE[kind])
    validate = entry_from if kind.startswith("wrong") else None
    assert cache.holds(key)
    assert cache.get(key, validate) is None and (cache.hits, cache.misses) == (0, 1)
    assert not path.exists()                            # the next run does not trip over it again
    cache.put(key, {"mapping": MAPPING.to_dict(), "cost": to_jsonable(COST)})
    assert cache.get(key, entry_from) == (MAPPING, COST) and cache.hits == 1


def test_cache_get_without_validate_keeps_a_good_entry(tmp_path):
    cache = MappingCache(tmp_path)
    cache.put("ab" * 32, to_jsonable(MEMORY))
    assert cache.get("ab" * 32) == to_jsonable(MEMORY)
    assert cache.get("ab" * 32, lambda e: from_json(MemoryCost, e)) == MEMORY
    assert cache.get("cd" * 32) is None and (cache.hits, cache.misses) == (2, 1)


def test_from_json_rebuilds_what_to_jsonable_wrote_and_nothing_else():
    assert from_json(ComputeCost, json.loads(json.dumps(to_jsonable(COST)))) == COST
    assert from_json(Mapping, json.loads(json.dumps(MAPPING.to_dict()))) == MAPPING
    for cls, bad in [(Mapping, {"levels": "x"}), (Mapping, {"levels": [{"level": 1, "temporal": []}]}),
                     (Mapping, {"levels": [], "compute_spatial": [["K"]]}), (Mapping, {"levels": [], "x": 1}),
                     (Mapping, {"levels": [], "compute_spatial": [["K", 2.5]]}), (MemoryCost, [1]),
                     (MemoryCost, {**to_jsonable(MEMORY), "read_bytes": True}), (ComputeCost, {"cycles": 1.0})]:
        with pytest.raises(TypeError):
            from_json(cls, bad)


@pytest.mark.parametrize("umask,mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_cache_files_get_the_mode_the_umask_gives(tmp_path, monkeypatch, umask, mode):
    monkeypatch.setattr(cache_module, "_umask", None)
    old = os.umask(umask)
    try:
        MappingCache(tmp_path).put("ef" * 32, {"a": 1})
    finally:
        os.umask(old)
    written = tmp_path / "mappings" / "ef" / f"{'ef' * 32}.json"
    assert written.stat().st_mode & 0o777 == mode


def test_a_failed_cache_write_leaves_no_temporary_file(tmp_path):
    with pytest.raises(TypeError):
        MappingCache(tmp_path).put("ef" * 32, {"a": object()})
    assert not list((tmp_path / "mappings").rglob("*.tmp"))
