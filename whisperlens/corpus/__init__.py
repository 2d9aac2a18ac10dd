"""A labelled speech corpus for probing Whisper: synthetic English from several engines and
voices with word and phone timings, other languages, minimal pairs, English/Spanish pairs,
non-speech, and loaders for real recordings.

    from whisperlens.corpus import CorpusConfig, build_corpus, Corpus
    build_corpus(CorpusConfig(out="corpus", clips=1000))
    corpus = Corpus.open("corpus")
    clip = corpus.select(set="english")[0]
    clip.audio, clip.words, clip.phones, clip.frame_phones(100)
"""

from .build import CorpusConfig, build_corpus, default_corpus_dir
from .corpus import Clip, Corpus
from .phones import ARPABET
from .selection import CorpusSelection
from .sets import SET_NAMES

__all__ = ["ARPABET", "SET_NAMES", "Clip", "Corpus", "CorpusConfig", "CorpusSelection", "build_corpus", "default_corpus_dir"]
