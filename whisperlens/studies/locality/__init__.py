"""The encoder locality study (issue 8; docs/locality.md).

heads.py: per-head locality statistics and the local/global rule; sweep.py: the ±k band masks
decoded over clips; removal.py and targeting.py: word removal in embedding space; relevance.py:
relevance maps and their perturbation test; examples.py: the seeds' one-clip demonstrations;
encode.py and scoring.py: what they share; study.py: config, run and result.

Every transcript is greedy and predicts timestamps, as openai's `transcribe` does (and the seeds
did): on the bundled example, decoding without them turns "Hot ones" into "Harbuns" and frames
0-50 removed into "you".
"""

from .study import STUDY, LocalityConfig, LocalityResult

__all__ = ["STUDY", "LocalityConfig", "LocalityResult"]
