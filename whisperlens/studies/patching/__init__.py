"""Patching: the seed's override matrix done properly, position-restricted patches with baselines,
and English->Spanish transfer (issue 11; docs/patching.md).

pairs.py builds the word pairs from the corpus; outcome.py is the seed's binary metric;
matrix.py, positions.py and crosslingual.py run the sweeps on whisperlens.patching's API;
figures.py draws; pair.py is `whisperlens patching pair A.wav B.wav`; study.py ties them together.
"""

from .study import STUDY, PatchingConfig, PatchingResult

__all__ = ["STUDY", "PatchingConfig", "PatchingResult"]
