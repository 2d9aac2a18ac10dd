"""The worked example of a study (docs/architecture.md walks through it): transcribe one audio
file with word timestamps, cache the encoder's residual stream, and plot its norm over time.

    whisperlens example run                      # the bundled example, tiny.en
    whisperlens example run --audio talk.flac --model base
"""

from __future__ import annotations

import importlib.resources
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..study import Audio, Figure, ModelStudyConfig, Result, Study, Table, Text, new_figure, save_figure
from ..transcripts import word_timings


def bundled_example() -> Path:
    return Path(str(importlib.resources.files("whisperlens") / "data" / "example.flac"))


@dataclass
class ExampleConfig(ModelStudyConfig):
    """Transcribe an audio file and look at the encoder's residual stream on it."""

    audio: str | None = None  # an audio file (default: the bundled example, 'Hot ones...')
    hooks: str = "encoder.blocks.*.hook_resid_post"  # hook names or a glob to summarise

    def validate(self) -> None:
        super().validate()
        from ..audio import load_audio

        load_audio(self.audio or bundled_example())  # a missing or broken file fails before any work


class ExampleResult(Result):
    study = "example"
    config_type = ExampleConfig

    def views(self):
        s = self.summary
        norms = Table(["hook", "mean ‖x‖", "max ‖x‖"], [[h["name"], h["mean_norm"], h["max_norm"]] for h in s["hooks"]])
        return [
            Audio("audio" + s["audio_suffix"], "the audio"),
            Text(s["text"]),
            Figure("norms.png", "Residual-stream norm per encoder layer over the audio's duration", numbers=norms,
                   caption="Norm of each layer's output at every 20 ms encoder position covered by the audio."),
            Table(["word", "start (s)", "end (s)"], [[w["word"], w["start"], w["end"]] for w in s["words"]],
                  caption="Word timestamps"),
        ]


def run(config: ExampleConfig, context) -> ExampleResult:
    import whisper

    from ..audio import encoder_positions, load_audio, log_mel

    model = context.model(config.model)
    source = Path(config.audio or bundled_example())
    audio = load_audio(source)
    language = None if model.is_multilingual else "en"
    transcript = whisper.transcribe(model, audio, language=language, word_timestamps=True, fp16=False)
    _, cache = model.run_with_cache(log_mel(audio), names_filter=config.hooks)
    covered = encoder_positions(len(audio))  # positions past the audio only see padding
    names = [n for n in cache.keys() if cache[n].dim() == 3]
    norms = np.stack([cache[n][0, :covered].norm(dim=-1).numpy() for n in names])

    folder = context.folder
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, folder / ("audio" + source.suffix))
    figure, axes = new_figure()
    seconds = (np.arange(covered) + 0.5) * 0.02
    for name, row in zip(names, norms):
        axes.plot(seconds, row, label=name.removeprefix("encoder."), linewidth=1)
    axes.set(xlabel="time (s)", ylabel="‖residual‖")
    axes.legend(fontsize=7)
    save_figure(figure, folder, "norms.png")
    words = word_timings(transcript)
    summary = {"text": transcript["text"].strip(), "language": transcript["language"], "words": words,
               "audio_suffix": source.suffix,
               "hooks": [{"name": n, "mean_norm": round(float(r.mean()), 4), "max_norm": round(float(r.max()), 4)}
                         for n, r in zip(names, norms)]}
    return ExampleResult(config, summary, {"norms": norms.astype(np.float32)}, folder)


STUDY = Study("example", "The bundled example", ExampleConfig, run, ExampleResult,
              description="Transcription with word timestamps, and the encoder's residual stream, on one audio file.")
