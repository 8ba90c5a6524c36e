"""The house's rules, read from the code's own imports (every ``import`` and ``from ... import``, at module level
or inside a function).

* ``ntframe/`` never names a reference plugin (``ntframe_plugins``): plugins come through entry points only.
* The pipeline wings import only the wings below them and the frame's utilities — never the runner, the CLI,
  the Python API, the results bundle or the studies built on top; the contract modules import no more than the
  wings and the utilities.
* Every package of ``ntframe/`` says in two lines what lives there; every reference plugin is one file per entry
  point, and no plugin imports another.
"""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest

from tests.conftest import ROOT

PACKAGE = ROOT / "ntframe"
WINGS_BELOW = {                     # each wing may import itself and the wings listed (never the other way)
    "workload": set(),
    "system": set(),
    "hardware": {"workload"},
    "mapping": {"workload", "hardware"},
    "memory": {"workload", "hardware", "mapping"},
    "interop": {"workload", "hardware", "mapping"},
}
UTILITIES = {"ntframe", "ntframe.errors", "ntframe.yamlio", "ntframe.paths", "ntframe.cache", "ntframe.results",
             "ntframe.components", "ntframe.jit"}
CONTRACT = ["hookspecs", "components", "results", "errors"]
FRONT = {"ntframe.runner", "ntframe.cli", "ntframe.api", "ntframe.bundle", "ntframe.studies"}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(source: str, module: str, is_package: bool = False) -> list[tuple[str, int]]:
    """(module imported, line) for every import in ``source``; ``from pkg import name`` counts as ``pkg.name``
    when that is a module of ntframe, else as ``pkg``."""
    found: list[tuple[str, int]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")[: len(module.split(".")) - node.level + (1 if is_package else 0)]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                as_module = ROOT.joinpath(*candidate.split("."))
                found.append((candidate if as_module.with_suffix(".py").is_file() or as_module.is_dir() else base,
                              node.lineno))
    return found


def modules(folder: Path = PACKAGE):
    for path in sorted(folder.rglob("*.py")):
        yield path, module_name(path), imported(path.read_text(), module_name(path), path.name == "__init__.py")


def within(name: str, prefixes: set[str]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def wing_violations(name: str, imports: list[tuple[str, int]]) -> list[str]:
    wing = name.split(".")[1] if name.count(".") >= 1 else ""
    if wing not in WINGS_BELOW:
        return []
    allowed = {f"ntframe.{w}" for w in WINGS_BELOW[wing] | {wing}}
    return [f"{name}:{line} imports {target}" for target, line in imports
            if target.startswith("ntframe") and not within(target, allowed) and target not in UTILITIES]


def test_the_core_never_names_a_plugin():
    offenders = []
    for path, name, imports in modules():
        offenders += [f"{name}:{line} imports {t}" for t, line in imports if t.startswith("ntframe_plugins")]
        offenders += [f"{name}: mentions ntframe_plugins" for node in ast.walk(ast.parse(path.read_text()))
                      if isinstance(node, ast.Constant) and isinstance(node.value, str)
                      and "ntframe_plugins" in node.value]
    assert offenders == []


def test_wings_import_only_lower_wings_and_the_utilities():
    offenders = [v for _, name, imports in modules() for v in wing_violations(name, imports)]
    assert offenders == []


def test_the_rule_catches_a_wing_importing_the_front_door():
    """The checker itself: an import of the runner inside a function of a wing module is flagged."""
    source = "def f():\n    from ntframe.runner import run\n    from ntframe.studies import compare\n"
    imports = imported(source, "ntframe.mapping.search")
    assert wing_violations("ntframe.mapping.search", imports) == [
        "ntframe.mapping.search:2 imports ntframe.runner", "ntframe.mapping.search:3 imports ntframe.studies.compare"]
    assert wing_violations("ntframe.workload.ir", imported("from ntframe.hardware import Architecture\n",
                                                           "ntframe.workload.ir")) != []


def test_contract_modules_import_only_wings_and_utilities():
    offenders = []
    for name in CONTRACT:
        path = PACKAGE / f"{name}.py"
        for target, line in imported(path.read_text(), f"ntframe.{name}"):
            if target.startswith("ntframe") and (within(target, FRONT) or target in
                                                 {"ntframe.host", "ntframe.spec", "ntframe.cache"}):
                offenders.append(f"ntframe.{name}:{line} imports {target}")
    assert offenders == []


def test_studies_never_import_the_front_door():
    offenders = [f"{name}:{line} imports {t}" for _, name, imports in modules(PACKAGE / "studies")
                 for t, line in imports if within(t, {"ntframe.cli", "ntframe.api"})]
    assert offenders == []


@pytest.mark.parametrize("package", sorted(p.parent.relative_to(ROOT).as_posix()
                                           for p in PACKAGE.rglob("__init__.py")))
def test_every_package_says_in_two_lines_what_lives_there(package):
    doc = ast.get_docstring(ast.parse((ROOT / package / "__init__.py").read_text()))
    assert doc and 1 <= len(doc.splitlines()) <= 2, package


def test_one_plugin_file_per_entry_point_and_no_plugin_imports_another():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    targets = sorted(v.split(":")[0] for v in project["project"]["entry-points"]["ntframe"].values())
    files = sorted(f"ntframe_plugins.{p.stem}" for p in (ROOT / "plugins").glob("*.py") if p.stem != "__init__")
    assert targets == files
    for path in (ROOT / "plugins").glob("*.py"):
        assert [t for t, _ in imported(path.read_text(), f"ntframe_plugins.{path.stem}")
                if t.startswith("ntframe_plugins")] == [], path.name


def public_interface() -> dict[str, set[str]]:
    """The table of docs/plugins.md's "What a plugin may import": module -> names."""
    text = (ROOT / "docs" / "plugins.md").read_text()
    section = text.split("## What a plugin may import", 1)[1].split("\n## ", 1)[0]
    table: dict[str, set[str]] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 2 and cells[0].startswith("`"):
            module = cells[0].split("`")[1]
            table[module] = set(cells[1].split("`")[1::2])
    return table


def test_the_documented_public_interface_is_each_modules_all():
    import importlib
    table = public_interface()
    assert {"ntframe", "ntframe.components", "ntframe.workload", "ntframe.hardware", "ntframe.mapping",
            "ntframe.results", "ntframe.errors"} <= set(table)
    for module, names in table.items():
        assert set(importlib.import_module(module).__all__) == names, module


def test_the_example_plugin_imports_only_the_public_interface():
    table = public_interface()
    path = ROOT / "examples" / "ntframe-roofline" / "ntframe_roofline.py"
    used = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("ntframe"):
            used += [(node.module, alias.name) for alias in node.names]
        elif isinstance(node, ast.Import):
            used += [(alias.name, None) for alias in node.names if alias.name.startswith("ntframe")]
    assert used and all(module in table and (name is None or name in table[module]) for module, name in used), used
    assert {module for module, _ in used} >= {"ntframe", "ntframe.components", "ntframe.results"}


def test_every_package_is_installed():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = {module_name(p) for p in PACKAGE.rglob("__init__.py")} | {"ntframe_plugins"}
    assert set(project["tool"]["setuptools"]["packages"]) == packages
