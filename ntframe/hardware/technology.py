"""Technology nodes and the scaling of energy and area between them: the fits of Stillmaker & Baas,
"Scaling equations for the accurate prediction of CMOS device performance from 180 nm to 7 nm", Integration 58
(2017) 74-81.

The facts, and where ntframe took them from (the paper's tables as public code reproduces them; the code here is
ntframe's own):

* Energy per operation as a polynomial in the supply voltage ``V``, per node: ``e2 V^2 + e1 V + e0`` (bulk 180-65
  nm; high-performance devices from 45 nm down). (The paper fits delay too; nothing here scales a clock, so its
  coefficients are left out.) Coefficients as in wromaszkan/nodeScale (``nodeScale.py`` ``depCoeffDict``, commit
  0676b74); the energy rows are the paper's Table 5 (its erratum's worked example, 32 nm at 0.9 V against 65 nm at
  1.3 V, 0.4571 / 2.604, reproduces from them) and Accelergy's hwcomponents carries the same values.
* Area: a node-to-node factor table (nodeScale's ``areaDict``; Accelergy's ``AREA_SCALING`` holds the same
  130-7 nm block), independent of the voltage.
* Nominal supply per node: the PTM models' (ptm.asu.edu: bulk 180 nm 1.8 V, 130 nm 1.3 V, 90 nm 1.2 V, 65 nm
  1.1 V; HP 45 nm 1.0 V, 32 nm 0.9 V; PTM-MG FinFET 20 nm 0.9 V, 16 nm 0.85 V, 14 nm 0.8 V, 10 nm 0.75 V, 7 nm
  0.7 V), used where a technology gives no voltage.

The fits are used only as ratios (a figure at node A times ``f(B) / f(A)``). A node between two tabulated ones
(15 nm, 22 nm, 28 nm...) is interpolated geometrically in the node (the logarithm of each fitted figure, and the
nominal voltage, linear in the logarithm of the node) and says so; a node outside 7-180 nm is refused with the
range, as is a voltage outside 0.5-2.0 V (beyond the PTM models' nominal supplies, where the fits were not made).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ntframe.errors import SpecError

# node: (energy e2, e1, e0), nominal supply in V
_FITS: dict[int, tuple[tuple[float, float, float], float]] = {
    180: ((0.0, 24.64, -17.98), 1.8),
    130: ((7.171, -6.709, 2.904), 1.3),
    90: ((4.762, -4.781, 2.092), 1.2),
    65: ((3.755, -4.398, 1.975), 1.1),
    45: ((1.018, -0.3107, 0.1539), 1.0),
    32: ((0.8367, -0.4341, 0.1701), 0.9),
    20: ((0.373, -0.1582, 0.04104), 0.9),
    16: ((0.2958, -0.1241, 0.03024), 0.85),
    14: ((0.2363, -0.09675, 0.02239), 0.8),
    10: ((0.2068, -0.09311, 0.02375), 0.75),
    7: ((0.1776, -0.09097, 0.02447), 0.7),
}
NODES = tuple(sorted(_FITS, reverse=True))
"""The tabulated nodes in nm, largest first."""
# area at the row's node times _AREA[row][column] = area at the column's node (columns in NODES' order)
_AREA: dict[int, tuple[float, ...]] = {
    180: (1, 0.34, 0.15, 0.08, 0.053, 0.025, 0.011, 0.01, 0.0093, 0.0055, 0.0032),
    130: (2.9, 1, 0.44, 0.23, 0.16, 0.072, 0.033, 0.03, 0.027, 0.016, 0.0092),
    90: (6.6, 2.3, 1, 0.53, 0.35, 0.16, 0.075, 0.067, 0.061, 0.036, 0.021),
    65: (12, 4.3, 1.9, 1, 0.66, 0.31, 0.14, 0.13, 0.12, 0.068, 0.039),
    45: (19, 6.4, 2.8, 1.5, 1, 0.46, 0.21, 0.19, 0.17, 0.1, 0.059),
    32: (40, 14, 6.1, 3.3, 2.2, 1, 0.46, 0.41, 0.38, 0.22, 0.13),
    20: (88, 30, 13, 7.1, 4.7, 2.2, 1, 0.89, 0.82, 0.48, 0.28),
    16: (99, 34, 15, 7.9, 5.3, 2.4, 1.1, 1, 0.91, 0.54, 0.31),
    14: (110, 37, 16, 8.7, 5.8, 2.7, 1.2, 1.1, 1, 0.59, 0.34),
    10: (180, 63, 28, 15, 9.8, 4.5, 2.1, 1.9, 1.7, 1, 0.58),
    7: (320, 110, 48, 25, 17, 7.8, 3.6, 3.2, 2.9, 1.7, 1),
}
VOLTS = (0.5, 2.0)
"""Supply voltages the scaling accepts, in V."""
SOURCE = "Stillmaker & Baas 2017, high-performance fits"


@dataclass(frozen=True)
class Technology:
    """A process node and supply voltage (None: the node's nominal supply)."""

    node_nm: float
    supply_V: float | None = None

    @property
    def volts(self) -> float:
        return self.supply_V if self.supply_V is not None else nominal_supply_V(self.node_nm)

    def label(self) -> str:
        return f"{self.node_nm:g} nm, {self.volts:.3g} V"


def _neighbours(node_nm: float) -> tuple[int, int, float]:
    """The tabulated nodes around ``node_nm`` (larger, smaller) and the weight of the smaller one, geometric."""
    if not NODES[-1] <= node_nm <= NODES[0]:
        raise SpecError(f"technology node {node_nm:g} nm is outside the range the scaling fits cover "
                        f"({NODES[-1]}-{NODES[0]} nm; Stillmaker & Baas 2017)")
    for big, small in zip(NODES, NODES[1:]):
        if small <= node_nm <= big:
            if node_nm in (big, small):
                return int(node_nm), int(node_nm), 0.0
            return big, small, math.log(big / node_nm) / math.log(big / small)
    return NODES[-1], NODES[-1], 0.0


def _blend(node_nm: float, figure) -> float:
    big, small, w = _neighbours(node_nm)
    a, b = figure(big), figure(small)
    return a if w == 0 else math.exp((1 - w) * math.log(a) + w * math.log(b))


def interpolated(node_nm: float) -> bool:
    """Whether ``node_nm`` lies between two tabulated nodes (its figures are interpolated)."""
    big, small, w = _neighbours(node_nm)
    return w != 0


def nominal_supply_V(node_nm: float) -> float:
    return _blend(node_nm, lambda n: _FITS[n][1])


def _check_volts(t: Technology) -> float:
    v = t.volts
    if not VOLTS[0] <= v <= VOLTS[1]:
        raise SpecError(f"supply voltage {v:g} V is outside the range the scaling accepts ({VOLTS[0]}-{VOLTS[1]} V)")
    return v


def check(t: Technology) -> None:
    """:class:`SpecError` naming the range where ``t`` is outside what the fits cover."""
    _neighbours(t.node_nm)
    _check_volts(t)


def energy_fit(t: Technology) -> float:
    """The fitted energy per operation at ``t`` (relative units: only ratios mean anything)."""
    v = _check_volts(t)
    return _blend(t.node_nm, lambda n: _FITS[n][0][0] * v * v + _FITS[n][0][1] * v + _FITS[n][0][2])


def energy_scale(source: Technology, target: Technology) -> float:
    """What an energy measured at ``source`` is multiplied by at ``target``."""
    return energy_fit(target) / energy_fit(source)


def area_scale(source_nm: float, target_nm: float) -> float:
    """What an area measured at ``source_nm`` is multiplied by at ``target_nm`` (geometric between the tabulated
    nodes on both sides)."""
    column = {n: i for i, n in enumerate(NODES)}
    return _blend(source_nm, lambda s: _blend(target_nm, lambda t: _AREA[s][column[t]]))


@dataclass(frozen=True)
class EstimateRequest:
    """One component of an architecture file, to be estimated at the architecture's technology."""

    component: str                  # its name in the file
    component_class: str            # DRAM, SRAM, regfile, compute or network
    attributes: dict                # the file's attributes (its figures measured at ``measured_at``)
    measured_at: Technology         # the technology the file's figures come from
    target: Technology              # the architecture's
    clock_GHz: float                # the architecture's clock


@dataclass(frozen=True)
class ComponentEstimate:
    """What an estimator returns: the component's energy attributes at the target technology (keys as
    :func:`energy_attributes` gives them; a compute unit's per-precision tables as tables; the ones it returns
    replace the file's), the scale factors applied (``{"energy": ..., "area": ...}``, 1.0 where nothing was
    scaled), its source, and per instance of the component its area and static (leakage) power where it knows
    them (None where not)."""

    energies: dict
    scale: dict
    source: str
    area_um2: float | None = None
    static_power_mW: float | None = None


def energy_attributes(attributes: dict) -> dict:
    """The energy figures among a component's attributes: ``*_energy_pJ_per_bit``, ``*_energy_pJ`` (numbers, or
    per-precision tables as a compute unit's), the absent ones left out."""
    return {k: v for k, v in attributes.items()
            if v is not None and (k.endswith("_energy_pJ_per_bit") or k.endswith("_energy_pJ"))}


def scaled(energies: dict, factor: float) -> dict:
    """``energies`` (as :func:`energy_attributes` gives them) times ``factor``."""
    return {k: {bits: e * factor for bits, e in v.items()} if isinstance(v, dict) else v * factor
            for k, v in energies.items()}


__all__ = ["ComponentEstimate", "EstimateRequest", "NODES", "SOURCE", "Technology", "area_scale", "check",
           "energy_attributes", "energy_scale", "interpolated", "nominal_supply_V", "scaled"]
