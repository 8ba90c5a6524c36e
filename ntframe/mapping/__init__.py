"""Mapping: how an operation's loops split over storage levels and fan-outs (``Mapping``), the vectorised
mapping space and its reuse analysis (``mapspace``, ``nest``), and the seeded, budgeted search (``search``)."""

from ntframe.mapping.mapping import Factors, LevelMapping, Mapping, structural_problems

__all__ = ["Factors", "LevelMapping", "Mapping", "structural_problems"]
