"""Word error rate of a Whisper model on the corpus's English clips, per engine and voice: a check
that each synthetic voice is intelligible, and a record of how hard each one is.

    whisperlens wer run                        # tiny.en, the first 40 English clips of each voice
    whisperlens wer run --per-voice 100 --model base
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..corpus.selection import CorpusSelection
from ..errors import WhisperLensError
from ..study import CorpusStudyConfig, Figure, Result, Study, Table, new_figure, save_figure
from ..transcripts import transcribe_clips, word_errors


@dataclass
class WerConfig(CorpusStudyConfig):
    """Word error rate per engine and voice on the first clips of each voice."""

    corpus: CorpusSelection = field(default_factory=lambda: CorpusSelection(per_voice=40))

    def validate(self) -> None:
        super().validate()
        if self.corpus.per_voice is None:
            raise WhisperLensError("--per-voice is required: WER is measured on the first N clips of each voice")


def measure_wer(model, clips, progress=None) -> dict:
    """Pooled WER (errors / reference words) per engine voice and per engine, texts normalised by
    Whisper's English normaliser."""
    from whisper.normalizers import EnglishTextNormalizer

    normalise = EnglishTextNormalizer()
    rows, engines = {}, {}
    hypotheses = transcribe_clips(model, clips, progress)
    for clip, hypothesis in zip(clips, hypotheses):
        voice = f"{clip.engine}/{clip.voice}"
        reference = normalise(clip.text).split()
        row = rows.setdefault(voice, {"clips": 0, "words": 0, "errors": 0})
        row["clips"] += 1
        row["words"] += len(reference)
        row["errors"] += word_errors(reference, normalise(hypothesis).split())
    rows = dict(sorted(rows.items()))
    for voice, row in rows.items():
        engine = engines.setdefault(voice.split("/")[0], {"clips": 0, "words": 0, "errors": 0})
        for key in ("clips", "words", "errors"):
            engine[key] += row[key]
    for row in [*rows.values(), *engines.values()]:
        row["wer"] = round(row["errors"] / max(row["words"], 1), 4)
    return {"per_voice": rows, "per_engine": dict(sorted(engines.items())), "hypotheses": hypotheses}


class WerResult(Result):
    study = "wer"
    config_type = WerConfig

    def views(self):
        def table(rows: dict, what: str) -> Table:
            return Table([what, "clips", "words", "errors", "WER %"],
                         [[name, r["clips"], r["words"], r["errors"], round(100 * r["wer"], 1)] for name, r in rows.items()])

        s = self.summary
        return [Figure("wer.png", f"Word error rate of {self.config.model.model} per synthetic voice",
                       numbers=table(s["per_voice"], "engine / voice"),
                       caption=f"Pooled over the first {self.config.corpus.per_voice} English clips of each voice; "
                               "Whisper's English normaliser on both sides."),
                table(s["per_engine"], "engine")]


def run(config: WerConfig, context) -> WerResult:
    model = context.model(config.model)
    clips = [clip for clip in context.corpus(config.corpus) if clip.language == "en" and clip.words]
    if not clips:
        raise WhisperLensError("no English clips with words in the selection")
    summary = measure_wer(model, clips, context.progress)
    folder = context.folder
    folder.mkdir(parents=True, exist_ok=True)
    figure, axes = new_figure(7, 2.8)
    names = list(summary["per_voice"])
    axes.barh(names, [100 * summary["per_voice"][n]["wer"] for n in names], color="#4a7ab5")
    axes.invert_yaxis()
    axes.set(xlabel="WER (%)")
    save_figure(figure, folder, "wer.png")
    return WerResult(config, summary, folder=folder)


STUDY = Study("wer", "Word error rate per voice", WerConfig, run, WerResult,
              description="How well the model transcribes each synthetic voice of the corpus.")
