"""Layers: the decoder logit lens, the encoder lens and layer removal (issue 10; docs/layers.md).

lens.py reads the decoder's residual stream through its final LayerNorm and unembedding;
removal.py lists the configurations (blocks kept per stack) and decodes every clip under each,
batched, from one encoder pass per batch; metrics.py scores the transcripts; figures.py draws
them; study.py ties them into the study's config, run and result.
"""

from .study import STUDY, LayersConfig, LayersResult

__all__ = ["STUDY", "LayersConfig", "LayersResult"]
