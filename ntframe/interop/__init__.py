"""Interop: other tools' formats (Timeloop's architecture, problem, mapping and statistics files) and running
external programs (argv lists, timeouts, process groups, kept inputs and the command to rerun)."""
