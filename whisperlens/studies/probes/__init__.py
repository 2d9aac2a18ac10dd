"""Linear probes per encoder layer (issue 12): see study.py and docs/probes.md."""

from .study import STUDY, ProbesConfig, ProbesResult

__all__ = ["STUDY", "ProbesConfig", "ProbesResult"]
