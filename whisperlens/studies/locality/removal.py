"""Word removal in embedding space: a span of the encoder output replaced by the same positions
of the padding-only audio's output (the seeds' edit), with the `Patch` intervention's own hook
function, and the word's frames found three ways: the corpus's alignment, Whisper's word
timestamps, and the word's relevance map.

Each clip's clean encoder output is computed once, and with it the decoder's cross-attention
keys and values; an edit replaces the same rows of those with the padding-only audio's (what the
`Patch` intervention at `encoder.hook_ln_post` does to the encoder output in a full pass, which
would rerun the encoder for each of hundreds of edits; a test checks the two agree), and the
edits are decoded in batches, each with a token limit fitted to its clip.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ...audio import encoder_positions
from ...greedy import DECODE_ROWS, CrossKV, concat_kv, cross_kv, decoder_cache, greedy_decode, replace_kv_positions
from ...interventions import Patch
from ...stream import FRAME_SECONDS
from ...transcripts import clip_batches, clip_mels, word_splitter

OUTPUT_HOOK = "encoder.hook_ln_post"
MARGINS = (0, 2, 5)  # frames added on each side of a word's span (0, 40 and 100 ms)


def replace_positions(model, features: torch.Tensor, padding: torch.Tensor, positions: Sequence[int]) -> torch.Tensor:
    """`features` (batch, 1500, d) with `positions` taken from `padding` (1, 1500, d)."""
    if len(positions) == 0:
        return features
    patch = Patch(OUTPUT_HOOK, source={OUTPUT_HOOK: padding}, positions=list(positions))
    return patch.hook_fn()(features, model.hook_dict[OUTPUT_HOOK])


def seconds_to_frames(start: float, end: float, n_frames: int, margin: int = 0) -> tuple[int, int]:
    """The encoder positions a time span touches, widened by `margin` frames each side, within the clip."""
    first = max(0, math.floor(start / FRAME_SECONDS) - margin)
    return first, max(first + 1, min(n_frames, math.ceil(end / FRAME_SECONDS) + margin))


@dataclass(frozen=True)
class Edit:
    clip: int  # index into the clips
    word: int  # index of the target among the clip's reference words
    method: str
    margin: int
    start: int
    stop: int


class _DecoderOnly:
    """What openai's `find_alignment` sees as the model when the clip's encoder output is known: its
    call `model(mel, tokens)` runs the decoder on the cached cross-attention keys and values instead
    of encoding `mel` again (find_alignment has no argument for encoder outputs)."""

    def __init__(self, model, kv: CrossKV):
        self._model, self._kv = model, kv

    def __getattr__(self, name):
        return getattr(self._model, name)

    def __call__(self, mel, tokens):
        return self._model.decoder(tokens, self._kv[0][0][:, :1], kv_cache=decoder_cache(self._model, self._kv))


def whisper_word_times(model, tokenizer, clip, kv: CrossKV) -> list[tuple[str, float, float]] | None:
    """Whisper's word timestamps for the clip's reference text: openai's `find_alignment` (the
    cross-attention of the alignment heads, DTW-aligned), which `transcribe(word_timestamps=True)`
    runs on its own transcript; `kv` is the clip's cross-attention keys and values (batch of 1).
    None when its words do not line up with the reference's."""
    from whisper.timing import find_alignment

    tokens = tokenizer.encode(" " + clip.text.strip())
    with torch.no_grad():
        timings = find_alignment(_DecoderOnly(model, kv), tokenizer, tokens, kv[0][0][0], len(clip.audio) // 160)
    words = [(timing.word.strip(), timing.start, timing.end) for timing in timings if timing.word.strip()]
    return words if [w for w, _, _ in words] == [w for w, _, _ in clip.words] else None


def word_survives(target: str, reference: Sequence[str], output: Sequence[str]) -> tuple[bool, bool]:
    """(the target is gone, every other word stays), comparing word counts: the output has fewer of
    the target than the reference, and at least as many of every other reference word as remain
    once one target is taken out."""
    have, want = Counter(output), Counter(reference)
    want[target] -= 1
    return have[target] <= want[target], all(have[word] >= count for word, count in want.items() if count > 0)


def neighbour_lost(words: Sequence[str], index: int, output: Sequence[str]) -> bool:
    """Whether a word next to the target is missing from the output (fewer copies than the reference has)."""
    have, want = Counter(output), Counter(words)
    return any(0 <= i < len(words) and have[words[i]] < want[words[i]] for i in (index - 1, index + 1))


def clean_features(model, clips: Sequence, batch_size: int, max_tokens: int) -> tuple[CrossKV, list[str]]:
    """Every clip's cross-attention keys and values of its encoder output (`greedy.cross_kv`) and its
    unedited transcript."""
    parts, texts = [], []
    for batch in clip_batches(clips, batch_size):
        with torch.no_grad():
            kv = cross_kv(model, model.run(clip_mels(model, batch)))
        parts.append(kv)
        texts += [result.text for result in greedy_decode(model, kv, max_tokens)]
    return concat_kv(parts), texts


def edit_token_limit(clip, max_tokens: int) -> int:
    """Tokens an edit of `clip` may take: twice the reference's words plus a few timestamps, within
    `max_tokens`. The scores count words the output keeps or loses, and an output past this length
    is a loop either way."""
    return min(max_tokens, 2 * len(clip.words) + 8)


def run_edits(model, clips: Sequence, kv: CrossKV, padding_kv: CrossKV, edits: Sequence[Edit], max_tokens: int,
              progress=None, batch_size: int = DECODE_ROWS) -> list[list[str]]:
    """Each edit's transcript, as words. An edit replaces rows of the clip's cross-attention keys and
    values with the padding-only audio's (as `replace_positions` does to the encoder output), so no
    encoder or key-value projection reruns; edits of clips of one length decode together."""
    words_of = word_splitter()
    outputs: dict[int, list[str]] = {}
    order = sorted(range(len(edits)), key=lambda i: edit_token_limit(clips[edits[i].clip], max_tokens))
    for batch in clip_batches(order, batch_size, progress, desc="word removal"):
        edited = concat_kv([replace_kv_positions(kv, padding_kv, edits[i].clip, range(edits[i].start, edits[i].stop))
                            for i in batch])
        limit = max(edit_token_limit(clips[edits[i].clip], max_tokens) for i in batch)
        for i, result in zip(batch, greedy_decode(model, edited, limit), strict=True):
            outputs[i] = words_of(result.text)
    return [outputs[i] for i in range(len(edits))]


def plan_edits(clips: Sequence, spans: dict[str, Callable[[int], list | None]], margins: Sequence[int],
               max_words: int) -> list[Edit]:
    """Up to `max_words` target words (clip by clip, every word of a clip): an edit per targeting
    method and margin. spans[method](clip index) gives (start s, end s) per reference word, or None
    when that method has no span for the clip (that method then skips it; a clip no method covers
    is skipped)."""
    edits: list[Edit] = []
    words = 0
    for index, clip in enumerate(clips):
        found = {method: times for method, span_of in spans.items() if (times := span_of(index)) is not None}
        if not found:
            continue
        n_frames = encoder_positions(len(clip.audio))
        for word in range(len(clip.words)):
            if words == max_words:
                return edits
            words += 1
            for method, times in found.items():
                for margin in margins:
                    start, stop = seconds_to_frames(*times[word], n_frames, margin)
                    edits.append(Edit(index, word, method, margin, start, stop))
    return edits


def score_edits(clips: Sequence, edits: Sequence[Edit], outputs: Sequence[list[str]]) -> dict[str, np.ndarray]:
    """Per edit (bool arrays): target gone, others kept, exact (both), a neighbour lost."""
    words_of = word_splitter()
    gone, kept, neighbour = [], [], []
    for edit, output in zip(edits, outputs, strict=True):
        reference = [words_of(word)[0] if words_of(word) else word for word, _, _ in clips[edit.clip].words]
        target_gone, others_kept = word_survives(reference[edit.word], reference, output)
        gone.append(target_gone)
        kept.append(others_kept)
        neighbour.append(neighbour_lost(reference, edit.word, output))
    gone_, kept_ = np.array(gone, dtype=bool), np.array(kept, dtype=bool)
    return {"gone": gone_, "kept": kept_, "exact": gone_ & kept_, "neighbour_lost": np.array(neighbour, dtype=bool)}


def summarise_edits(edits: Sequence[Edit], scores: dict[str, np.ndarray]) -> list[dict]:
    """Per method and margin: the rates over its edits."""
    rows = []
    neighbour_instead = scores["neighbour_lost"] & ~scores["gone"]  # the edit took a neighbour and left the target
    for method in dict.fromkeys(e.method for e in edits):
        for margin in dict.fromkeys(e.margin for e in edits):
            chosen = np.array([e.method == method and e.margin == margin for e in edits])
            if chosen.any():
                rows.append({"method": method, "margin": margin, "words": int(chosen.sum()),
                             **{f"{name}_rate": round(float(values[chosen].mean()), 4) for name, values in scores.items()},
                             "neighbour_instead_rate": round(float((neighbour_instead)[chosen].mean()), 4)})
    return rows


def timing_offsets(truth: Sequence[tuple[str, float, float]], whisper: Sequence[tuple[str, float, float]]) -> dict:
    """How far Whisper's word times are from the corpus's (ms; + means later)."""
    starts = np.array([w[1] - t[1] for t, w in zip(truth, whisper, strict=True)]) * 1000
    ends = np.array([w[2] - t[2] for t, w in zip(truth, whisper, strict=True)]) * 1000
    return {"starts": starts, "ends": ends}
