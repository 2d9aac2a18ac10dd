"""How far the synthesizers' own word and phone timings agree with pocketsphinx's forced
alignment, per engine and voice: the check that the corpus's frame labels are usable.

    whisperlens align run                  # the first 40 English clips of each voice
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..corpus.selection import CorpusSelection
from ..errors import WhisperLensError
from ..study import Result, Study, StudyConfig, Table


@dataclass
class AlignConfig(StudyConfig):
    """Engine timings against pocketsphinx's forced alignment (no Whisper model involved)."""

    corpus: CorpusSelection = field(default_factory=lambda: CorpusSelection(per_voice=40))

    def validate(self) -> None:
        super().validate()
        if self.corpus.per_voice is None:
            raise WhisperLensError("--per-voice is required: alignment is checked on the first N clips of each voice")


class AlignResult(Result):
    study = "align"
    config_type = AlignConfig

    def views(self):
        header = ["clips", "aligned", "word boundaries", "median word ms", "phone boundaries", "median phone ms"]

        def rows(table: dict) -> list[list]:
            return [[name, *(row.get(key, "") if row.get(key) is not None else "–" for key in
                             ("clips", "aligned", "word_boundaries", "median_word_ms", "phone_boundaries", "median_phone_ms"))]
                    for name, row in table.items()]

        return [Table(["engine / voice", *header], rows(self.summary["per_voice"]), caption="Per voice"),
                Table(["engine", *header], rows(self.summary["per_engine"]), caption="Per engine, pooled")]


def run(config: AlignConfig, context) -> AlignResult:
    from ..corpus.align import alignment_report

    report = alignment_report(context.corpus(config.corpus), per_voice=config.corpus.per_voice)
    return AlignResult(config, report, folder=context.folder)


STUDY = Study("align", "Corpus alignment check", AlignConfig, run, AlignResult,
              description="Median disagreement between the engines' timings and pocketsphinx's, in milliseconds.")
