"""Interventions as data.

Each intervention is a small dataclass with a `kind`: `to_dict()` / `from_dict()` write and read
JSON-safe dicts, `check(model)` rejects a bad spec with a one-line WhisperLensError, and
`apply(model)` is a context manager. Stack them with `model.intervene(a, b, ...)` or pass
`interventions=[...]` to `run_with_hooks`, `run_with_cache`, `hooks`, `caching` and
`transcribe`. HookedWhisper's `attention_mask`, `skip_layers` and `ablate_heads`, and
`replace_hook` and `band_mask`, are thin wrappers over these, so each has one implementation.

Each undoes exactly what it did: its own hooks, its own mask (masks on one attention module add
up), each flag's previous value. `positions` index the position axis of each forward pass's
activation; while the decoder steps with its kv-cache, a step holds only the new positions.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Protocol

import torch
from torch import Tensor

from .errors import WhisperLensError


class CacheLike(Protocol):
    """What a patch reads from another run: an ActivationCache (named here, not imported, because
    hooks.py builds on this module)."""

    def __contains__(self, name: str) -> bool: ...

    def __getitem__(self, name: str) -> Tensor: ...

Positions = Sequence[int] | slice | None
_KINDS: dict[str, type[Intervention]] = {}


class Intervention:
    """Base class: subclasses are dataclasses with a class-level `kind`."""

    kind: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        _KINDS[cls.kind] = cls

    def to_dict(self) -> dict:
        return {"kind": self.kind, **{f.name: _to_json(getattr(self, f.name), f"{self.kind}.{f.name}") for f in fields(self)}}

    @classmethod
    def from_dict(cls, data: Mapping) -> Intervention:
        spec = intervention_from_dict(data)
        if not isinstance(spec, cls):
            raise WhisperLensError(f"{cls.__name__}.from_dict got kind {spec.kind!r}; use intervention_from_dict")
        return spec

    def check(self, model) -> None:
        """Raise WhisperLensError if the spec does not fit the model."""

    def apply(self, model) -> AbstractContextManager:
        """A context manager that applies the intervention to `model` while it is open."""
        raise NotImplementedError


def intervention_from_dict(data: Mapping) -> Intervention:
    if not isinstance(data, Mapping) or "kind" not in data:
        raise WhisperLensError(f"an intervention is a dict with a 'kind' (one of {', '.join(_KINDS)}), "
                               f"not a {type(data).__name__}")
    cls = _KINDS.get(data["kind"])
    if cls is None:
        raise WhisperLensError(f"unknown intervention kind {data['kind']!r}; known kinds: {', '.join(_KINDS)}")
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(data) - set(known) - {"kind"})
    if unknown:
        raise WhisperLensError(f"{cls.kind}: unknown field {unknown[0]!r}; its fields are {', '.join(known)}")
    for name, value in data.items():
        if value is not None and name in known and known[name].metadata.get("not_data"):
            raise WhisperLensError(f"{cls.kind}: {name} is {known[name].metadata['not_data']}, which cannot be given "
                                   f"as data; build {cls.__name__}({name}=...) in Python")
    try:
        return cls(**{name: _from_json(value, known[name]) for name, value in data.items() if name != "kind"})
    except TypeError as error:  # a field of the wrong type
        raise WhisperLensError(f"{cls.kind}: {error}") from None


def interventions_from_json(data: str | Iterable[Mapping]) -> list[Intervention]:
    """Interventions from a JSON list (text, or already parsed) of dicts."""
    return [intervention_from_dict(d) for d in (json.loads(data) if isinstance(data, str) else data)]


def as_intervention(spec: Intervention | Mapping) -> Intervention:
    return spec if isinstance(spec, Intervention) else intervention_from_dict(spec)


@dataclass(eq=False)
class AttentionMask(Intervention):
    """Add a mask to the attention scores before the softmax: a ±`half_width` band around the
    diagonal (query position - key position), or a tensor [(head,) query, key] (0 keeps, -inf
    blocks; rows are absolute query positions, one row broadcasts). `cross` masks the decoder's
    cross-attention (queries: tokens, keys: audio positions). Default: every layer, every head.
    """

    kind: ClassVar[str] = "attention_mask"
    stack: str = "encoder"
    layers: Sequence[int] | None = None
    heads: Sequence[int] | None = None
    half_width: int | None = None
    mask: Tensor | None = field(default=None, metadata={"tensor": True})
    cross: bool = False

    def __post_init__(self):
        self.layers, self.heads = _ints(self.layers, "layers"), _ints(self.heads, "heads")

    def check(self, model) -> None:
        if (self.half_width is None) == (self.mask is None):
            raise WhisperLensError("attention_mask: give exactly one of half_width and mask")
        if self.cross and self.stack != "decoder":
            raise WhisperLensError("attention_mask: cross-attention belongs to the decoder: use stack='decoder'")
        if self.half_width is not None and self.half_width < 0:
            raise WhisperLensError(f"attention_mask: half_width must be >= 0, not {self.half_width}")
        modules = self._modules(model)
        _check_indices(self.heads, modules[0].n_head, "attention_mask: head", "heads")
        per_head = self.mask is not None and self.mask.dim() == 3 and self.mask.shape[0] in (1, modules[0].n_head)
        if self.mask is not None and not (self.mask.dim() == 2 or per_head):
            raise WhisperLensError(f"attention_mask: a mask is [query, key] or [head, query, key], not {tuple(self.mask.shape)}")

    def _modules(self, model) -> list:
        blocks = model.blocks(self.stack)
        _check_indices(self.layers, len(blocks), f"attention_mask: {self.stack} layer", "blocks")
        chosen = range(len(blocks)) if self.layers is None else self.layers
        return [blocks[i].cross_attn if self.cross else blocks[i].attn for i in chosen]

    @contextmanager
    def apply(self, model):
        self.check(model)
        modules = self._modules(model)
        mask = None if self.mask is None else self.mask.to(model.device)
        selected = None
        if self.heads is not None:
            selected = torch.zeros(modules[0].n_head, 1, 1, dtype=torch.bool, device=model.device)
            selected[list(self.heads)] = True

        def scores_mask(queries: range, n_keys: int) -> Tensor:
            if mask is None:
                added = _band(torch.arange(queries.start, queries.stop, device=model.device), n_keys, self.half_width)
            else:
                added = _mask_rows(mask, queries, n_keys)
            return added if selected is None else torch.where(selected, added, torch.zeros((), device=added.device))

        with temporarily_added([m.additive_masks for m in modules], scores_mask):
            yield model


@dataclass(eq=False)
class SkipLayers(Intervention):
    """Skip whole residual blocks: each passes its input through unchanged."""

    kind: ClassVar[str] = "skip_layers"
    layers: Sequence[int] = ()
    stack: str = "encoder"

    def __post_init__(self):
        self.layers = _ints(self.layers, "layers")

    def check(self, model) -> None:
        _check_indices(self.layers, len(model.blocks(self.stack)), f"skip_layers: {self.stack} layer", "blocks")

    @contextmanager
    def apply(self, model):
        self.check(model)
        blocks = model.blocks(self.stack)
        with temporarily_set([blocks[i] for i in self.layers], "skip", True):
            yield model


@dataclass(eq=False)
class AblateHeads(Intervention):
    """Replace the output (z) of some heads of one attention module, e.g. `encoder.blocks.1.attn` or
    `decoder.blocks.0.cross_attn`: with zeros, or with their mean ("mean": over the batch and the
    positions of each forward pass, or `mean`, a [head, d_head] tensor such as
    `cache[...hook_z].mean((0, 1))` from a reference run).
    """

    kind: ClassVar[str] = "ablate_heads"
    attention: str = ""
    heads: Sequence[int] = ()
    method: str = "zero"
    mean: Tensor | None = field(default=None, metadata={"tensor": True})

    def __post_init__(self):
        self.heads = _ints(self.heads, "heads")

    def check(self, model) -> None:
        hook = model.hook_dict.get(f"{self.attention}.hook_z")
        if hook is None:
            raise WhisperLensError(f"ablate_heads: no attention module {self.attention!r} "
                                   "(e.g. encoder.blocks.0.attn, decoder.blocks.0.cross_attn)")
        n_head = model.get_submodule(self.attention).n_head
        _check_indices(self.heads, n_head, f"ablate_heads: {self.attention} head", "heads")
        if self.method not in ("zero", "mean"):
            raise WhisperLensError(f"ablate_heads: method is 'zero' or 'mean', not {self.method!r}")
        if self.mean is not None and (self.method != "mean" or self.mean.dim() != 2 or self.mean.shape[0] != n_head):
            raise WhisperLensError(f"ablate_heads: a mean goes with method='mean' and is [head, d_head] with {n_head} heads")

    def hook_fn(self):
        heads = list(self.heads)

        def ablate(z: Tensor, hook) -> Tensor:
            z = z.clone()
            if self.method == "zero":
                z[..., heads, :] = 0
            elif self.mean is not None:
                z[..., heads, :] = self.mean[heads].to(z)
            else:
                z[..., heads, :] = z[..., heads, :].mean(dim=(hook.batch_axis, hook.position_axis), keepdim=True)
            return z

        return ablate

    @contextmanager
    def apply(self, model):
        self.check(model)
        with model.hooks(fwd=[(f"{self.attention}.hook_z", self.hook_fn())]):
            yield model


@dataclass(eq=False)
class Patch(Intervention):
    """Overwrite an activation (a hook name or glob), at `positions` along its position axis or
    everywhere: with `value` (broadcast), or with the same positions of another run's
    activation from `source`, an ActivationCache, read by each hook point's name.
    """

    kind: ClassVar[str] = "patch"
    hook: str = ""
    value: Tensor | None = field(default=None, metadata={"tensor": True})
    positions: Positions = field(default=None, metadata={"positions": True})
    source: CacheLike | None = field(default=None, metadata={"not_data": "another run's ActivationCache"})

    def __post_init__(self):
        self.positions = _positions(self.positions)

    def check(self, model) -> None:
        if (self.value is None) == (self.source is None):
            raise WhisperLensError("patch: give exactly one of value and source")
        names = model.hook_points(self.hook)
        missing = [h.name for h in names if self.source is not None and h.name not in self.source]
        if missing:
            raise WhisperLensError(f"patch: the source cache has no {missing[0]}")

    def hook_fn(self):
        def patch(activation: Tensor, hook) -> Tensor:
            new = (self.value if self.source is None else self.source[hook.name]).to(activation)
            if self.positions is None:
                return new.expand_as(activation)
            index = _position_index(activation, hook, self.positions)
            patched = activation.clone()
            patched[index] = new if self.source is None else new[index]
            return patched

        return patch

    @contextmanager
    def apply(self, model):
        self.check(model)
        with model.hooks(fwd=[(self.hook, self.hook_fn())]):
            yield model


@dataclass(eq=False)
class Steer(Intervention):
    """Add `scale * vector` to an activation (a hook name or glob), at `positions` or everywhere."""

    kind: ClassVar[str] = "steer"
    hook: str = ""
    vector: Tensor | None = field(default=None, metadata={"tensor": True})
    scale: float = 1.0
    positions: Positions = field(default=None, metadata={"positions": True})

    def __post_init__(self):
        self.positions = _positions(self.positions)

    def check(self, model) -> None:
        if self.vector is None:
            raise WhisperLensError("steer: give a vector")
        model.hook_points(self.hook)

    def hook_fn(self):
        def steer(activation: Tensor, hook) -> Tensor:
            shift = self.scale * self.vector.to(activation)
            if self.positions is None:
                return activation + shift
            steered = activation.clone()
            index = _position_index(activation, hook, self.positions)
            steered[index] = steered[index] + shift
            return steered

        return steer

    @contextmanager
    def apply(self, model):
        self.check(model)
        with model.hooks(fwd=[(self.hook, self.hook_fn())]):
            yield model


# ---- helpers --------------------------------------------------------------------------------


@contextmanager
def temporarily_set(objects: Iterable, attribute: str, value: Any):
    """Set `attribute` on each object; on exit each gets its previous value back."""
    objects = list(objects)
    previous = [getattr(o, attribute) for o in objects]
    try:
        for o in objects:
            setattr(o, attribute, value)
        yield
    finally:
        for o, p in zip(objects, previous, strict=True):
            setattr(o, attribute, p)


@contextmanager
def temporarily_added(lists: Iterable[list], item: Any):
    """Append `item` to each list; on exit remove exactly that item (by identity: tensors have no usable ==)."""
    lists = list(lists)
    try:
        for entries in lists:
            entries.append(item)
        yield
    finally:
        for entries in lists:
            for i, entry in enumerate(entries):
                if entry is item:
                    del entries[i]
                    break


def band_mask(n_positions: int, half_width: int) -> Tensor:
    """0 where |query - key| <= half_width, -inf elsewhere: the ±k attention band."""
    return _band(torch.arange(n_positions), n_positions, half_width)


def _band(queries: Tensor, n_keys: int, half_width: int) -> Tensor:
    outside = (queries[:, None] - torch.arange(n_keys, device=queries.device)[None, :]).abs() > half_width
    return torch.zeros(outside.shape, device=queries.device).masked_fill(outside, float("-inf"))


def _mask_rows(mask: Tensor, queries: range, n_keys: int) -> Tensor:
    """The rows of a [(head,) query, key] mask for these query positions, cut to the keys present."""
    if mask.shape[-1] < n_keys or (mask.shape[-2] > 1 and mask.shape[-2] < queries.stop):
        raise WhisperLensError(
            f"the attention mask is {tuple(mask.shape[-2:])} [query, key]; "
            f"this call has queries up to {queries.stop - 1} and {n_keys} keys"
        )
    rows = mask if mask.shape[-2] == 1 else mask[..., queries.start : queries.stop, :]
    return rows[..., :n_keys]


def _position_index(activation: Tensor, hook, positions: Sequence[int] | slice) -> tuple:
    index: list = [slice(None)] * activation.dim()
    index[hook.position_axis] = positions if isinstance(positions, slice) else list(positions)
    return tuple(index)


def _check_indices(indices: Sequence[int] | None, n: int, what: str, plural: str) -> None:
    for i in indices or ():
        if not 0 <= i < n:
            raise WhisperLensError(f"{what} {i} is out of range: there are {plural} 0-{n - 1}")


def _ints(values, name: str) -> tuple[int, ...] | None:
    if values is None:
        return None
    values = (values,) if isinstance(values, int) else tuple(values)
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        raise WhisperLensError(f"{name} are integers, not {values!r}")
    return values


def _positions(positions) -> Positions:
    return positions if positions is None or isinstance(positions, slice) else _ints(positions, "positions")


def _to_json(value, where: str):
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_to_json(v, where) for v in value]
    if isinstance(value, slice):
        return {"start": value.start, "stop": value.stop, "step": value.step}
    if isinstance(value, Tensor):
        if not value.isfinite().all():
            raise WhisperLensError(f"{where}: a tensor with infinite values cannot be written as JSON; "
                                   "use half_width, or -1e9 for -inf")
        return value.tolist()
    raise WhisperLensError(f"{where}: a {type(value).__name__} cannot be written as data; pass a tensor instead")


def _from_json(value, spec_field):
    if value is not None and spec_field.metadata.get("tensor"):
        return torch.tensor(value, dtype=torch.float32)
    if isinstance(value, Mapping) and spec_field.metadata.get("positions"):
        return slice(value.get("start"), value.get("stop"), value.get("step"))
    return value
