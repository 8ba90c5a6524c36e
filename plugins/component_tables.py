"""The ``table`` component estimator: the architecture file's own figures, each measured at a technology node
(the component's ``technology``, else the architecture's), scaled to the architecture's node and supply with
Stillmaker & Baas's fits (:mod:`ntframe.hardware.technology`).

Logic components (``SRAM``, ``regfile``, ``compute``, ``network``) scale by the energy fit's ratio. ``DRAM``
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
        energies = energy_attributes(request.attributes)
        if request.component_class == "DRAM":
            return ComponentEstimate(energies, {"energy": 1.0, "area": 1.0},
                                     "the file's figures: a DRAM process, not scaled with the logic node")
        source, target = request.measured_at, request.target
        factor = energy_scale(source, target)
        area = area_scale(source.node_nm, target.node_nm)
        if source == target:
            return ComponentEstimate(energies, {"energy": 1.0, "area": 1.0}, "the file's figures, at the target")
        where = "interpolated between tabulated nodes, " if interpolated(source.node_nm) or \
            interpolated(target.node_nm) else ""
        return ComponentEstimate(scaled(energies, factor), {"energy": factor, "area": area},
                                 f"scaled x{factor:.4g} from {source.label()} to {target.label()} ({where}{SOURCE})")


@ntframe.hookimpl
def ntframe_register_component_estimators(register) -> None:
    register(TableEstimator)
