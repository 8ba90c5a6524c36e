"""The ``accelergy`` component estimator: Accelergy itself (Accelergy-Project/accelergy 0.4 and the estimation
plug-ins its configuration lists), run as a subprocess on the component written in Accelergy's own v0.4
architecture format, its ERT (energy per action) and ART (area) read back.

The program: ``NTFRAME_ACCELERGY`` (the ``accelergy`` executable, or a folder holding it), else ``accelergy`` on
PATH. No package registry serves Accelergy: install it and its plug-ins from source (their repositories'
``pip install .``). Accelergy finds its plug-ins through its own configuration (``~/.config/accelergy/``, written
on first use, or an ``accelergy_config.yaml`` in the working folder): ntframe leaves that to the user, as
Accelergy's users expect, and records the program's identity.

What is asked (one run per component, in a folder of its own): an ``SRAM`` or ``regfile`` component as Accelergy's
class of the same name, ``width`` the bits it moves per cycle (its ``bandwidth_bytes_per_cycle``, or
``bandwidth_GBps`` over the clock), ``depth`` its capacity in such words, one read-write port, one bank, actions
``read``, ``write`` and ``leak``; a ``compute`` unit as an ``intmac`` (action ``mac_random``) and an ``intadder``
(``access``) per precision the file gives. ``technology`` is the architecture's node in nm (a number: Accelergy
evaluates strings as expressions; its plug-ins take no supply voltage, so the architecture's is not applied), and
``global_cycle_seconds`` the clock's period. Read back: per bit, an access's energy over the word's bits; area, the
ART's per instance (a compute unit's: its widest MAC's); static power, the ``leak`` action's energy per cycle over
the cycle (pJ per ns is mW). Which plug-in answered is Accelergy's choice (its accuracy ranking); ``accelergy -v``
in the kept folder says. A node or class no installed plug-in covers (Aladdin's tables hold 40-45 nm only) is an
error naming the component, with Accelergy's own message.
"""

from __future__ import annotations

from pathlib import Path

import yaml

import ntframe
from ntframe.components import ComponentEstimate, ComponentEstimator, EstimateRequest
from ntframe.errors import SpecError, ToolError
from ntframe.interop.external import (check_figures, cleanup, find_binary, parse_failure, program_identity,
                                      quoted_tail, read_stats, run_tool, tail, workdir)

TIMEOUT_S = 300.0
FIX = ("install Accelergy and its plug-ins from source (github.com/Accelergy-Project/accelergy, then pip install . "
       "in each); set NTFRAME_ACCELERGY=/path/to/accelergy")


def accelergy_program() -> str:
    return find_binary("NTFRAME_ACCELERGY", ["accelergy"], "Accelergy", FIX)


def architecture_text(request: EstimateRequest) -> tuple[str, dict[str, tuple[str, ...]]]:
    """Accelergy's v0.4 architecture holding the component, and per Accelergy component the actions read back."""
    a, node = request.attributes, request.target.node_nm
    local: list[dict] = []
    if request.component_class in ("SRAM", "regfile"):
        per_cycle = a.get("bandwidth_bytes_per_cycle") or a.get("bandwidth_GBps", 0) / request.clock_GHz
        width = int(round(per_cycle * 8))
        capacity_bits = int(a.get("capacity_bytes") or 0) * 8
        if width < 1 or width != per_cycle * 8 or not capacity_bits or capacity_bits % width:
            raise SpecError(f"Accelergy needs a capacity_bytes that is a whole number of words of the port's width "
                            f"(component '{request.component}': {capacity_bits // 8} bytes, {per_cycle:g} bytes per "
                            f"cycle)")
        local.append({"name": "store", "class": request.component_class,
                      "attributes": {"width": width, "depth": capacity_bits // width, "datawidth": 8,
                                     "n_rw_ports": 1, "n_banks": 1},
                      "required_actions": ["read", "write", "leak"]})
    else:
        for bits in sorted(a["mac_energy_pJ"]):
            local.append({"name": f"mac{bits}", "class": "intmac", "attributes": {"width": bits, "datawidth": bits},
                          "required_actions": ["mac_random", "leak"]})
        for bits in sorted(a["add_energy_pJ"]):
            local.append({"name": f"add{bits}", "class": "intadder", "attributes": {"width": bits},
                          "required_actions": ["access", "leak"]})
    document = {"architecture": {"version": 0.4, "subtree": [{
        "name": "ntframe", "attributes": {"technology": int(node) if node == int(node) else node,
                                          "global_cycle_seconds": 1e-9 / request.clock_GHz},
        "local": local}]}}
    return (yaml.safe_dump(document, sort_keys=False),
            {c["name"]: tuple(c["required_actions"]) for c in local})


def read_tables(folder: Path, wanted: dict[str, tuple[str, ...]]) -> tuple[dict, dict]:
    """ERT (component -> action -> pJ) and ART (component -> um2) of a run, for the components ``wanted``."""
    ert = yaml.safe_load(read_stats(folder / "ERT.yaml"))["ERT"]["tables"]
    art = yaml.safe_load(read_stats(folder / "ART.yaml"))["ART"]["tables"]
    energies = {t["name"].split(".")[-1]: {act["name"]: float(act["energy"]) for act in t["actions"]} for t in ert}
    areas = {t["name"].split(".")[-1]: float(t["area"]) for t in art}
    for name, actions in wanted.items():
        missing = [act for act in actions if act not in energies.get(name, {})]
        if missing or name not in areas:
            raise KeyError(f"{name}: {', '.join(missing) or 'area'} not in the ERT/ART")
    return energies, areas


class AccelergyEstimator(ComponentEstimator):
    name = "accelergy"
    description = "Accelergy 0.4 and its estimation plug-ins (subprocess; installed from source)"
    classes = ("SRAM", "regfile", "compute")

    def check_available(self) -> None:
        accelergy_program()

    def cache_identity(self) -> dict:
        return program_identity(accelergy_program())

    def estimate(self, request: EstimateRequest) -> ComponentEstimate:
        program = accelergy_program()
        text, wanted = architecture_text(request)
        folder = workdir(f"accelergy-{request.component}")
        (folder / "arch.yaml").write_text(text)
        argv = [program, "arch.yaml", "-o", "."]
        try:
            run_tool(argv, folder, TIMEOUT_S, "Accelergy")
        except ToolError as exc:
            if "failed with exit code" not in str(exc):     # a timeout, a program that cannot start: as it is
                raise
            said = quoted_tail(tail(folder / "stdout.txt"), lines=4) or quoted_tail(tail(folder / "stderr.txt"),
                                                                                    lines=4)
            raise SpecError(f"Accelergy estimates no figure for component '{request.component}' "
                            f"({request.component_class} at {request.target.node_nm:g} nm): {said or 'no output'} "
                            f"(its plug-ins decide what they cover; use 'estimator: table', or add a plug-in or "
                            f"tables; files kept in {folder})") from None
        try:
            energies, areas = read_tables(folder, wanted)
        except (OSError, ValueError, KeyError, TypeError, yaml.YAMLError) as exc:
            raise parse_failure("Accelergy", folder, f"{type(exc).__name__}: {exc}", argv) from None
        cycle_ns = 1 / request.clock_GHz
        if request.component_class in ("SRAM", "regfile"):
            width = next(iter(yaml.safe_load(text)["architecture"]["subtree"][0]["local"]))["attributes"]["width"]
            e = energies["store"]
            out = {"read_energy_pJ_per_bit": e["read"] / width, "write_energy_pJ_per_bit": e["write"] / width}
            area, leak_pJ = areas["store"], e["leak"]
        else:
            out = {"mac_energy_pJ": {int(n[3:]): energies[n]["mac_random"] for n in wanted if n.startswith("mac")},
                   "add_energy_pJ": {int(n[3:]): energies[n]["access"] for n in wanted if n.startswith("add")}}
            widest = f"mac{max(out['mac_energy_pJ'])}"
            area, leak_pJ = areas[widest], energies[widest]["leak"]
        figures = {"area_um2": area, "leak_pJ": leak_pJ,
                   **{f"{k}[{b}]": v for k, t in out.items() for b, v in (t.items() if isinstance(t, dict)
                                                                       else [("", t)])}}
        check_figures("Accelergy", folder, argv, figures)
        cleanup(folder)
        return ComponentEstimate(out, {"energy": 1.0, "area": 1.0},
                                 f"Accelergy at {request.target.node_nm:g} nm (ERT/ART; supply not applied)",
                                 area_um2=area, static_power_mW=leak_pJ / cycle_ns)


@ntframe.hookimpl
def ntframe_register_component_estimators(register) -> None:
    register(AccelergyEstimator)
