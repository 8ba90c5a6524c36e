"""ntframe: simulate deep-learning training on NeuroTrainer-style HMC logic-layer accelerators."""

from ntframe.hookspecs import hookimpl

__version__ = "0.1.0"

__all__ = ["hookimpl", "__version__"]
