"""Word error rate of a Whisper model on the corpus's English clips, per engine and voice:
a check that each voice is intelligible, and a record of how hard each one is."""

from __future__ import annotations

from .align import sample_per_voice
from .corpus import Corpus


def word_errors(reference: list[str], hypothesis: list[str]) -> int:
    """Levenshtein distance over words (substitutions + deletions + insertions); written
    out because it is ten lines and the alternatives (jiwer) would be a new dependency."""
    previous = list(range(len(hypothesis) + 1))
    for i, ref_word in enumerate(reference, 1):
        current = [i] + [0] * len(hypothesis)
        for j, hyp_word in enumerate(hypothesis, 1):
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ref_word != hyp_word))
        previous = current
    return previous[-1]


# A 2 s clip holds a dozen words at most; the cap stops a repetition loop early.
MAX_TOKENS = 48
BATCH_SIZE = 16


def transcribe_clips(model, clips) -> list[str]:
    """Greedy transcripts, without timestamps, in batches. A clip fits in one 30 s window,
    where openai-whisper's `transcribe` (one clip at a time) does the same decoding; batching
    shares the encoder's fixed 30 s cost."""
    import torch
    import whisper

    options = whisper.DecodingOptions(language="en", without_timestamps=True, fp16=False,
                                      temperature=0.0, sample_len=MAX_TOKENS)
    texts = []
    for start in range(0, len(clips), BATCH_SIZE):
        batch = clips[start: start + BATCH_SIZE]
        mels = torch.stack([
            whisper.log_mel_spectrogram(whisper.pad_or_trim(torch.from_numpy(clip.audio)), model.dims.n_mels)
            for clip in batch
        ])
        with torch.no_grad():
            texts.extend(result.text for result in whisper.decode(model, mels, options))
    return texts


def wer_report(corpus: Corpus, model_name: str = "tiny.en", per_voice: int = 40, model=None) -> dict:
    """Pooled WER (errors / reference words) per engine voice and per engine, on the first
    `per_voice` English clips of each voice, texts normalised by Whisper's English normaliser."""
    import whisperlens
    from whisper.normalizers import EnglishTextNormalizer

    normalise = EnglishTextNormalizer()
    model = model if model is not None else whisperlens.load_model(model_name)
    rows, engines = {}, {}
    for voice, clips in sample_per_voice(corpus.select(set="english"), per_voice).items():
        errors = words = 0
        for clip, hypothesis in zip(clips, transcribe_clips(model, clips)):
            reference = normalise(clip.text).split()
            errors += word_errors(reference, normalise(hypothesis).split())
            words += len(reference)
        rows[voice] = {"clips": len(clips), "words": words, "errors": errors, "wer": round(errors / max(words, 1), 4)}
        engine = engines.setdefault(voice.split("/")[0], {"clips": 0, "words": 0, "errors": 0})
        for key in ("clips", "words", "errors"):
            engine[key] += rows[voice][key]
    for engine in engines.values():
        engine["wer"] = round(engine["errors"] / max(engine["words"], 1), 4)
    return {"model": model_name, "per_voice": rows, "per_engine": dict(sorted(engines.items()))}


def format_wer_report(report: dict) -> str:
    header = f"{'engine / voice':<20} {'clips':>5} {'words':>6} {'errors':>6} {'WER':>7}"
    lines = [f"model: {report['model']}", header, "-" * len(header)]
    for table in ("per_voice", "per_engine"):
        for name, row in report[table].items():
            lines.append(f"{name:<20} {row['clips']:>5} {row['words']:>6} {row['errors']:>6} {row['wer'] * 100:>6.1f}%")
        lines.append("")
    return "\n".join(lines).rstrip()
