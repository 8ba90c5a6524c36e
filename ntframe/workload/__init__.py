"""Workloads: the operation IR (networks of layers, loop-nest operations), the shape-inferring network builder
every frontend uses, and the training expansion of a network into one step's operations per phase."""

from ntframe.workload.builder import NetworkBuilder, ShapeError
from ntframe.workload.ir import PHASES, Layer, Network, NetworkInput, Operation, OpKind, Phase, TensorAccess

__all__ = ["PHASES", "Layer", "Network", "NetworkBuilder", "NetworkInput", "OpKind", "Operation", "Phase",
           "ShapeError", "TensorAccess"]
