"""TransformerLens-style hook points, hook management and activation caches.

Written here rather than imported from TransformerLens: its HookedRootModule assumes its own
model classes and config, and TransformerLens does not support Whisper. The API mirrors it
(`HookPoint`, `run_with_hooks`, `run_with_cache`, `ActivationCache`) so its users feel at home.

Hooks compose: `add_hook` returns a handle, and every context (`hooks()`, `caching()`, each
intervention) removes exactly the handles it added, so contexts nest in any order and hooks added
by hand stay until their handle's `remove()` or `remove_all_hooks()`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import ExitStack, contextmanager

import torch
from torch import nn

from .errors import WhisperLensError
from .hook_names import NameFilter, name_matcher, resolve_alias, resolve_filter
from .interventions import Intervention, as_intervention

HookFn = Callable[[torch.Tensor, "HookPoint"], torch.Tensor | None]

__all__ = ["ActivationCache", "HookFn", "HookHandle", "HookPoint", "HookedRootModule", "NameFilter", "name_matcher"]


class HookHandle:
    """One hook on one HookPoint; `remove()` detaches exactly this hook (a second call does nothing)."""

    def __init__(self, hook_point: HookPoint, fn: HookFn, direction: str, observer: bool):
        self.hook_point, self.fn, self.direction, self.observer = hook_point, fn, direction, observer

    def remove(self) -> None:
        attached = self.hook_point._attached
        for i, handle in enumerate(attached):
            if handle is self:
                del attached[i]
                return

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.direction == "bwd":
            if x.requires_grad:
                x.register_hook(lambda grad: self.fn(grad, self.hook_point))
            return x
        replacement = self.fn(x, self.hook_point)
        return x if replacement is None or self.observer else replacement

    def __repr__(self) -> str:
        return f"HookHandle({self.hook_point.name}, {self.direction}{', observer' if self.observer else ''})"


class HookPoint(nn.Module):
    """An identity module marking an activation that hooks can read or replace.

    It declares where its activation keeps the batch and the positions, so that a cache can join
    a decoder's kv-cache steps along positions. Attention scores and patterns see more keys at
    each step: `key_axis` is padded with `key_fill` (what the causal mask puts there in a
    teacher-forced run). A `cumulative` activation (attention keys and values under the kv-cache)
    already holds every position so far at each step.
    """

    def __init__(self, batch_axis: int = 0, position_axis: int = 1, key_axis: int | None = None,
                 key_fill: float = 0.0, cumulative: bool = False):
        super().__init__()
        self.name: str = ""
        self.batch_axis, self.position_axis = batch_axis, position_axis
        self.key_axis, self.key_fill, self.cumulative = key_axis, key_fill, cumulative
        self._attached: list[HookHandle] = []  # hooks that may replace the value, in order, then observers

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for handle in tuple(self._attached):  # a copy: a hook may remove itself
            x = handle(x)
        return x

    def add_hook(self, fn: HookFn, direction: str = "fwd", *, observer: bool = False) -> HookHandle:
        """Call `fn(activation, hook)` on the forward value, or on its gradient (`bwd`); returns a handle.

        A non-None return value replaces the activation (or the gradient). Hooks run in the order
        added, except that observers (and gradient hooks) run after every other hook, so that they
        see the value the model goes on with; an observer's return value is ignored.
        """
        if direction not in ("fwd", "bwd"):
            raise ValueError(f"direction must be 'fwd' or 'bwd', not {direction!r}")
        handle = HookHandle(self, fn, direction, observer or direction == "bwd")
        if handle.observer:
            self._attached.append(handle)
        else:
            first_observer = next((i for i, h in enumerate(self._attached) if h.observer), len(self._attached))
            self._attached.insert(first_observer, handle)
        return handle

    @property
    def has_hooks(self) -> bool:
        return bool(self._attached)

    def remove_hooks(self) -> None:
        self._attached.clear()

    def extra_repr(self) -> str:
        return self.name


def join_steps(hook: HookPoint, firings: list[torch.Tensor]) -> torch.Tensor:
    """One call's activation from its firings: kv-cache steps joined along the position axis."""
    if len(firings) == 1:
        return firings[0]
    if hook.cumulative:
        return firings[-1]
    if hook.key_axis is not None:
        n_keys = max(f.shape[hook.key_axis] for f in firings)
        firings = [_pad(f, hook.key_axis, n_keys, hook.key_fill) for f in firings]
    shapes = {tuple(s for i, s in enumerate(f.shape) if i != hook.position_axis) for f in firings}
    if len(shapes) > 1:
        raise WhisperLensError(f"{hook.name}: the {len(firings)} firings of one call do not line up; use cache.firings(name)")
    return torch.cat(firings, dim=hook.position_axis)


def _pad(x: torch.Tensor, axis: int, size: int, fill: float) -> torch.Tensor:
    if x.shape[axis] == size:
        return x
    shape = list(x.shape)
    shape[axis] = size - x.shape[axis]
    return torch.cat([x, x.new_full(shape, fill)], dim=axis)


class ActivationCache:
    """Activations by hook name, kept apart per call.

    A call is one forward pass of the encoder (in `transcribe`: one per 30 s window and decoding
    attempt), or one decoding attempt of the decoder: it starts with an empty kv-cache, and its
    steps, one per generated token, are joined along the position axis. `cache[name]` is the
    activation of the only call; `cache.calls(name)` gives one tensor per call and
    `cache.firings(name)` every raw firing. The cache keeps the model that filled it, for the
    residual-stream helpers.
    """

    def __init__(self, model: nn.Module | None = None):
        self.model = model
        self._calls: dict[str, list[list[torch.Tensor]]] = {}
        self._call_ids: dict[str, object] = {}
        self._hook_points: dict[str, HookPoint] = {}

    def record(self, hook: HookPoint, activation: torch.Tensor, call: object = 0) -> None:
        """Keep one firing of `hook`; a `call` other than its previous firing's starts a new call."""
        calls = self._calls.setdefault(hook.name, [])
        if not calls or self._call_ids[hook.name] != call:
            calls.append([])
            self._call_ids[hook.name] = call
        calls[-1].append(activation)
        self._hook_points[hook.name] = hook

    def calls(self, name: str) -> list[torch.Tensor]:
        name = self._resolve(name)
        return [join_steps(self._hook_points[name], firings) for firings in self._calls[name]]

    def firings(self, name: str) -> list[torch.Tensor]:
        return [f for firings in self._calls[self._resolve(name)] for f in firings]

    def __getitem__(self, name: str) -> torch.Tensor:
        calls = self.calls(name)
        if len(calls) > 1:
            raise WhisperLensError(
                f"{name} fired in {len(calls)} calls (one per encoder pass or decoding attempt); use cache.calls(name)"
            )
        return calls[0]

    def _resolve(self, name: str) -> str:
        name = resolve_alias(name)
        if name not in self._calls:
            raise KeyError(f"{name} is not in the cache (cached: {len(self._calls)} names)")
        return name

    def __contains__(self, name: str) -> bool:
        return resolve_alias(name) in self._calls

    def keys(self) -> list[str]:
        return list(self._calls)

    def items(self) -> Iterator[tuple[str, torch.Tensor]]:
        return ((name, self[name]) for name in self._calls)

    def __len__(self) -> int:
        return len(self._calls)

    def save(self, path) -> None:
        """Save as safetensors (by suffix `.safetensors`) or numpy `.npz`, atomically.

        A hook that fired in several calls gets one entry per call: `NAME.call0`, `NAME.call1`, ...
        """
        from .storage import atomic_path

        tensors = {}
        for name in self._calls:
            calls = self.calls(name)
            tensors.update({name: calls[0]} if len(calls) == 1 else {f"{name}.call{i}": c for i, c in enumerate(calls)})
        # clone: cross-attention keys are the same tensor at every step, and safetensors refuses shared storage
        tensors = {name: t.detach().float().cpu().clone() for name, t in tensors.items()}
        with atomic_path(path) as tmp:
            if str(path).endswith(".safetensors"):
                from safetensors.torch import save_file

                save_file(tensors, str(tmp))
            elif str(path).endswith(".npz"):
                import numpy as np

                with open(tmp, "wb") as f:
                    np.savez(f, **{n: t.numpy() for n, t in tensors.items()})
            else:
                raise WhisperLensError(f"{path}: cache files end in .safetensors or .npz")

    def __repr__(self) -> str:
        return f"ActivationCache({len(self)} hooks)"

    # ---- the residual stream, as TransformerLens's ActivationCache -----------------------------
    # `stack` is "encoder" or "decoder"; `call` picks one call where a hook fired in several.

    def accumulated_resid(self, stack: str, layer: int | None = None, incl_mid: bool = False, apply_ln: bool = False,
                          call: int | None = None) -> tuple[torch.Tensor, list[str]]:
        """The residual stream as it builds up: (components, batch, pos, d) and a label for each.

        The input of each block before `layer` (default: all), with `incl_mid` its middle points
        too, then the input of block `layer`, or the last block's output ("final_post").
        `apply_ln` puts each through the final LayerNorm, as if it were the last (the logit lens).
        """
        n_layers = len(self._model().blocks(stack))
        layer = _layer_count(layer, n_layers)
        mids = ("mid", "mid_cross") if stack == "decoder" else ("mid",)
        names, labels = [], []
        for i in range(layer + 1):
            if i == n_layers:
                names.append(f"{stack}.blocks.{n_layers - 1}.hook_resid_post")
                labels.append("final_post")
                continue
            names.append(f"{stack}.blocks.{i}.hook_resid_pre")
            labels.append(f"{i}_pre")
            for mid in mids if incl_mid and i < layer else ():
                names.append(f"{stack}.blocks.{i}.hook_resid_{mid}")
                labels.append(f"{i}_{mid}")
        components = torch.stack([self._get(name, call) for name in names])
        return (self.apply_ln_to_stack(components, stack) if apply_ln else components), labels

    def decompose_resid(self, stack: str, layer: int | None = None, apply_ln: bool = False,
                        call: int | None = None) -> tuple[torch.Tensor, list[str]]:
        """What each part writes into the residual stream: (components, batch, pos, d) and labels.

        The embedding, then for each block before `layer` (default: all) its attention output,
        the decoder's cross-attention output and the MLP output: they sum to the input of block
        `layer` (the last block's output by default). `apply_ln` applies the final LayerNorm's
        linear part at that sum (centred, divided by the sum's scale, times the weight), so the
        parts still add up: to the LayerNorm's output minus its bias.
        """
        n_layers = len(self._model().blocks(stack))
        parts = ("attn_out", "cross_attn_out", "mlp_out") if stack == "decoder" else ("attn_out", "mlp_out")
        names, labels = [f"{stack}.hook_embed"], ["embed"]
        for i in range(_layer_count(layer, n_layers)):
            names += [f"{stack}.blocks.{i}.hook_{part}" for part in parts]
            labels += [f"{i}_{part}" for part in parts]
        components = torch.stack([self._get(name, call) for name in names])
        if not apply_ln:
            return components, labels
        ln = self._model().final_ln(stack)
        scale = (components.sum(0).float().var(-1, keepdim=True, unbiased=False) + ln.eps).sqrt()
        return (components.float() - components.float().mean(-1, keepdim=True)) / scale * ln.weight.float(), labels

    def apply_ln_to_stack(self, resid_stack: torch.Tensor, stack: str) -> torch.Tensor:
        """Each residual vector through the stack's final LayerNorm (encoder `ln_post`, decoder `ln`)."""
        return self._model().final_ln(stack)(resid_stack)

    def logits_from_resid(self, resid: torch.Tensor, apply_ln: bool = True) -> torch.Tensor:
        """Decoder residual vectors to logits: the final LayerNorm, then the tied token embedding."""
        return self._model().unembed(self.apply_ln_to_stack(resid, "decoder") if apply_ln else resid)

    def stack_activation(self, name_pattern: NameFilter, call: int | None = None) -> tuple[torch.Tensor, list[str]]:
        """Every cached activation matching the pattern (e.g. `encoder.blocks.*.hook_resid_post`), stacked."""
        matches = name_matcher(resolve_filter(name_pattern))
        names = [name for name in self._calls if matches(name)]
        if not names:
            raise KeyError(f"no cached activation matches {name_pattern!r} (cached: {len(self._calls)} names)")
        return torch.stack([self._get(name, call) for name in names]), names

    def _get(self, name: str, call: int | None) -> torch.Tensor:
        return self[name] if call is None else self.calls(name)[call]

    def _model(self):
        if self.model is None:
            raise WhisperLensError("this cache has no model; fill it with model.caching() or model.run_with_cache()")
        return self.model


def _layer_count(layer: int | None, n_layers: int) -> int:
    if layer is None or layer == -1:
        return n_layers
    if not 0 <= layer <= n_layers:
        raise WhisperLensError(f"layer {layer} is out of range: the stack has blocks 0-{n_layers - 1}")
    return layer


class HookedRootModule(nn.Module):
    """Mixin for a model made of HookPoints: name them, find them, attach and detach hooks."""

    hook_dict: dict[str, HookPoint]

    def setup_hooks(self) -> None:
        self.hook_dict = {}
        for name, module in self.named_modules():
            if isinstance(module, HookPoint):
                module.name = name
                self.hook_dict[name] = module

    def hook_names(self, names: NameFilter = None) -> list[str]:
        matches = name_matcher(resolve_filter(names))
        return [name for name in self.hook_dict if matches(name)]

    def hook_points(self, names: NameFilter = None) -> list[HookPoint]:
        """The matching hook points; a name or glob that matches none is an error."""
        selected = [self.hook_dict[n] for n in self.hook_names(names)]
        if not selected and isinstance(names, (str, list, tuple)):
            raise WhisperLensError(f"no hook point matches {names!r}; see `whisperlens inspect` for the names")
        return selected

    def add_hook(self, names: NameFilter, fn: HookFn, direction: str = "fwd", *, observer: bool = False) -> list[HookHandle]:
        """Attach `fn` to every matching hook point until its handle's `remove()` or `remove_all_hooks()`."""
        return [hook_point.add_hook(fn, direction, observer=observer) for hook_point in self.hook_points(names)]

    def remove_all_hooks(self) -> None:
        for hook_point in self.hook_dict.values():
            hook_point.remove_hooks()

    def call_index(self, hook: HookPoint) -> object:
        """Which call (forward pass) a firing of `hook` belongs to; models that run in steps override it."""
        return 0

    @contextmanager
    def intervene(self, *interventions: Intervention | Mapping):
        """Apply interventions (or their dicts) for a `with` block, in order; all are checked before any applies."""
        specs = [as_intervention(i) for i in interventions]
        for spec in specs:
            spec.check(self)
        with ExitStack() as stack:
            for spec in specs:
                stack.enter_context(spec.apply(self))
            yield self

    @contextmanager
    def hooks(self, fwd: Iterable[tuple[NameFilter, HookFn]] = (), bwd: Iterable[tuple[NameFilter, HookFn]] = (),
              interventions: Iterable[Intervention | Mapping] = ()):
        """Attach hooks (after applying `interventions`) for a `with` block; exactly these are removed, even on error."""
        with ExitStack() as stack:
            stack.enter_context(self.intervene(*interventions))
            for direction, pairs in (("fwd", fwd), ("bwd", bwd)):
                for names, fn in pairs:
                    for handle in self.add_hook(names, fn, direction):
                        stack.callback(handle.remove)
            yield self

    @contextmanager
    def caching(self, names: NameFilter = None, detach: bool = True, device: str | torch.device | None = None,
                interventions: Iterable[Intervention | Mapping] = ()):
        """Record every firing of the selected hooks into an ActivationCache while the block runs.

        The cache observes: it records each activation as the model goes on with it, after every
        other hook and intervention on that point, whichever context was entered first.
        """
        cache = ActivationCache(self)

        def save(activation: torch.Tensor, hook: HookPoint):
            value = activation.detach() if detach else activation
            cache.record(hook, value.to(device) if device is not None else value, self.call_index(hook))

        with ExitStack() as stack:
            stack.enter_context(self.intervene(*interventions))
            for handle in self.add_hook(names, save, observer=True):
                stack.callback(handle.remove)
            yield cache
