"""Hardware: architecture files in Timeloop/Accelergy vocabulary, validated (every number with its source) and
flattened into storage levels, fan-outs, compute units and the logic-die network."""

from ntframe.hardware.architecture import Architecture, ComputeUnit, Interconnect, StorageLevel, load_architecture

__all__ = ["Architecture", "ComputeUnit", "Interconnect", "StorageLevel", "load_architecture"]
