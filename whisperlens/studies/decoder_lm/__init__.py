"""Decoder as a language model (issue 9; docs/decoder.md).

prompts.py runs the decoder with no audio (three kinds) after a prompt; bigrams.py measures its
next-word distributions against the fortunes text; neighbours.py ranks the token embedding's
neighbours by several methods; similarity.py scores word pairs by sound (CMUdict) and meaning
(WordNet); neurons.py labels decoder MLP neurons with semantic classes; resources.py reads the
installed word resources; parts.py runs each measurement; figures.py draws them; study.py ties
them into the study's config, run and result; commands.py adds `bigrams` and `neighbours`.
"""

from .study import STUDY, DecoderLMConfig, DecoderLMResult

__all__ = ["STUDY", "DecoderLMConfig", "DecoderLMResult"]
