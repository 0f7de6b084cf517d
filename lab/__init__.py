"""The netcheck namespace lab (see lab/lab.py and docs/lab.md)."""

from .lab import Lab, LabConfig, LabError, LabHost

__all__ = ["Lab", "LabConfig", "LabError", "LabHost"]
