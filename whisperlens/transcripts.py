"""Transcripts of corpus clips and how they went wrong: batched greedy decoding, word and
character errors split into substitutions, deletions and insertions, and a repetition-loop
detector. Shared by the studies that decode (wer, layers), so none imports another.

    texts = transcribe_clips(model, clips)                       # greedy, batched, no timestamps
    counts = edit_counts(reference.split(), hypothesis.split())  # .substitutions, .deletions, .insertions
    looping_ngram(words)                                         # ("the", "cat") if it repeats back to back
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

# A 2 s clip holds a dozen words (about 20 tokens) at most; the cap stops a repetition loop early.
MAX_TOKENS = 48
BATCH_SIZE = 16
# A loop is an n-gram of up to LOOP_MAX_N items said LOOP_REPEATS times back to back: three
# copies in a row almost never occur in real text, and two ("that that") do.
LOOP_MAX_N = 10
LOOP_REPEATS = 3


# ---- decoding --------------------------------------------------------------------------------


def decoding_options(max_tokens: int = MAX_TOKENS, timestamps: bool = False):
    """Greedy decoding without temperature fallback: what `transcribe` does on a clip that fits
    one 30 s window, when its first attempt passes (`transcribe` also predicts timestamps, which
    can change the words: `timestamps=True` does the same)."""
    import whisper

    return whisper.DecodingOptions(language="en", without_timestamps=not timestamps, fp16=False, temperature=0.0,
                                   sample_len=max_tokens)


def decode(model, mels_or_features, max_tokens: int = MAX_TOKENS, timestamps: bool = False) -> list:
    """openai-whisper's `decode` on a batch: log-mels (batch, n_mels, 3000), or the encoder's
    output (batch, 1500, d), which it feeds to the decoder without running the encoder."""
    import torch
    import whisper

    with torch.no_grad():
        return whisper.decode(model, mels_or_features.to(model.device), decoding_options(max_tokens, timestamps))


def clip_mels(model, clips: Sequence) -> torch.Tensor:
    """The clips' log-mels, each padded to 30 s as Whisper's decoding expects."""
    from .audio import log_mel_batch

    return log_mel_batch([np.asarray(clip.audio, dtype=np.float32) for clip in clips], model.dims.n_mels).to(model.device)


def padding_features(model) -> torch.Tensor:
    """The encoder output (1, 1500, d) of audio that is all padding: one second of silence padded
    to 30 s, as the seeds' `final_layer_output_for_padded_input`. Word removal puts it in place of
    a span of a clip's encoder output (the locality study, the dashboard)."""
    import torch

    from .audio import SAMPLE_RATE, log_mel

    with torch.no_grad():
        return model.run(log_mel(np.zeros(SAMPLE_RATE, dtype=np.float32), model.dims.n_mels))


def clip_batches(clips: Sequence, batch_size: int = BATCH_SIZE, progress=None, desc: str = "decode"):
    """The clips in consecutive batches (lists), with a progress bar over batches when given one."""
    starts = range(0, len(clips), batch_size)
    for start in progress(starts, desc=desc, unit="batch") if progress else starts:
        yield list(clips[start: start + batch_size])


def transcribe_clips(model, clips, progress=None, max_tokens: int = MAX_TOKENS, batch_size: int = BATCH_SIZE) -> list[str]:
    """Greedy transcripts, without timestamps, in batches. A clip fits in one 30 s window,
    where openai-whisper's `transcribe` (one clip at a time) does the same decoding; batching
    shares the encoder's fixed 30 s cost."""
    texts = []
    for batch in clip_batches(clips, batch_size, progress, desc="transcribe"):
        texts.extend(result.text for result in decode(model, clip_mels(model, batch), max_tokens))
    return texts


def hit_token_limit(result, max_tokens: int) -> bool:
    """Whether a decoding result ran to the token limit without an end-of-text (openai's greedy
    decoder pads the end-of-text it never sampled, so such a result holds exactly max_tokens)."""
    return len(result.tokens) >= max_tokens


# ---- words ---------------------------------------------------------------------------------


def word_timings(result: dict, digits: int | None = 2) -> list[dict]:
    """The words of an openai `transcribe(..., word_timestamps=True)` result, in order:
    [{"word", "start", "end"}], times in seconds rounded to `digits` (None: as they are)."""
    def seconds(value):
        return float(value) if digits is None else round(float(value), digits)

    return [{"word": w["word"].strip(), "start": seconds(w["start"]), "end": seconds(w["end"])}
            for segment in result["segments"] for w in segment.get("words", [])]


def word_splitter():
    """Text -> its words: Whisper's English normaliser, less what it leaves that is not a word
    (it turns "..." into "."), so that punctuation alone is an empty output."""
    from whisper.normalizers import EnglishTextNormalizer

    normalise = EnglishTextNormalizer()
    return lambda text: [word for word in normalise(text).split() if any(ch.isalnum() for ch in word)]


# ---- errors ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class EditCounts:
    """A minimum-edit alignment of a hypothesis to a reference."""

    substitutions: int
    deletions: int
    insertions: int

    @property
    def errors(self) -> int:
        return self.substitutions + self.deletions + self.insertions


def edit_counts(reference: Sequence, hypothesis: Sequence) -> EditCounts:
    """Levenshtein alignment (every edit costs 1), split into substitutions, deletions and
    insertions by walking one optimal path back; ties prefer the diagonal, so a word counts as
    inserted only where the hypothesis is longer than any alignment can absorb. Written out
    because it is short and jiwer would be a new dependency; each row is one numpy step (the
    insertions along a row are a running minimum), so a looping 200-character hypothesis costs
    as little as a clean one."""
    ids: dict = {}
    ref = np.array([ids.setdefault(item, len(ids)) for item in reference], dtype=np.int64)
    hyp = np.array([ids.setdefault(item, len(ids)) for item in hypothesis], dtype=np.int64)
    columns = np.arange(len(hyp) + 1)
    cost = np.empty((len(ref) + 1, len(hyp) + 1), dtype=np.int64)
    cost[0] = columns
    for i in range(1, len(ref) + 1):
        row = np.empty_like(columns)
        row[0] = i
        row[1:] = np.minimum(cost[i - 1, 1:] + 1, cost[i - 1, :-1] + (hyp != ref[i - 1]))
        cost[i] = columns + np.minimum.accumulate(row - columns)  # then insertions, left to right
    substitutions = deletions = insertions = 0
    i, j = len(ref), len(hyp)
    while i > 0 or j > 0:
        mismatch = i > 0 and j > 0 and int(ref[i - 1] != hyp[j - 1])
        if i > 0 and j > 0 and cost[i, j] == cost[i - 1, j - 1] + mismatch:
            substitutions, i, j = substitutions + mismatch, i - 1, j - 1
        elif i > 0 and cost[i, j] == cost[i - 1, j] + 1:
            deletions, i = deletions + 1, i - 1
        else:
            insertions, j = insertions + 1, j - 1
    return EditCounts(substitutions, deletions, insertions)


def word_errors(reference: list[str], hypothesis: list[str]) -> int:
    """Levenshtein distance over words (substitutions + deletions + insertions)."""
    return edit_counts(reference, hypothesis).errors


# ---- repetition ------------------------------------------------------------------------------


def looping_ngram(items: Sequence, max_n: int = LOOP_MAX_N, repeats: int = LOOP_REPEATS) -> tuple | None:
    """The shortest n-gram (n <= max_n) that occurs `repeats` times back to back in `items`
    (words or token ids), or None: the signature of a decoder caught in a loop."""
    for n in range(1, max_n + 1):
        for start in range(len(items) - n * repeats + 1):
            gram = tuple(items[start: start + n])
            if all(tuple(items[start + k * n: start + (k + 1) * n]) == gram for k in range(1, repeats)):
                return gram
    return None


def is_repetition(tokens: Sequence[int], words: Sequence[str], reached_limit: bool) -> bool:
    """A transcript in a repetition loop: it ran to the token limit, or some n-gram of its
    tokens or of its (normalised) words repeats back to back. Words catch loops whose copies
    tokenise differently ("The cat the cat the cat"); tokens catch loops of punctuation or
    symbols, which normalisation removes."""
    return reached_limit or looping_ngram(list(tokens)) is not None or looping_ngram(list(words)) is not None
