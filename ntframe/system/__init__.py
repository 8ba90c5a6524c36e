"""System: several cubes joined by HMC links — the topology (which cube reaches which, over how many links of what
bandwidth, latency and energy) and the collectives an interconnect model prices on it."""

from ntframe.system.collectives import (ALGORITHMS, COLLECTIVES, Collective, CollectiveCost, Flow, algorithm_steps,
                                        step_traffic, wire_traffic)
from ntframe.system.topology import TOPOLOGIES, Links, Topology

__all__ = ["ALGORITHMS", "COLLECTIVES", "Collective", "CollectiveCost", "Flow", "Links", "TOPOLOGIES", "Topology",
           "algorithm_steps", "step_traffic", "wire_traffic"]
