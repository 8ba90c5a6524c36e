"""Export an ntframe operation, architecture and mapping in Timeloop's own formats.

``export(op, arch, mapping, folder)`` writes, for ``timeloop-model``:

* ``arch.yaml`` — the architecture in the v0.3 tree format the C++ programs read, and ``arch-v0.4.yaml`` in the
  v0.4 ``nodes`` format (timeloopfe / pytimeloop convert it to v0.3);
* ``problem.yaml`` — the loop nest: dimensions, per-tensor projections (sum-of-products, named coefficients for
  strides and dilations), the output as the ``read_write`` data space, the instance bounds;
* ``mapping.yaml`` — the mapping: per level a temporal directive (factors, permutation innermost first), a
  spatial directive at the parent of every fan-out, and a bypass directive (keep / bypass);
* ``ERT.yaml`` — the energy reference table (per access of one word at the operation's precision; per compute);
* ``ntframe.json`` — what ntframe's native model computes for the same mapping, and ``README.txt`` with the
  command to run.

The vaults are exported one at a time: Timeloop models one hierarchy with one top-level memory, so the vault
split (spatial factors into the outermost level) is taken out of the problem — ``problem.yaml`` is one vault's
share, and the whole operation is that times ``vaults`` (``ntframe.json``), plus the logic-die network, which
Timeloop does not model. Timeloop keeps one word width per level: the operation's widest precision is used.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import yaml

from ntframe.hardware.architecture import Architecture
from ntframe.mapping.constraints import Constraints
from ntframe.mapping.mapping import Mapping
from ntframe.workload.ir import Operation

TIMELOOP_CLASS = {"DRAM": "DRAM", "SRAM": "SRAM", "regfile": "regfile"}


def per_vault_bounds(op: Operation, mapping: Mapping) -> tuple[dict[str, int], int]:
    """The loop bounds one vault sees (the split over the outermost level's instances divided out), and how many
    vaults the mapping uses."""
    split = dict(mapping.levels[0].spatial)
    bounds = {d: b // split.get(d, 1) for d, b in op.dims}
    return bounds, math.prod(split.values()) if split else 1


def _coefficients(op: Operation) -> dict[int, str]:
    coefs = sorted({c for t in op.tensors for axis in t.projection for _, c in axis if c != 1})
    return {c: f"c{c}" for c in coefs}


def problem_yaml(op: Operation, bounds: dict[str, int]) -> dict[str, Any]:
    coefs = _coefficients(op)
    written = [t for t in op.tensors if t.written]
    if len(written) != 1:
        raise ValueError(f"{op.name}: Timeloop needs exactly one written data space, found {len(written)}")
    spaces = []
    for t in op.tensors:
        proj = [[[d] if c == 1 else [d, coefs[c]] for d, c in axis] for axis in t.projection]
        entry: dict[str, Any] = {"name": t.name, "projection": proj}
        if t.written:
            entry["read_write"] = True
        spaces.append(entry)
    spaces.sort(key=lambda s: s.get("read_write", False))         # the output last
    dims = [d for d, _ in op.dims]
    for d in dims:
        if len(d) != 1:
            raise ValueError(f"{op.name}: Timeloop permutations need one-letter dimensions, '{d}' is not")
    return {"problem": {
        "shape": {"name": op.name.replace(".", "_"), "dimensions": dims,
                  "coefficients": [{"name": n, "default": c} for c, n in coefs.items()],
                  "data_spaces": spaces},
        "instance": {**{d: bounds[d] for d in dims}, **{n: c for c, n in coefs.items()}}}}


def word_bits(op: Operation) -> int:
    """The widest operand of ``op`` in bits (Timeloop's word size for every level)."""
    return max(t.precision_bits for t in op.tensors)


def arch_v03(arch: Architecture, op: Operation) -> dict[str, Any]:
    bits = word_bits(op)
    K = len(arch.levels)
    instances = 1                                   # within one vault

    def storage(lvl: int, count: int) -> dict[str, Any]:
        spec = arch.levels[lvl]
        attrs: dict[str, Any] = {"width": bits, "datawidth": bits, "block_size": 1}
        if spec.capacity_bytes is not None and lvl > 0:
            attrs["depth"] = spec.capacity_bytes * 8 // bits
        words_per_cycle = spec.bytes_per_cycle * 8 / bits
        attrs["read_bandwidth"] = words_per_cycle
        attrs["write_bandwidth"] = words_per_cycle
        if count > 1:
            attrs["meshX"] = count
        return {"name": spec.name, "class": TIMELOOP_CLASS[spec.cls], "attributes": attrs}

    tree: dict[str, Any] = {"name": "vault", "local": [storage(0, 1)]}
    node = tree
    for lvl in range(1, K):
        instances *= arch.levels[lvl].fanout
        name = f"L{lvl}[0..{arch.levels[lvl].fanout - 1}]" if arch.levels[lvl].fanout > 1 else f"L{lvl}"
        child = {"name": name, "local": [storage(lvl, instances)]}
        node["subtree"] = [child]
        node = child
    compute_count = instances * arch.compute.fanout
    mac_attrs: dict[str, Any] = {"datawidth": bits}
    if compute_count > 1:
        mac_attrs["meshX"] = compute_count
    mac_name = f"{arch.compute.name}[0..{arch.compute.fanout - 1}]" if arch.compute.fanout > 1 else arch.compute.name
    if arch.compute.fanout > 1:
        node["subtree"] = [{"name": f"C[0..{arch.compute.fanout - 1}]",
                            "local": [{"name": arch.compute.name, "class": "intmac", "attributes": mac_attrs}]}]
    else:
        node["local"].append({"name": arch.compute.name, "class": "intmac", "attributes": mac_attrs})
    del mac_name
    return {"architecture": {"version": 0.3, "subtree": [tree]}}


UNBOUNDED_DEPTH = 2**32 - 1
"""The v0.4 DRAM's depth in words: timeloopfe requires a depth on every storage, and Timeloop reads it as a 32-bit
count, so the outermost level, unbounded in the v0.3 tree, gets the largest it reads (the statistics then differ
only in their ``Size`` lines)."""


def arch_v04(arch: Architecture, op: Operation) -> str:
    """The same hierarchy as v0.4 ``nodes`` (!Container / !Component), as YAML text: what timeloopfe translates
    to the v0.3 tree of :func:`arch_v03`."""
    bits = word_bits(op)
    lines = ["architecture:", "  version: 0.4", "  nodes:", "  - !Container", "    name: vault"]
    for lvl, spec in enumerate(arch.levels):
        if lvl > 0 and spec.fanout > 1:
            lines += ["  - !Container", f"    name: L{lvl}", f"    spatial: {{meshX: {spec.fanout}}}"]
        attrs = {"datawidth": bits, "width": bits, "block_size": 1,
                 "read_bandwidth": spec.bytes_per_cycle * 8 / bits, "write_bandwidth": spec.bytes_per_cycle * 8 / bits}
        if lvl == 0:
            attrs["depth"] = UNBOUNDED_DEPTH
        elif spec.capacity_bytes is not None:
            attrs["depth"] = spec.capacity_bytes * 8 // bits
        lines += ["  - !Component", f"    name: {spec.name}", f"    class: {TIMELOOP_CLASS[spec.cls]}",
                  f"    attributes: {json.dumps(attrs)}"]
    if arch.compute.fanout > 1:
        lines += ["  - !Container", "    name: C", f"    spatial: {{meshX: {arch.compute.fanout}}}"]
    lines += ["  - !Component", f"    name: {arch.compute.name}", "    class: intmac",
              f"    attributes: {{datawidth: {bits}}}"]
    return "\n".join(lines) + "\n"


def ert(arch: Architecture, op: Operation) -> dict[str, Any]:
    """Energy per word access at the operation's widest precision, and per compute."""
    bits = word_bits(op)
    tables = []
    path = "vault"
    for lvl, spec in enumerate(arch.levels):
        if lvl > 0:
            path += f".L{lvl}[0..{spec.fanout - 1}]" if spec.fanout > 1 else f".L{lvl}"
        r, w = spec.read_energy_pJ_per_bit * bits, spec.write_energy_pJ_per_bit * bits
        tables.append({"name": f"{path}.{spec.name}", "actions": [
            {"name": "read", "energy": r}, {"name": "write", "energy": w}, {"name": "update", "energy": w},
            {"name": "leak", "energy": 0.0}]})
    cpath = path + (f".C[0..{arch.compute.fanout - 1}]" if arch.compute.fanout > 1 else "")
    tables.append({"name": f"{cpath}.{arch.compute.name}", "actions": [
        {"name": "compute", "energy": arch.compute.energy_pJ(op.action, bits) * op.ops_per_point},
        {"name": "leak", "energy": 0.0}]})
    return {"ERT": {"version": 0.3, "tables": tables}}


def mapping_yaml(op: Operation, arch: Architecture, mapping: Mapping, bounds: dict[str, int]) -> dict[str, Any]:
    dims = [d for d, _ in op.dims]
    names = [t.name for t in op.tensors]
    K = len(arch.levels)
    rows = mapping.spatial_rows()

    def factors(pairs) -> str:
        f = dict.fromkeys(dims, 1)
        for d, v in pairs:
            f[d] *= v
        return " ".join(f"{d}={f[d]}" for d in dims)

    out = []
    for lvl in range(K - 1, -1, -1):
        lm = mapping.levels[lvl]
        below = rows[lvl + 1]
        if math.prod(f for _, f in below) > 1:
            perm = [d for d, _ in below] + [d for d in dims if d not in dict(below)]
            out.append({"target": lm.level, "type": "spatial", "factors": factors(below),
                        "permutation": "".join(perm), "split": len(dims)})
        inner_first = [d for d, _ in reversed(lm.temporal)]
        perm = inner_first + [d for d in dims if d not in inner_first]
        out.append({"target": lm.level, "type": "temporal", "factors": factors(lm.temporal),
                    "permutation": "".join(perm)})
        out.append({"target": lm.level, "type": "bypass", "keep": [n for n in names if n not in lm.bypass],
                    "bypass": [n for n in names if n in lm.bypass]})
    return {"mapping": out}


def constraints_yaml(op: Operation, arch: Architecture, c: Constraints) -> dict[str, Any]:
    """An operation's mapping constraints (:func:`ntframe.mapping.constraints.for_operation`) as Timeloop's
    ``mapspace_constraints``, for one vault: per level a ``bypass`` directive (keep / bypass), a ``temporal``
    one (factors ``D=n`` exact or ``D<=n``; the pinned innermost loops as a partial permutation, innermost
    first), and at the parent of every fan-out inside the vault a ``spatial`` one (exact or bounded factors; the
    dimensions that may not be split there get factor 1, which is how ``dims`` and ``no_spatial_reduction``
    read in Timeloop's vocabulary). The split across vaults is the vault split, outside Timeloop's problem."""
    dims = [d for d, _ in op.dims]
    names = [t.name for t in op.tensors]
    K = len(arch.levels)
    temporal: dict[int, dict[str, str]] = {}
    spatial: dict[int, dict[str, str]] = {}
    for (slot, d), (lo, hi) in sorted(c.factors.items()):
        text = f"{dims[d]}={lo}" if lo == hi else f"{dims[d]}<={hi}"
        if slot < K:
            temporal.setdefault(slot, {})[dims[d]] = text
        elif slot - K >= 1:                              # the fan-out into level row, below its parent
            spatial.setdefault(slot - K - 1, {})[dims[d]] = text
    for row, allowed in sorted(c.spatial.items()):
        if row == 0 or arch.fanouts[row] < 2:
            continue
        for d, name in enumerate(dims):
            if d not in allowed:
                spatial.setdefault(row - 1, {})[name] = f"{name}=1"
    out: list[dict[str, Any]] = []
    for lvl in range(K):
        target = arch.levels[lvl].name
        keep = [names[t] for (lv, t), v in sorted(c.keep.items()) if lv == lvl and v]
        bypass = [names[t] for (lv, t), v in sorted(c.keep.items()) if lv == lvl and not v]
        if keep or bypass:
            out.append({"target": target, "type": "bypass", "keep": keep, "bypass": bypass})
        entry: dict[str, Any] = {}
        if lvl in temporal:
            entry["factors"] = " ".join(temporal[lvl].values())
        if c.innermost.get(lvl):
            entry["permutation"] = "".join(dims[d] for d in reversed(c.innermost[lvl]))
        if entry:
            out.append({"target": target, "type": "temporal", **entry})
        if lvl in spatial:
            out.append({"target": target, "type": "spatial", "factors": " ".join(spatial[lvl].values())})
    return {"mapspace_constraints": out}


def input_files(op: Operation, arch: Architecture, bounds: dict[str, int]) -> dict[str, str]:
    """The architecture (v0.3 and v0.4), the problem for ``bounds`` (one vault's share) and the energy table."""
    return {
        "arch.yaml": yaml.safe_dump(arch_v03(arch, op), sort_keys=False),
        "arch-v0.4.yaml": arch_v04(arch, op),
        "problem.yaml": yaml.safe_dump(problem_yaml(op, bounds), sort_keys=False, default_flow_style=None),
        "ERT.yaml": yaml.safe_dump(ert(arch, op), sort_keys=False),
    }


def export(op: Operation, arch: Architecture, mapping: Mapping, folder: Path,
           ntframe_cost: dict[str, Any] | None = None) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    bounds, vaults = per_vault_bounds(op, mapping)
    files = {
        **input_files(op, arch, bounds),
        "mapping.yaml": yaml.safe_dump(mapping_yaml(op, arch, mapping, bounds), sort_keys=False),
        "ntframe.json": json.dumps({"operation": op.name, "vaults": vaults, "per_vault_bounds": bounds,
                                    "mapping": mapping.to_dict(), "ntframe": ntframe_cost or {}}, indent=1),
        "README.txt": (f"{op.name} on {arch.name}: one vault's share (the operation is split over {vaults} "
                       f"vault(s)).\nRun:  timeloop-model arch.yaml problem.yaml mapping.yaml ERT.yaml -o out\n"
                       "Compare out/timeloop-model.stats.txt with ntframe.json (per vault: divide ntframe's totals "
                       "by the vaults; the logic-die network is not in Timeloop).\n"),
    }
    written = []
    for name, text in files.items():
        path = folder / name
        path.write_text(text)
        written.append(path)
    return written


def _factor_map(text: str, dims: list[str]) -> dict[str, int]:
    """``"N1 M8 C2"`` (what timeloop-mapper writes) or ``"N=1 M=8"`` (what the exporter writes)."""
    out = dict.fromkeys(dims, 1)
    for item in str(text).split():
        match = re.fullmatch(r"([A-Za-z_]+)=?(\d+)", item)
        if not match:
            raise ValueError(f"Timeloop mapping factor '{item}' is not NAME<number> or NAME=<number>")
        name, value = match.groups()
        if name not in out:
            raise ValueError(f"Timeloop mapping names dimension '{name}', the operation has {dims}")
        out[name] = int(value)
    return out


def parse_mapping(doc: dict[str, Any], op: Operation, arch: Architecture, vault_split: tuple = ()) -> Mapping:
    """A Timeloop ``mapping:`` (one vault's, as timeloop-mapper writes it) back into an ntframe Mapping; the
    split over the vaults (``vault_split``, spatial factors into the outermost level) is added back."""
    from ntframe.mapping.mapping import LevelMapping
    dims = [d for d, _ in op.dims]
    names = [lvl.name for lvl in arch.levels]
    temporal: dict[str, tuple] = {n: () for n in names}
    spatial_below: dict[str, tuple] = {n: () for n in names}
    bypass: dict[str, tuple] = {n: () for n in names}
    for directive in doc["mapping"]:
        target, kind = directive["target"], directive["type"]
        if target not in temporal:
            raise ValueError(f"Timeloop mapping targets '{target}', the architecture's levels are {names}")
        if kind in ("bypass", "datatype"):
            bypass[target] = tuple(directive.get("bypass") or ())
            continue
        factors = _factor_map(directive.get("factors", ""), dims)
        perm = str(directive.get("permutation", ""))
        order = [d for d in perm if d in factors] + [d for d in dims if d not in perm]   # innermost first
        pairs = tuple((d, factors[d]) for d in order if factors[d] > 1)
        if kind == "temporal":
            temporal[target] = tuple(reversed(pairs))               # ntframe lists the outermost loop first
        elif kind == "spatial":
            spatial_below[target] = pairs
    levels = []
    for i, n in enumerate(names):
        spatial = tuple(vault_split) if i == 0 else spatial_below[names[i - 1]]
        levels.append(LevelMapping(n, temporal[n], spatial, bypass[n]))
    return Mapping(tuple(levels), spatial_below[names[-1]])


def parse_stats(text: str) -> dict[str, Any]:
    """``timeloop-model.stats.txt`` → per level: instances, cycles, energy (pJ, from the per-level and
    per-data-space ``Energy (total)`` lines, not the rounded summary), and per data space the per-instance
    scalar reads, fills and updates; plus the totals and the energy source of every level."""
    levels: dict[str, dict[str, Any]] = {}
    current: dict[str, Any] | None = None
    space: dict[str, Any] | None = None
    summary_cycles = utilisation = None
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("=== ") and line.endswith(" ==="):
            name = line[4:-4]
            if name in levels:            # the operational-intensity section repeats the names
                current = None
                continue
            current = levels.setdefault(name, {"dataspaces": {}, "energy_pJ": 0.0})
            space = None
            continue
        if line.startswith("Cycles:"):
            summary_cycles = float(line.split(":")[1])
        if line.startswith("Utilization:") and line.endswith("%"):
            utilisation = float(line.split(":")[1].strip().rstrip("%")) / 100
        if current is None or ":" not in line:
            continue
        key, _, value = (part.strip() for part in line.partition(":"))
        if not value and raw.startswith("    ") and not raw.startswith("     "):
            space = current["dataspaces"].setdefault(key, {})
            continue
        number = value.split()[0] if value else ""
        try:
            num = float(number)
        except ValueError:
            if key == "Vector access energy source":
                current["energy_source"] = value
            continue
        if key == "Energy (total)":
            current["energy_pJ"] += num
            if space is not None:
                space["energy_pJ"] = num
        elif space is not None and key.startswith("Scalar "):
            space[key.split("(")[0].replace("Scalar", "").strip()] = num
        elif key == "Cycles":
            current["cycles"] = num
        elif key in ("Instances", "Utilized instances") and space is None:
            current["instances"] = num
        elif key == "Utilized instances (max)" and space is not None:
            space["instances"] = num
        elif key == "Computes (total)":
            current["computes"] = num
    return {"levels": levels, "cycles": summary_cycles, "utilisation": utilisation,
            "energy_pJ": sum(lv["energy_pJ"] for lv in levels.values())}
