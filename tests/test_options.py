"""Options document themselves: docs/options.md is generated from the models, and never lists a key that
validation rejects."""

from __future__ import annotations

import re
import types
from typing import Literal, Optional

import pydantic
import pytest
from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt

import ntframe
from ntframe.components import MemoryBackend
from ntframe.errors import SpecError
from ntframe.options import (
    describe_model,
    describe_plugin,
    render_markdown,
    render_text,
    section_core_keys,
)
from tests.conftest import ROOT

DOC = ROOT / "docs" / "options.md"


def by_name(entries: list[dict]) -> dict[str, dict]:
    return {entry["name"]: entry for entry in entries}


def test_the_options_page_is_generated_from_the_models(host):
    assert DOC.read_text() == render_markdown(host), \
        "docs/options.md is out of date: run python tools/options_doc.py --write"


def test_the_options_page_lists_only_ntframe_components(host):
    """A third-party plugin installed on the machine never reaches the page."""

    class ForeignBackend(MemoryBackend):
        name = "foreign-backend"
        description = "somebody else's"

        def simulate(self, traffic, architecture):
            raise NotImplementedError

    module = types.ModuleType("foreign_plugin")
    module.ntframe_register_memory_backends = ntframe.hookimpl(lambda register: register(ForeignBackend))
    host.register_module(module, "foreign", "9.9")
    assert ("memory_backend", "foreign-backend") in host.components
    assert "foreign-backend" not in render_markdown(host)


def test_hand_checked_entries_of_the_hmc_analytic_backend(host):
    options = by_name(describe_model(host.get("memory_backend", "hmc-analytic").cls.Options))
    assert options["max_requests"] == {"name": "max_requests", "type": "int > 0", "default": 1000000,
                                       "required": False,
                                       "doc": "Requests simulated per operation, about, at most. A trace is "
                                              "simulated whole when a sample would cost as much; a longer one is "
                                              "sampled until the tolerance is met or this many requests have been "
                                              "simulated (then `converged` is false)."}
    assert options["tolerance"]["type"] == "float in (0, 1]" and options["tolerance"]["default"] == 0.02
    assert options["model"]["type"] == "'bank' | 'stream'"
    assert options["model"]["default"] == "bank"
    assert options["vault_bandwidth_GBps"]["type"] == "float > 0 or null"
    assert options["access_latency_ns"]["type"] == "float >= 0"
    assert options["timings"]["type"] == "mapping of str to float"
    assert list(options)[:2] == ["tolerance", "max_requests"]           # declaration order, inherited first


def test_hand_checked_core_keys_of_the_mapper_and_workload_sections():
    mapper = section_core_keys("mapper")
    assert mapper[0]["name"] == "name"                                  # the selector first
    keys = by_name(mapper)
    assert keys["budget"]["type"] == "mapping"
    assert keys["budget.evaluations"] == {"name": "budget.evaluations", "type": "int > 0", "default": 20000,
                                          "required": False, "doc": (
        "Cost-model evaluations: the bounded search maps no new structure once it has spent them (the one in hand "
        "and the final descent finish); the sampling search prices no more.")}
    assert keys["budget.seconds"] == {
        "name": "budget.seconds", "type": "float > 0", "default": 10.0, "required": False,
        "doc": "Wall-clock cap (numba's compiling left out); reaching it makes the result machine-dependent and is reported."}
    names = [e["name"] for e in mapper]
    assert names.index("budget") + 1 == names.index("budget.evaluations")     # right after the parent
    workload = by_name(section_core_keys("workload"))
    assert workload["phases"]["type"] == "list of 'forward' | 'backward_data' | 'backward_weight' | 'update'"
    assert workload["phases"]["default"] == ["forward", "backward_data", "backward_weight", "update"]
    assert by_name(section_core_keys("architecture"))["spec"]["required"] is True
    with pytest.raises(SpecError, match="did you mean 'memory'"):
        section_core_keys("memroy")


def test_a_throwaway_model_gives_exactly_the_expected_entries():
    class Window(BaseModel):
        """One sampling window."""

        model_config = ConfigDict(extra="forbid")
        steps: PositiveInt = 8
        """Steps per window."""

    class Throwaway(BaseModel):
        model_config = ConfigDict(extra="forbid")
        bandwidth_GBps: Optional[PositiveFloat] = None  # noqa: UP045 (the spelling under test)
        """Per-vault bandwidth; default: the architecture's.
        Continued on a second line."""
        mode: Literal["fast", "exact"] = "exact"
        share: float = Field(0.5, ge=0, le=1)
        """Share of the requests simulated."""
        window: Window = Window()
        label: str = Field("run", description="Given with description=, not a docstring.")
        """Ignored: the description wins."""
        count: int

    assert describe_model(Throwaway) == [
        {"name": "bandwidth_GBps", "type": "float > 0 or null", "default": None, "required": False,
         "doc": "Per-vault bandwidth; default: the architecture's. Continued on a second line."},
        {"name": "mode", "type": "'fast' | 'exact'", "default": "exact", "required": False, "doc": ""},
        {"name": "share", "type": "float in [0, 1]", "default": 0.5, "required": False,
         "doc": "Share of the requests simulated."},
        {"name": "window", "type": "mapping", "default": {"steps": 8}, "required": False,
         "doc": "One sampling window."},
        {"name": "window.steps", "type": "int > 0", "default": 8, "required": False, "doc": "Steps per window."},
        {"name": "label", "type": "str", "default": "run", "required": False,
         "doc": "Given with description=, not a docstring."},
        {"name": "count", "type": "int", "default": None, "required": True, "doc": ""},
    ]


def test_docstrings_are_inherited_and_a_model_without_source_still_describes():
    class Base(BaseModel):
        timeout_s: PositiveFloat = 60.0
        """Seconds before the tool is stopped."""

    class Child(Base):
        org: str = "HMC_4GB"

    assert [(e["name"], e["doc"]) for e in describe_model(Child)] == [
        ("timeout_s", "Seconds before the tool is stopped."), ("org", "")]
    made = pydantic.create_model("Made", depth=(PositiveInt, 3))       # no source to read
    assert describe_model(made) == [{"name": "depth", "type": "int > 0", "default": 3, "required": False,
                                     "doc": ""}]


def documented_components(text: str) -> dict[tuple[str, str], list[str]]:
    """(family, component) -> option names, read from the component sections of docs/options.md."""
    found: dict[tuple[str, str], list[str]] = {}
    current = None
    for line in text.splitlines():
        heading = re.match(r"^### `([^`]+)` \(([a-z_]+), plugin `[^`]+`\)$", line)
        if heading:
            current = (heading.group(2), heading.group(1))
            found[current] = []
        elif line.startswith("#"):
            current = None
        elif current is not None:
            row = re.match(r"^\| `([^`]+)` \|", line)
            if row:
                found[current].append(row.group(1))
    return found


def nested_value(name: str, value):
    """``budget.seconds`` -> {"budget": {"seconds": value}}; ``inputs[].shape`` -> {"inputs": [{"shape": value}]}."""
    head, dot, rest = name.partition(".")
    if not dot:
        return {head: value}
    if head.endswith("[]"):
        return {head[:-2]: [nested_value(rest, value)]}
    return {head: nested_value(rest, value)}


def test_every_documented_option_is_accepted_by_its_component(host):
    documented = documented_components(DOC.read_text())
    assert ("memory_backend", "hmc-analytic") in documented and ("cost_model", "zigzag") in documented
    assert "max_requests" in documented[("memory_backend", "hmc-analytic")]
    for (family, name), options in documented.items():
        model = host.get(family, name).cls.Options
        entries = by_name(describe_model(model))
        for option in options:
            assert option in entries, f"{family} {name}: docs list '{option}', the model has no such option"
            entry = entries[option]
            try:
                model.model_validate(nested_value(option, entry["default"]))
                errors = []
            except pydantic.ValidationError as exc:
                errors = exc.errors()
            loc = tuple(part for part in re.split(r"\.|\[\]", option) if part)
            rejected = [e for e in errors if e["type"] == "extra_forbidden"]
            assert rejected == [], f"{family} {name}: validation rejects the documented option '{option}'"
            if not entry["required"]:
                at_option = [e for e in errors if tuple(p for p in e["loc"] if not isinstance(p, int)) == loc]
                assert at_option == [], f"{family} {name}: the documented default of '{option}' is invalid"


def test_describe_plugin_by_component_name_spans_families(host):
    described = describe_plugin(host, "native")
    families = {c["family"] for plugin in described for c in plugin["components"]}
    assert families == {"mapper", "cost_model", "interconnect"}
    assert {p["plugin"] for p in described} == {"native-mapper", "native-cost", "interconnect-native"}
    mapper = next(c for p in described for c in p["components"] if c["family"] == "mapper")
    assert (mapper["section"], mapper["selector"]) == ("mapper", "name")
    assert by_name(mapper["options"])["spatial_probability"]["type"] == "float in [0, 1]"
    plugin = describe_plugin(host, "dram-simulators")                     # by entry-point name: all of it
    assert [c["name"] for c in plugin[0]["components"]] == ["dramsim3", "ramulator"]
    assert plugin[0]["distribution"] == "ntframe" and plugin[0]["error"] is None


def test_describe_plugin_names_the_known_names_for_an_unknown_one(host):
    with pytest.raises(SpecError) as caught:
        describe_plugin(host, "hmc-analytc")
    message = str(caught.value)
    assert "hmc-analytic" in message and "native-mapper" in message and "ramulator" in message
    assert "did you mean 'hmc-analytic'?" in message


def test_render_text_lists_a_plugin_and_its_options(host):
    text = render_text(describe_plugin(host, "hmc-analytic"))
    lines = text.splitlines()
    assert lines[0].startswith("plugin hmc-analytic ")
    assert "memory: {backend: hmc-analytic, ...}" in text
    row = next(line for line in lines if line.split()[:1] == ["max_requests"])
    assert row.split()[1:5] == ["int", ">", "0", "1000000"]
    assert "Requests simulated per operation" in row
    header = next(line for line in lines if line.split()[:1] == ["option"])
    assert header.index("type") == row.index("int")                      # aligned columns
    assert all(len(line) <= 110 for line in lines[3:])
    assert "(no options)" in render_text(describe_plugin(host, "zigzag"))
