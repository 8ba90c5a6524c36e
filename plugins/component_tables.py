"""The ``table`` component estimator: the architecture file's own figures, each measured at a technology node
(the component's ``technology``, else the architecture's), scaled to the architecture's node and supply with
Stillmaker & Baas's fits (:mod:`ntframe.hardware.technology`).

Logic components (``SRAM``, ``regfile``, ``compute``, ``network``) scale their energies by the energy fit's
ratio, their ``area_um2`` by the area table and their ``static_power_mW`` by the energy ratio too (the paper fits
no leakage; Accelergy's scaling does the same). ``DRAM``
figures are the DRAM process's (array, TSVs, the vault controller of an HMC's logic die as measured), which the
logic fits do not describe: they are kept as the file gives them, and the record says so.
"""

from __future__ import annotations

import ntframe
from ntframe.components import ComponentEstimate, ComponentEstimator, EstimateRequest
from ntframe.hardware.technology import (SOURCE, area_scale, energy_attributes, energy_scale, interpolated,
                                         scaled)


class TableEstimator(ComponentEstimator):
    name = "table"
    description = "the file's figures, scaled from the node they were measured at (Stillmaker & Baas 2017)"
    classes = ("SRAM", "regfile", "compute", "network", "DRAM")

    def estimate(self, request: EstimateRequest) -> ComponentEstimate:
        a = request.attributes
        energies = energy_attributes(a)
        area_um2, static_mW = a.get("area_um2"), a.get("static_power_mW")
        if request.component_class == "DRAM":
            return ComponentEstimate(energies, {"energy": 1.0, "area": 1.0},
                                     "the file's figures: a DRAM process, not scaled with the logic node",
                                     area_um2, static_mW)
        source, target = request.measured_at, request.target
        if source == target:
            return ComponentEstimate(energies, {"energy": 1.0, "area": 1.0}, "the file's figures, at the target",
                                     area_um2, static_mW)
        factor = energy_scale(source, target)
        area = area_scale(source.node_nm, target.node_nm)
        where = "interpolated between tabulated nodes, " if interpolated(source.node_nm) or \
            interpolated(target.node_nm) else ""
        return ComponentEstimate(scaled(energies, factor), {"energy": factor, "area": area},
                                 f"scaled x{factor:.4g} from {source.label()} to {target.label()} ({where}{SOURCE}; "
                                 "leakage by the energy factor, as Accelergy's scaling does)",
                                 None if area_um2 is None else area_um2 * area,
                                 None if static_mW is None else static_mW * factor)


@ntframe.hookimpl
def ntframe_register_component_estimators(register) -> None:
    register(TableEstimator)
