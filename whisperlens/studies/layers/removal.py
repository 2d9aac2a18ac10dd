"""Layer removal and the encoder lens: which layers of each stack run, and greedy decoding of
every clip under every such configuration, batched across clips.

One encoder pass per batch serves every configuration. Its residual stream at the input of
each block (the cache's `accumulated_resid`) is all the encoder lens needs: layer L's residual
through `ln_post` is the encoder output with only the first L blocks kept, fed to the full
decoder as audio features. `whisper.decode` takes audio features in place of a log-mel and
then skips the encoder, so no configuration reruns the blocks it shares with the full model:
that is why the lens feeds features rather than patching `encoder.hook_ln_post`, which would
rerun the whole encoder for every L only to overwrite its output. Skipping encoder block i
resumes from the cached input of block i; decoder configurations reuse the full encoder output
and skip blocks with the `SkipLayers` intervention.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ...interventions import AblateHeads, Intervention, SkipLayers
from ...transcripts import clip_batches, clip_mels, decode, hit_token_limit


@dataclass(frozen=True)
class Configuration:
    """The model with some blocks of one stack skipped (each passes its input through)."""

    stack: str | None  # the stack that loses blocks; None: the full model
    kept: tuple[int, ...] = ()  # the blocks of that stack that still run
    n_layers: int = 0  # how many blocks that stack has
    zeroed_head: tuple[str, int] | None = None  # an attention module and one of its heads, zeroed too

    @property
    def removed(self) -> tuple[int, ...]:
        return tuple(i for i in range(self.n_layers) if i not in self.kept)

    @property
    def removed_fraction(self) -> float:
        """The fraction of the stack's depth removed: the axis that compares models of different depths."""
        return len(self.removed) / self.n_layers if self.n_layers else 0.0

    @property
    def keeps_first(self) -> bool:
        """Whether the blocks kept are the first n (else all but one, in the middle)."""
        return self.kept == tuple(range(len(self.kept)))

    @property
    def name(self) -> str:
        if self.stack is None:
            name = "full model"
        elif self.keeps_first:
            name = f"{self.stack} keep {len(self.kept)}"
        else:
            name = f"{self.stack} skip {self.removed[0]}"
        return name if self.zeroed_head is None else f"{name}, {self.zeroed_head[0]} head {self.zeroed_head[1]} zeroed"

    def interventions(self) -> list[Intervention]:
        """What acts while decoding: decoder blocks skipped, a head zeroed. Encoder removals are
        already in the audio features."""
        found: list[Intervention] = []
        if self.stack == "decoder" and self.removed:
            found.append(SkipLayers(self.removed, stack="decoder"))
        if self.zeroed_head is not None:
            found.append(AblateHeads(self.zeroed_head[0], [self.zeroed_head[1]]))
        return found


FULL_MODEL = Configuration(None)


def keep_first(stack: str, kept: int, n_layers: int) -> Configuration:
    return Configuration(stack, tuple(range(kept)), n_layers)


def skip_one(stack: str, skipped: int, n_layers: int) -> Configuration:
    """Skipping the last block is keeping the first n - 1: the same configuration, and name."""
    return Configuration(stack, tuple(i for i in range(n_layers) if i != skipped), n_layers)


def configurations(n_encoder: int, n_decoder: int) -> list[Configuration]:
    """The full model, then per stack: keep the first n blocks, skip each single block; each once.

    Keeping the first n encoder blocks *is* the encoder lens at layer n (the skipped blocks pass
    the residual through and ln_post follows), so that family covers the lens for every L < all
    (n = 0: the embedding alone), and the full model covers L = all. The decoder keeps at least
    one block: with none, nothing reads the audio (every clip gets the same text), and openai's
    decoding leaks its kv-cache hooks when no attention runs.
    """
    found = [FULL_MODEL]
    for stack, n_layers, fewest in (("encoder", n_encoder, 0), ("decoder", n_decoder, 1)):
        candidates = [keep_first(stack, kept, n_layers) for kept in range(fewest, n_layers)]
        candidates += [skip_one(stack, skipped, n_layers) for skipped in range(n_layers)]
        found += [c for i, c in enumerate(candidates) if c not in candidates[:i]]
    return found


def encoder_resid_hooks(n_layers: int) -> list[str]:
    """The hooks whose cache gives `accumulated_resid("encoder")`: each block's input and the last output."""
    return [f"encoder.blocks.{i}.hook_resid_pre" for i in range(n_layers)] + [f"encoder.blocks.{n_layers - 1}.hook_resid_post"]


def encoder_features(cache, resid, configuration: Configuration):
    """The audio features (batch, positions, d) the configuration's encoder gives, from one full
    encoder pass (its cache, and `resid`, the cache's `accumulated_resid("encoder")`): the
    residual stream at the first removed block's input, through the later kept blocks (none for
    "keep n"), then `ln_post`."""
    if configuration.stack != "encoder" or not configuration.removed:
        return cache.apply_ln_to_stack(resid[-1], "encoder")
    first_removed = configuration.removed[0]
    x = resid[first_removed]
    for index in configuration.kept:
        if index > first_removed:
            x = cache.model.encoder.blocks[index](x)
    return cache.apply_ln_to_stack(x, "encoder")


@dataclass
class Decodes:
    """Every clip's transcript under every configuration: (configurations, clips) each."""

    texts: list[list[str]]
    tokens: list[list[list[int]]]  # the text tokens decoded
    hit_limit: np.ndarray  # bool: decoding ran to the token limit without an end-of-text


def decode_configurations(model, clips: Sequence, found: Sequence[Configuration], max_tokens: int,
                          batch_size: int, progress=None, desc: str = "decode") -> Decodes:
    """Greedy transcripts of `clips` under each configuration, batched across clips."""
    import torch

    texts: list[list[str]] = [[] for _ in found]
    tokens: list[list[list[int]]] = [[] for _ in found]
    hit_limit: list[list[bool]] = [[] for _ in found]
    hooks = encoder_resid_hooks(model.dims.n_audio_layer)
    for batch in clip_batches(clips, batch_size, progress, desc):
        with torch.no_grad():
            _, cache = model.run_with_cache(clip_mels(model, batch), names_filter=hooks)
            resid, _ = cache.accumulated_resid("encoder")  # (blocks + 1, batch, positions, d)
            for row, configuration in enumerate(found):
                features = encoder_features(cache, resid, configuration)
                with model.intervene(*configuration.interventions()):
                    results = decode(model, features, max_tokens)
                texts[row] += [result.text for result in results]
                tokens[row] += [list(result.tokens) for result in results]
                hit_limit[row] += [hit_token_limit(result, max_tokens) for result in results]
        del cache, resid  # the batch's residual stream: twice (blocks + 1) x batch x 1500 x d floats
    return Decodes(texts, tokens, np.array(hit_limit, dtype=bool).reshape(len(found), len(clips)))
