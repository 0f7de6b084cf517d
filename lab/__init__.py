"""The netcheck namespace lab (see lab/lab.py and docs/lab.md)."""

from .lab import Lab, LabConfig, LabError, LabHost, wait_for_ports

__all__ = ["Lab", "LabConfig", "LabError", "LabHost", "wait_for_ports"]
