"""The one error hierarchy of ntframe.

Every error a user can act on is an :class:`NtframeError`; the CLI prints its message (no traceback unless
``--debug``) and exits with its ``exit_code``.
"""

from __future__ import annotations


class NtframeError(Exception):
    """Base of every error ntframe raises on purpose."""

    exit_code = 1


class SpecError(NtframeError):
    """Bad user input: a spec, an architecture file, a workload file. Exit code 2."""

    exit_code = 2

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None,
                 path: str | None = None) -> None:
        self.file, self.line, self.path, self.message = file, line, path, message
        where = ""
        if file:
            where = f"{file}:{line}" if line else file
        prefix = f"{where}: " if where else ""
        at = f"at '{path}': " if path else ""
        super().__init__(f"{prefix}{at}{message}")


class PluginError(NtframeError):
    """A plugin failed to load, to register, or to do its work. Names the plugin and component."""

    def __init__(self, message: str, *, plugin: str | None = None, component: str | None = None) -> None:
        self.plugin, self.component = plugin, component
        who = " / ".join(x for x in (f"plugin '{plugin}'" if plugin else "",
                                     f"component '{component}'" if component else "") if x)
        super().__init__(f"{who}: {message}" if who else message)


class ToolError(NtframeError):
    """An optional external tool is missing or failed. Carries the fix (what to install or set)."""

    def __init__(self, message: str, *, fix: str | None = None) -> None:
        self.fix = fix
        super().__init__(f"{message}\n  fix: {fix}" if fix else message)


class MappingError(NtframeError, ValueError):
    """No mapping can satisfy an operation's mapping constraints, or a mapper cannot express them."""


__all__ = ["MappingError", "NtframeError", "PluginError", "SpecError", "ToolError"]
