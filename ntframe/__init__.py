"""ntframe: simulate deep-learning training on NeuroTrainer-style HMC logic-layer accelerators. The frame
(host, hookspecs, components, spec, runner, bundle, API, CLI) lives here, one wing per pipeline stage below."""

from typing import TYPE_CHECKING

from ntframe.hookspecs import hookimpl

__version__ = "0.1.0"

_API = ("run", "validate", "compare", "load", "load_architecture", "plugin_host", "Results")

# the Python API (ntframe.api), imported on first use: importing ntframe loads nothing else
if TYPE_CHECKING:
    from ntframe.api import Results, compare, load, load_architecture, plugin_host, run, validate


def __getattr__(name: str):
    if name in _API:
        from ntframe import api
        return getattr(api, name)
    raise AttributeError(f"module 'ntframe' has no attribute '{name}'")


__all__ = ["hookimpl", "__version__", *_API]
