"""Cubes joined by HMC links: which cube reaches which, over how many links, and the path a transfer takes.

A :class:`Topology` has ``cubes`` nodes (0 .. cubes-1; ``host_star`` adds the host as node ``cubes``), each cube
with :attr:`Links.per_cube` link ports. Each kind spreads a cube's ports evenly over its neighbours (the ports over
the neighbour count, rounded down; at least one, else the kind cannot be built with these ports and says so), so a
pair of neighbours is joined by ``parallel`` links, each full duplex at :attr:`Links.bandwidth_GBps` per
direction:

* ``chain`` and ``ring``: neighbours i-1 and i+1 (the ring wraps), ``per_cube // 2`` links to each;
* ``mesh2d`` and ``torus2d``: the squarest grid of ``cubes`` (rows <= columns), up to four neighbours,
  ``per_cube // 4`` links to each (the torus wraps both dimensions);
* ``fully_connected``: every other cube, ``per_cube // (cubes - 1)`` links to each (an HMC's 4 links join at most
  5 cubes so);
* ``host_star``: every cube's ports to the host.

Routes are shortest paths: dimension order (columns, then rows; the shorter way round a torus, ties clockwise) on
the grids, the shorter way round a ring, through the host on a star.

The link figures' sources (the HMC 2.1 specification as Ramulator 1's hmc branch, DRAMSim3 and CasHMC implement
it; ``docs/sources.md``): 4 links per cube, 16 lanes per full-width link, lanes of 12.5, 15, 25, 28 or 30 Gb/s,
16-byte FLITs, one FLIT of header and tail per packet, at most 128 bytes of data per packet [S]; 5 pJ/bit on the
wire (CasHMC's SerDes figure; Micron expected 5-10 pJ/bit for board links) [S]; 4.6 ns per link (gem5's HMC
link: 1.6 ns of serialisation logic and 3 ns of board wiring) [S].
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

TOPOLOGIES = ("chain", "ring", "mesh2d", "torus2d", "fully_connected", "host_star")
LANE_RATES_Gbps = (12.5, 15.0, 25.0, 28.0, 30.0)
"""The lane rates the HMC 2.1 specification allows [S]."""


@dataclass(frozen=True)
class Links:
    """One cube's links: how many, how wide, how fast, what a bit and a hop cost."""

    per_cube: int = 4
    lanes: int = 16
    lane_Gbps: float = 15.0
    energy_pJ_per_bit: float = 5.0
    latency_ns: float = 4.6
    flit_bytes: int = 16
    packet_payload_bytes: int = 128
    overhead_flits: int = 1

    def __post_init__(self) -> None:
        for name in ("per_cube", "lanes", "lane_Gbps", "flit_bytes", "packet_payload_bytes"):
            if not getattr(self, name) > 0:
                raise ValueError(f"links.{name} must be positive, not {getattr(self, name)}")
        for name in ("energy_pJ_per_bit", "latency_ns", "overhead_flits"):
            if not getattr(self, name) >= 0 or not math.isfinite(getattr(self, name)):
                raise ValueError(f"links.{name} must be a finite number, 0 or more, not {getattr(self, name)}")

    @property
    def bandwidth_GBps(self) -> float:
        """Raw bandwidth of one link in one direction (10^9 bytes per second): lanes x lane rate / 8."""
        return self.lanes * self.lane_Gbps / 8

    def wire_bytes(self, payload_bytes: float) -> float:
        """Bytes on the wire for ``payload_bytes`` of data: whole FLITs of data per packet of at most
        :attr:`packet_payload_bytes`, and :attr:`overhead_flits` FLITs of header and tail per packet."""
        if payload_bytes <= 0:
            return 0.0
        full, rest = divmod(payload_bytes, self.packet_payload_bytes)
        flits = full * (math.ceil(self.packet_payload_bytes / self.flit_bytes) + self.overhead_flits)
        if rest:
            flits += math.ceil(rest / self.flit_bytes) + self.overhead_flits
        return flits * self.flit_bytes


Edge = tuple[int, int]


@dataclass(frozen=True)
class Topology:
    kind: str
    cubes: int
    links: Links = field(default_factory=Links)

    def __post_init__(self) -> None:
        if self.kind not in TOPOLOGIES:
            raise ValueError(f"topology {self.kind!r}: one of {', '.join(TOPOLOGIES)}")
        if self.cubes < 1:
            raise ValueError(f"cubes must be 1 or more, not {self.cubes}")
        wanted = self._neighbour_count()
        if wanted and self.links.per_cube // wanted < 1:
            raise ValueError(f"{self.kind} of {self.cubes} cubes joins each cube to {wanted} others, but a cube has "
                             f"{self.links.per_cube} links (links.per_cube)")

    # --- the graph -----------------------------------------------------------------------------------------

    @property
    def host(self) -> int | None:
        """The host's node (``host_star``), else None."""
        return self.cubes if self.kind == "host_star" else None

    @property
    def grid(self) -> tuple[int, int]:
        """(rows, columns) of the grids: the squarest factorisation of ``cubes``, rows <= columns."""
        rows = max(r for r in range(1, math.isqrt(self.cubes) + 1) if self.cubes % r == 0)
        return rows, self.cubes // rows

    def _neighbour_count(self) -> int:
        """The neighbours the kind spreads a cube's ports over (0: one cube, nothing to join)."""
        if self.cubes == 1:
            return 0
        return {"chain": 2, "ring": 2, "mesh2d": 4, "torus2d": 4, "fully_connected": self.cubes - 1,
                "host_star": 1}[self.kind]

    @property
    def parallel(self) -> int:
        """Links joining a pair of neighbours."""
        wanted = self._neighbour_count()
        return self.links.per_cube // wanted if wanted else 0

    def neighbours(self, node: int) -> list[int]:
        p = self.cubes
        if p == 1:
            return []
        if self.kind == "host_star":
            return list(range(p)) if node == p else [p]
        if self.kind == "fully_connected":
            return [n for n in range(p) if n != node]
        if self.kind in ("chain", "ring"):
            out = {n for n in (node - 1, node + 1) if 0 <= n < p}
            if self.kind == "ring":
                out |= {(node - 1) % p, (node + 1) % p}
            return sorted(out - {node})
        rows, cols = self.grid
        r, c = divmod(node, cols)
        wrap = self.kind == "torus2d"
        out = set()
        for dr, dc in ((-1, 0), (1, 0), (0, -1), (0, 1)):
            rr, cc = r + dr, c + dc
            if wrap:
                rr, cc = rr % rows, cc % cols
            if 0 <= rr < rows and 0 <= cc < cols:
                out.add(rr * cols + cc)
        return sorted(out - {node})

    def edges(self) -> dict[Edge, int]:
        """Every directed edge (u, v) with the links joining u and v (each link full duplex)."""
        nodes = range(self.cubes + (1 if self.host is not None else 0))
        return {(u, v): self.links.per_cube if self.host in (u, v) else self.parallel
                for u in nodes for v in self.neighbours(u)}

    # --- routes --------------------------------------------------------------------------------------------

    def route(self, src: int, dst: int) -> list[Edge]:
        """The directed edges a transfer from ``src`` to ``dst`` crosses, in order (none when they are one)."""
        if src == dst:
            return []
        if self.kind == "host_star":
            return [(src, self.cubes), (self.cubes, dst)]
        if self.kind == "fully_connected":
            return [(src, dst)]
        if self.kind in ("chain", "ring"):
            return self._walk_line(src, dst, self.cubes, self.kind == "ring", lambda i: i)
        rows, cols = self.grid
        (r0, c0), (r1, c1) = divmod(src, cols), divmod(dst, cols)
        wrap = self.kind == "torus2d"
        path = self._walk_line(c0, c1, cols, wrap, lambda c: r0 * cols + c)        # along the row first
        return path + self._walk_line(r0, r1, rows, wrap, lambda r: r * cols + c1)  # then the column

    @staticmethod
    def _walk_line(a: int, b: int, n: int, wrap: bool, node) -> list[Edge]:
        """Steps from position ``a`` to ``b`` on a line of ``n`` (a ring when ``wrap``: the shorter way, ties
        forward), as edges between ``node(position)``."""
        if a == b:
            return []
        step = 1 if b > a else -1
        if wrap:
            forward = (b - a) % n
            step = 1 if forward <= n - forward else -1
        out, at = [], a
        while at != b:
            nxt = (at + step) % n if wrap else at + step
            out.append((node(at), node(nxt)))
            at = nxt
        return out

    def ring_order(self) -> list[int]:
        """An order of the cubes in which consecutive ones (and the last and the first, where the kind closes a
        ring) are neighbours where the topology allows it: 0 .. cubes-1, snaking the grid's rows."""
        if self.kind not in ("mesh2d", "torus2d"):
            return list(range(self.cubes))
        rows, cols = self.grid
        return [r * cols + (c if r % 2 == 0 else cols - 1 - c) for r in range(rows) for c in range(cols)]
