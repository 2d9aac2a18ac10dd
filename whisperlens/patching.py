"""Activation patching for Whisper, in the spirit of TransformerLens's `patching.py`.

A *pair* is a clean input and a corrupted one (word A's audio and word B's), with the decoder
tokens the metric reads: the teacher-forced prefix up to the step where A's and B's transcripts
first differ, and the token each puts there. Denoising runs the corrupted input with some of the
clean run's activations patched in; noising runs the clean input with corrupted activations.
The default metric is the logit difference between A's and B's token at that step, normalised
as (patched - corrupt) / (clean - corrupt): 1 where the patch restores the clean run, 0 where it
changes nothing.

    pairs = PatchPairs.from_audio(model, [audio_a], [audio_b], ["Bat"], ["Cat"])
    result = activation_patching(model, pairs, "resid_post", positions={"word": range(20, 40)})
    result.normalised().mean("pair")      # a LabelledArray over (layer, position)
    result.normalised().mean("pair").heatmap(folder, "resid.png", title="...")

Speed: every patch is batched over pairs, and a patched run starts from the target run's cached
residual stream at the first block the patch touches (blocks before it cannot change), or from
its encoder output for a decoder patch; a patch of the residual stream between two blocks starts
at the block after it, from the patched value. The decoder is teacher-forced once on the shared
prefix, which scores both candidates at the step where they differ, and each run keeps that
pass's cross-attention keys and values for a metric that decodes (Run.cross_kv).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from .errors import WhisperLensError

DIRECTIONS = ("denoise", "noise")  # clean into corrupted, corrupted into clean

# component -> hook below `{stack}.blocks.{layer}.`; the cross-attention ones are the decoder's only
COMPONENTS = {
    "resid_pre": "hook_resid_pre", "resid_mid": "hook_resid_mid", "resid_post": "hook_resid_post",
    "attn_out": "hook_attn_out", "mlp_out": "hook_mlp_out", "mlp_post": "mlp.hook_post",
    "q": "attn.hook_q", "k": "attn.hook_k", "v": "attn.hook_v", "z": "attn.hook_z", "pattern": "attn.hook_pattern",
    "resid_mid_cross": "hook_resid_mid_cross", "cross_attn_out": "hook_cross_attn_out",
    "cross_q": "cross_attn.hook_q", "cross_k": "cross_attn.hook_k", "cross_v": "cross_attn.hook_v",
    "cross_z": "cross_attn.hook_z", "cross_pattern": "cross_attn.hook_pattern",
}
HEAD_HOOK = re.compile(r"\.hook_(q|k|v|z|scores|pattern)$")
ENCODER_BLOCK = re.compile(r"^encoder\.blocks\.(\d+)\.")

Positions = slice | Sequence[int] | np.ndarray | Tensor | None


def component_hook(stack: str, layer: int, component: str) -> str:
    """The hook name of `component` (a key of COMPONENTS) in block `layer` of `stack`."""
    if component not in COMPONENTS:
        raise WhisperLensError(f"unknown component {component!r}; components: {', '.join(COMPONENTS)}")
    if stack == "encoder" and (component.startswith("cross") or component == "resid_mid_cross"):
        raise WhisperLensError(f"{component} is the decoder's cross-attention: use stack='decoder'")
    return f"{stack}.blocks.{layer}.{COMPONENTS[component]}"


# ---- pairs ------------------------------------------------------------------------------------


@dataclass
class PatchPairs:
    """A batch of (clean, corrupted) inputs and what the default metric reads of them."""

    clean_mel: Tensor  # (pairs, n_mels, frames): log-mels, 30 s each unless `short`
    corrupt_mel: Tensor
    prefix: Tensor  # (pairs, T) long: teacher-forced tokens up to the step where the candidates differ, padded
    prefix_lengths: Tensor  # (pairs,) long: each row's real prefix length
    clean_token: Tensor  # (pairs,) long: the clean candidate's token at that step
    corrupt_token: Tensor  # (pairs,) long
    short: bool = False  # short-clip mode (the encoder on fewer than 1500 positions)

    def __len__(self) -> int:
        return self.clean_mel.shape[0]

    def rows(self, index: slice) -> PatchPairs:
        return replace(self, clean_mel=self.clean_mel[index], corrupt_mel=self.corrupt_mel[index],
                       prefix=self.prefix[index], prefix_lengths=self.prefix_lengths[index],
                       clean_token=self.clean_token[index], corrupt_token=self.corrupt_token[index])

    @classmethod
    def from_audio(cls, model, clean_audio: Sequence[np.ndarray], corrupt_audio: Sequence[np.ndarray],
                   clean_texts: Sequence[str], corrupt_texts: Sequence[str], *, languages: Sequence[str] | None = None,
                   short: bool = False) -> PatchPairs:
        """Pairs from waveforms and the two transcripts of each. `languages` (multilingual models): the
        language token of each pair's prefix (default English)."""
        from .audio import log_mel_batch
        from .models.loading import tokenizer_for

        n = len(clean_audio)
        if not n or not len(corrupt_audio) == len(clean_texts) == len(corrupt_texts) == n:
            raise WhisperLensError("give one clean and one corrupted waveform and transcript per pair, at least one pair")
        languages = list(languages) if languages is not None else ["en"] * n
        prefixes, clean_tokens, corrupt_tokens = [], [], []
        for clean, corrupt, language in zip(clean_texts, corrupt_texts, languages, strict=True):
            tokenizer = tokenizer_for(model, language=language if model.is_multilingual else None)
            prefix, a, b = candidate_tokens(tokenizer, clean, corrupt)
            prefixes.append(prefix)
            clean_tokens.append(a)
            corrupt_tokens.append(b)
        lengths = [len(p) for p in prefixes]
        prefix = torch.full((n, max(lengths)), tokenizer.eot, dtype=torch.long)
        for row, tokens in enumerate(prefixes):
            prefix[row, : len(tokens)] = torch.tensor(tokens)
        audio = [np.asarray(a, np.float32) for a in (*clean_audio, *corrupt_audio)]
        mels = log_mel_batch(audio, model.dims.n_mels, short=short)
        return cls(mels[:n], mels[n:], prefix, torch.tensor(lengths), torch.tensor(clean_tokens),
                   torch.tensor(corrupt_tokens), short)


def candidate_tokens(tokenizer, clean_text: str, corrupt_text: str) -> tuple[list[int], int, int]:
    """(prefix, clean token, corrupt token): the start-of-transcript sequence and the tokens the two
    transcripts share, then the first token where they differ."""
    a, b = tokenizer.encode(" " + clean_text.strip()), tokenizer.encode(" " + corrupt_text.strip())
    shared = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), None)
    if shared is None:
        raise WhisperLensError(f"{clean_text!r} and {corrupt_text!r} have no token where they differ "
                               "(one's tokens begin the other's): the logit difference needs one")
    return list(tokenizer.sot_sequence_including_notimestamps) + a[:shared], a[shared], b[shared]


# ---- metrics ----------------------------------------------------------------------------------


class Run:
    """One run of a chunk of pairs, as a metric sees it: the encoder output, the decoder's final
    residual stream on the prefix (after its LayerNorm; None when no metric reads the decoder)
    and the chunk's pairs. `logits` unembeds all of it; `token_logits` only the tokens asked for,
    which is what the logit difference needs (the full 51k-way unembedding costs more than the
    rest of the decoder on a short prefix)."""

    def __init__(self, model, features: Tensor, final: Tensor | None, pairs: PatchPairs, rows: slice,
                 cross_kv: dict | None = None):
        self.model, self.features, self.final, self.pairs = model, features, final, pairs
        self.rows = rows  # which of the sweep's pairs these are, for metrics that hold data per pair
        # the decoder's cross-attention key and value projections of `features` ({module: tensor}),
        # from the teacher-forced pass: a metric that decodes can reuse them (see kv_cache in whisper)
        self.cross_kv = cross_kv

    @property
    def logits(self) -> Tensor:
        """(pairs, T, vocab), as decoder.hook_logits would hold them."""
        return self.model.unembed(self._final())

    def token_logits(self, tokens: Tensor) -> Tensor:
        """(pairs,): each pair's logit of its token `tokens[pair]` at its last prefix position."""
        final = self._final()
        last = final[torch.arange(len(self.pairs)), self.pairs.prefix_lengths.to(final.device) - 1]
        weights = self.model.decoder.token_embedding.weight[tokens.to(final.device)]
        return (last * weights.to(last.dtype)).sum(-1).float()

    def _final(self) -> Tensor:
        if self.final is None:
            raise WhisperLensError("this run has no decoder output: the metrics said they do not read it")
        return self.final


Metric = Callable[[Run], Tensor | np.ndarray | Sequence[float]]


def logit_difference(run: Run) -> Tensor:
    """logit(clean token) - logit(corrupt token) at the step where the candidates differ."""
    return run.token_logits(run.pairs.clean_token) - run.token_logits(run.pairs.corrupt_token)


logit_difference.needs_logits = True  # type: ignore[attr-defined]


def needs_logits(metric: Metric) -> bool:
    """Whether a metric reads the decoder's logits (default True: a metric marked
    `needs_logits = False`, e.g. one that decodes itself, spares the teacher-forced pass)."""
    return getattr(metric, "needs_logits", True)


# ---- sites ------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Site:
    """Where one patch goes: a hook, the positions along its position axis (None: all; a slice or
    indices shared by every pair; or a bool array (pairs, positions), one row per pair), the heads
    of an attention hook (None: all), and the hook of the source run it reads (default the same:
    another layer's for a cross-layer patch)."""

    hook: str
    positions: Positions = None
    heads: tuple[int, ...] | None = None
    source_hook: str | None = None

    @property
    def source(self) -> str:
        return self.source_hook or self.hook


def _site_mask(site: Site, hook, shape: torch.Size, rows: slice, device) -> Tensor | None:
    """A bool mask broadcastable to the activation: True where the patch writes."""
    if site.positions is None and site.heads is None:
        return None
    mask_shape = [1] * len(shape)
    mask = torch.ones(mask_shape, dtype=torch.bool, device=device)
    if site.positions is not None:
        n = shape[hook.position_axis]
        positions = site.positions
        if isinstance(positions, (np.ndarray, Tensor)) and positions.ndim == 2:  # one row per pair
            per_pair = torch.as_tensor(np.asarray(positions)[rows], dtype=torch.bool, device=device)[:, :n]
            per_pair = torch.nn.functional.pad(per_pair, (0, n - per_pair.shape[1]))
            where = [1] * len(shape)  # every hook point keeps the batch on axis 0, before the positions
            where[hook.batch_axis], where[hook.position_axis] = per_pair.shape[0], n
            mask = mask & per_pair.reshape(where)
        else:
            selected = torch.zeros(n, dtype=torch.bool, device=device)
            selected[positions if isinstance(positions, slice) else list(positions)] = True
            where = [1] * len(shape)
            where[hook.position_axis] = n
            mask = mask & selected.reshape(where)
    if site.heads is not None:
        head_axis = 1 if hook.key_axis is not None else 2  # scores and pattern: (batch, head, query, key)
        selected = torch.zeros(shape[head_axis], dtype=torch.bool, device=device)
        selected[list(site.heads)] = True
        where = [1] * len(shape)
        where[head_axis] = shape[head_axis]
        mask = mask & selected.reshape(where)
    return mask


def check_sites(model, sites: Sequence[Site]) -> None:
    """WhisperLensError for a site whose hook does not exist, or heads on a hook without heads."""
    for site in sites:
        for name in (site.hook, site.source):
            if name not in model.hook_dict:
                raise WhisperLensError(f"patch site {name!r} is not a hook point (e.g. encoder.blocks.2.hook_resid_post)")
        if site.heads is not None and not HEAD_HOOK.search(site.hook):
            raise WhisperLensError(f"{site.hook} has no head axis: heads go with hook_q/k/v/z/scores/pattern")
        for name in (site.hook, site.source):
            if name.startswith("encoder.hook_") and name not in ("encoder.hook_embed", "encoder.hook_ln_post"):
                raise WhisperLensError(f"{name}: patch the encoder from hook_embed on")


def _start(model, hook: str) -> int | str:
    """Where a patched run must start: an encoder block index, 'decoder' or 'embed'."""
    match = ENCODER_BLOCK.match(hook)
    if match:
        return int(match.group(1))
    if hook == "encoder.hook_ln_post":
        return model.dims.n_audio_layer
    if hook.startswith("decoder."):
        return "decoder"
    return "embed"


def encoder_from(model, resid: Tensor, first_block: int) -> Tensor:
    """The encoder's output from the residual stream entering block `first_block` (the blocks
    before it already ran): the rest of HookedAudioEncoder.forward, its hooks firing as there."""
    encoder = model.encoder
    encoder.calls += 1  # a new encoder call, for caches that keep calls apart
    x = resid
    for block in encoder.blocks[first_block:]:
        x = block(x)
    return encoder.hook_ln_post(encoder.ln_post(x))


# ---- running ----------------------------------------------------------------------------------


@dataclass
class PatchMetrics:
    """Raw metric values: per metric name, (pairs, sites) for the patched runs and (pairs,) for the
    clean and corrupted runs."""

    patched: dict[str, np.ndarray]
    clean: dict[str, np.ndarray]
    corrupt: dict[str, np.ndarray]

    def normalised(self, name: str = "logit_diff") -> np.ndarray:
        """(patched - corrupt) / (clean - corrupt), per pair and site (NaN where clean = corrupt)."""
        gap = self.clean[name] - self.corrupt[name]
        with np.errstate(divide="ignore", invalid="ignore"):
            return (self.patched[name] - self.corrupt[name][:, None]) / np.where(gap == 0, np.nan, gap)[:, None]


def patch_sites(model, pairs: PatchPairs, sites: Sequence[Site], *, direction: str = "denoise",
                metrics: Metric | Mapping[str, Metric] | None = None, interventions: Iterable = (),
                batch_size: int = 8, progress=None) -> PatchMetrics:
    """Each site patched alone, for every pair: the metrics of the patched runs and of the clean and
    corrupted runs. `interventions` (e.g. an AttentionMask) are on for every run, patched or not."""
    if direction not in DIRECTIONS:
        raise WhisperLensError(f"direction is one of {', '.join(DIRECTIONS)}, not {direction!r}")
    if batch_size < 1:
        raise WhisperLensError(f"batch size must be positive, got {batch_size}")
    metrics = _metric_dict(metrics)
    sites = list(sites)
    check_sites(model, sites)
    decoder = any(needs_logits(m) for m in metrics.values())
    if not decoder and any(_start(model, s.hook) == "decoder" for s in sites):
        raise WhisperLensError("a decoder site needs a metric that reads the decoder's logits")
    patched = {name: np.zeros((len(pairs), len(sites))) for name in metrics}
    clean = {name: np.zeros(len(pairs)) for name in metrics}
    corrupt = {name: np.zeros(len(pairs)) for name in metrics}
    starts = range(0, len(pairs), batch_size)
    with torch.inference_mode(), model.intervene(*interventions):
        for first in progress(starts, desc="patching", unit="batch") if progress else starts:
            rows = slice(first, first + batch_size)
            runner = _Chunk(model, pairs, rows, sites, direction, decoder)
            for name, metric in metrics.items():
                clean[name][rows] = _values(metric(runner.clean))
                corrupt[name][rows] = _values(metric(runner.corrupt))
            for column, site in enumerate(sites):
                run = runner.patched(site)
                for name, metric in metrics.items():
                    patched[name][rows, column] = _values(metric(run))
    return PatchMetrics(patched, clean, corrupt)


def _metric_dict(metrics) -> dict[str, Metric]:
    if metrics is None:
        return {"logit_diff": logit_difference}
    return dict(metrics) if isinstance(metrics, Mapping) else {getattr(metrics, "__name__", "metric"): metrics}


def _values(values) -> np.ndarray:
    return (values.detach().float().cpu().numpy() if isinstance(values, Tensor) else np.asarray(values, dtype=float))


class _Chunk:
    """The clean, corrupted and patched runs of one chunk of pairs."""

    def __init__(self, model, pairs: PatchPairs, rows: slice, sites: Sequence[Site], direction: str, decoder: bool):
        self.model, self.rows, self.decoder = model, rows, decoder
        self.pairs = pairs.rows(rows)
        # What enters block i, as the value the model went on with: the embedding, or block i - 1's
        # output (not block i's own resid_pre, whose hooks would then fire twice on it).
        n_blocks = model.dims.n_audio_layer
        block_inputs = ["encoder.hook_embed", *(f"encoder.blocks.{i}.hook_resid_post" for i in range(n_blocks))]
        clean, self.clean_cache = self._cached_run(self.pairs.clean_mel, {s.source for s in sites} | set(block_inputs))
        corrupt, self.corrupt_cache = self._cached_run(self.pairs.corrupt_mel, {s.source for s in sites} | set(block_inputs))
        self.clean, self.corrupt = clean, corrupt
        denoise = direction == "denoise"
        self.source_cache = self.clean_cache if denoise else self.corrupt_cache
        self.target_cache, self.target = (self.corrupt_cache, corrupt) if denoise else (self.clean_cache, clean)
        self.block_inputs = block_inputs
        self.target_mel = self.pairs.corrupt_mel if denoise else self.pairs.clean_mel

    def _cached_run(self, mel: Tensor, names: set[str]):
        model = self.model
        with model.caching(sorted(names)) as cache:
            with model.short_audio(self.pairs.short):
                features = model.encoder(mel.to(model.device, model._dtype))
            run = self._run(features)  # inside: the decoder's sites are cached too
        return run, cache

    def _run(self, features: Tensor) -> Run:
        """The run on `features`: the decoder's final LayerNorm output on the prefix (the pass stops
        there, before the logits) and its cross-attention keys and values."""
        if not self.decoder:
            return Run(self.model, features, None, self.pairs, self.rows)
        captured, cross_kv = [], {}

        def stop(activation: Tensor, hook) -> None:
            captured.append(activation)
            raise _Stop

        def keep(module, inputs, output) -> None:
            cross_kv[module] = output

        handles = [linear.register_forward_hook(keep) for block in self.model.decoder.blocks
                   for linear in (block.cross_attn.key, block.cross_attn.value)]
        try:
            with self.model.hooks(fwd=[("decoder.hook_ln_final", stop)]):
                self.model.decoder(self.pairs.prefix.to(features.device), features)
        except _Stop:
            pass
        finally:
            for handle in handles:
                handle.remove()
        return Run(self.model, features, captured[0], self.pairs, self.rows, cross_kv)

    def patched(self, site: Site) -> Run:
        model = self.model
        if _replaces_everything(site):  # the run from the patch on is the source run's, exactly
            return self.clean if self.source_cache is self.clean_cache else self.corrupt
        source = self.source_cache[site.source]
        hook_point = model.hook_dict[site.hook]
        entering = self._block_entered(site)
        if entering is not None:  # the patched value is what enters a block: start the run there
            target = self.target_cache[site.hook].to(source)
            mask = _site_mask(site, hook_point, target.shape, self.rows, target.device)
            if source.shape != target.shape:
                raise WhisperLensError(f"cannot patch {site.source} {tuple(source.shape)} into {site.hook} "
                                       f"{tuple(target.shape)}")
            return self._run(encoder_from(model, source if mask is None else torch.where(mask, source, target), entering))

        def patch(activation: Tensor, hook) -> Tensor:
            new = source.to(activation)
            if new.shape != activation.shape:
                raise WhisperLensError(f"cannot patch {site.source} {tuple(new.shape)} into {hook.name} "
                                       f"{tuple(activation.shape)}")
            mask = _site_mask(site, hook, activation.shape, self.rows, activation.device)
            return new if mask is None else torch.where(mask, new, activation)

        start = _start(model, site.hook)
        with model.hooks(fwd=[(hook_point.name, patch)]):
            if start == "decoder":
                features = self.target.features
            elif start == "embed":
                with model.short_audio(self.pairs.short):
                    features = model.encoder(self.target_mel.to(model.device, model._dtype))
            else:
                features = encoder_from(model, self.target_cache[self.block_inputs[start]], start)
            return self._run(features)

    def _block_entered(self, site: Site) -> int | None:
        """The encoder block whose input `site` is, when the target run's value there is cached and
        nothing else hooks it: the patched run can then start at that block from the patched value
        (encoder_from), instead of recomputing the block that made it. None otherwise."""
        if site.hook not in self.block_inputs or self.model.hook_dict[site.hook].has_hooks:
            return None
        return self.block_inputs.index(site.hook)


class _Stop(Exception):
    """Raised from a hook to end the decoder's pass once its final residual stream is in hand."""


def _replaces_everything(site: Site) -> bool:
    """Whether the site overwrites the encoder's whole residual stream with the source run's at the
    same point: everything after it (the encoder, then the decoder) is then the source run's."""
    resid = site.hook in ("encoder.hook_embed", "encoder.hook_ln_post") or bool(
        re.fullmatch(r"encoder\.blocks\.\d+\.hook_resid_(pre|mid|post)", site.hook))
    return resid and site.positions is None and site.heads is None and site.source == site.hook


# ---- labelled results -------------------------------------------------------------------------


@dataclass
class LabelledArray:
    """A numpy array with named axes and a label per index (a small xarray: xarray would add pandas
    as a dependency only to name axes)."""

    values: np.ndarray
    dims: tuple[str, ...]
    coords: dict[str, list] = field(default_factory=dict)

    def __post_init__(self):
        if self.values.ndim != len(self.dims):
            raise ValueError(f"{self.values.ndim} axes but {len(self.dims)} names")
        for axis, name in enumerate(self.dims):
            self.coords.setdefault(name, list(range(self.values.shape[axis])))

    def mean(self, dim: str) -> LabelledArray:
        axis = self.dims.index(dim)
        with np.errstate(invalid="ignore"), _quiet():
            values = np.nanmean(self.values, axis=axis)
        return LabelledArray(values, self.dims[:axis] + self.dims[axis + 1:],
                             {d: self.coords[d] for d in self.dims if d != dim})

    def sel(self, **labels) -> LabelledArray:
        """The slice at one label of each given axis."""
        values, dims = self.values, list(self.dims)
        for name, label in labels.items():
            axis = dims.index(name)
            values = np.take(values, self.coords[name].index(label), axis=axis)
            dims.pop(axis)
        return LabelledArray(values, tuple(dims), {d: self.coords[d] for d in dims})

    def rows(self, digits: int = 3) -> tuple[list[str], list[list]]:
        """(header, rows) of a 1-D or 2-D array: the first axis down, the second across."""
        if self.values.ndim == 1:
            labels = self.coords[self.dims[0]]
            return [self.dims[0], "value"], [[label, _round(v, digits)] for label, v in zip(labels, self.values)]
        if self.values.ndim != 2:
            raise WhisperLensError(f"a table needs 1 or 2 axes, not {self.dims}")
        down, across = self.dims
        header = [f"{down} \\ {across}", *map(str, self.coords[across])]
        return header, [[label, *(_round(v, digits) for v in row)] for label, row in zip(self.coords[down], self.values)]

    def heatmap(self, folder: Path, name: str, title: str, *, vmin: float | None = None, vmax: float | None = None,
                cmap: str = "RdBu_r", label: str = "") -> str:
        """A PNG of a 2-D array (first axis down, second across), each cell written on it."""
        from .study.figures import new_figure, save_figure

        if self.values.ndim != 2:
            raise WhisperLensError(f"a heatmap needs 2 axes, not {self.dims}")
        down, across = self.dims
        n_down, n_across = self.values.shape
        figure, axes = new_figure(max(3.5, 0.55 * n_across + 2), max(2.5, 0.4 * n_down + 1.2))
        if vmin is None and vmax is None:
            limit = float(np.nanmax(np.abs(self.values))) if np.isfinite(self.values).any() else 1.0
            vmin, vmax = -max(limit, 1e-9), max(limit, 1e-9)
        image = axes.imshow(self.values, cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto")
        axes.set_xticks(range(n_across), [str(c) for c in self.coords[across]], rotation=60 if n_across > 8 else 0,
                        fontsize=7)
        axes.set_yticks(range(n_down), [str(c) for c in self.coords[down]], fontsize=7)
        axes.set(xlabel=across, ylabel=down, title=title)
        if n_down * n_across <= 120:
            for i in range(n_down):
                for j in range(n_across):
                    if np.isfinite(self.values[i, j]):
                        axes.text(j, i, f"{self.values[i, j]:.2f}", ha="center", va="center", fontsize=6)
        figure.colorbar(image, ax=axes, label=label)
        return save_figure(figure, folder, name)


def _round(value, digits: int):
    value = float(value)
    return round(value, digits) if np.isfinite(value) else None


class _quiet:
    """Silence numpy's 'mean of empty slice' warning: an all-NaN row averages to NaN, as meant."""

    def __enter__(self):
        import warnings

        self._context = warnings.catch_warnings()
        self._context.__enter__()
        warnings.simplefilter("ignore", category=RuntimeWarning)

    def __exit__(self, *exc):
        return self._context.__exit__(*exc)


@dataclass
class PatchingResult:
    """A sweep's metric values as labelled arrays (pair, *dims), with the clean and corrupted runs'."""

    metrics: PatchMetrics
    dims: tuple[str, ...]
    coords: dict[str, list]

    def raw(self, name: str = "logit_diff") -> LabelledArray:
        return self._labelled(self.metrics.patched[name])

    def normalised(self, name: str = "logit_diff") -> LabelledArray:
        return self._labelled(self.metrics.normalised(name))

    def _labelled(self, values: np.ndarray) -> LabelledArray:
        shape = [values.shape[0], *(len(self.coords[d]) for d in self.dims)]
        return LabelledArray(values.reshape(shape), ("pair", *self.dims), dict(self.coords))


def activation_patching(model, pairs: PatchPairs, component: str = "resid_post", *, stack: str = "encoder",
                        layers: Sequence[int] | None = None, source_layers: str | Sequence[int] = "same",
                        positions: Mapping[str, Positions] | None = None, heads: str | Sequence[int] | None = None,
                        direction: str = "denoise", metrics: Metric | Mapping[str, Metric] | None = None,
                        interventions: Iterable = (), batch_size: int = 8, progress=None) -> PatchingResult:
    """Patch `component` over a grid, as TransformerLens's get_act_patch_* functions do.

    layers: the target layers (default all of the stack). source_layers: "same" (each layer from
    itself), or layers to read from, giving a (source_layer, layer) grid: cross-layer patches.
    positions: label -> positions (see Site), a position axis; default all positions at once.
    heads: "each" (a head axis) or some heads patched together; default all heads (no axis).
    """
    n_layers = len(model.blocks(stack))
    layers = list(range(n_layers)) if layers is None else list(layers)
    bad = [layer for layer in layers if not 0 <= layer < n_layers]
    if bad:
        raise WhisperLensError(f"{stack} layer {bad[0]} is out of range: there are blocks 0-{n_layers - 1}")
    hooks = {layer: component_hook(stack, layer, component) for layer in layers}
    dims, coords, grid = [], {}, [{}]
    if source_layers != "same":
        sources = list(range(n_layers)) if source_layers == "all" else list(source_layers)
        dims.append("source_layer")
        coords["source_layer"] = sources
        grid = [{"source": s} for s in sources]
    dims.append("layer")
    coords["layer"] = layers
    grid = [{**g, "layer": layer} for g in grid for layer in layers]
    if positions is not None:
        dims.append("position")
        coords["position"] = list(positions)
        grid = [{**g, "positions": positions[label]} for g in grid for label in positions]
    head_set = None
    if heads == "each":
        n_heads = model.get_submodule(hooks[layers[0]].rsplit(".", 1)[0]).n_head
        dims.append("head")
        coords["head"] = list(range(n_heads))
        grid = [{**g, "heads": (h,)} for g in grid for h in range(n_heads)]
    elif heads is not None:
        head_set = tuple(heads)
    sites = [Site(hooks[g["layer"]], g.get("positions"), g.get("heads", head_set),
                  component_hook(stack, g["source"], component) if "source" in g else None) for g in grid]
    measured = patch_sites(model, pairs, sites, direction=direction, metrics=metrics, interventions=interventions,
                           batch_size=batch_size, progress=progress)
    return PatchingResult(measured, tuple(dims), coords)
