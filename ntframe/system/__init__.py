"""System: several cubes joined by HMC links — the topology (which cube reaches which, over how many links of what
bandwidth, latency and energy) and the collectives an interconnect model prices on it."""

from ntframe.system.collectives import COLLECTIVES, Collective, CollectiveCost, Flow
from ntframe.system.topology import TOPOLOGIES, Links, Topology

__all__ = ["COLLECTIVES", "Collective", "CollectiveCost", "Flow", "Links", "TOPOLOGIES", "Topology"]
