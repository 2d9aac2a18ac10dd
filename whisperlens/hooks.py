"""TransformerLens-style hook points, hook management and activation caches.

Written here rather than imported from TransformerLens: its HookedRootModule assumes its own
model classes and config, and TransformerLens does not support Whisper. The API mirrors it
(`HookPoint`, `run_with_hooks`, `run_with_cache`, `ActivationCache`) so its users feel at home.
"""

from __future__ import annotations

import fnmatch
import re
from contextlib import contextmanager
from typing import Callable, Iterable, Iterator, Sequence, Union

import torch
from torch import nn

from .errors import WhisperLensError

HookFn = Callable[[torch.Tensor, "HookPoint"], Union[torch.Tensor, None]]
NameFilter = Union[str, Sequence[str], Callable[[str], bool], None]


class HookPoint(nn.Module):
    """An identity module marking an activation that hooks can read or replace."""

    def __init__(self):
        super().__init__()
        self.name: str = ""
        self._handles: list = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def add_hook(self, fn: HookFn, direction: str = "fwd") -> None:
        """Call `fn(activation, hook)` on the forward value, or on its gradient (`bwd`).

        A non-None return value replaces the activation (or the gradient).
        """
        if direction == "fwd":
            handle = self.register_forward_hook(lambda module, inputs, output: fn(output, self))
        elif direction == "bwd":

            def attach_gradient_hook(module, inputs, output):
                if output.requires_grad:
                    output.register_hook(lambda grad: fn(grad, self))

            handle = self.register_forward_hook(attach_gradient_hook)
        else:
            raise ValueError(f"direction must be 'fwd' or 'bwd', not {direction!r}")
        self._handles.append(handle)

    @property
    def has_hooks(self) -> bool:
        return bool(self._forward_hooks)

    def remove_hooks(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def extra_repr(self) -> str:
        return self.name


def name_matcher(names: NameFilter) -> Callable[[str], bool]:
    """Turn a hook-name filter into a predicate.

    A filter is None (everything), a predicate, a name, a glob (`encoder.blocks.*.hook_resid_post`),
    or a list of those.
    """
    if names is None:
        return lambda name: True
    if callable(names):
        return names
    patterns = [names] if isinstance(names, str) else list(names)
    regexes = [re.compile(fnmatch.translate(p)) for p in patterns]
    return lambda name: any(r.match(name) for r in regexes)


class ActivationCache:
    """Activations by hook name, from one run or gathered across the steps of a decode.

    `cache[name]` gives the activation of a single firing; for hooks that fired several times
    (the decoder, once per generated token with the kv-cache on), it concatenates the firings
    along the position axis when they line up, and `cache.firings(name)` gives the list.
    """

    def __init__(self, firings: dict[str, list[torch.Tensor]] | None = None):
        self._firings: dict[str, list[torch.Tensor]] = firings if firings is not None else {}

    def record(self, name: str, activation: torch.Tensor) -> None:
        self._firings.setdefault(name, []).append(activation)

    def firings(self, name: str) -> list[torch.Tensor]:
        return self._firings[self._resolve(name)]

    def __getitem__(self, name: str) -> torch.Tensor:
        firings = self.firings(name)
        if len(firings) == 1:
            return firings[0]
        axis = _query_axis(name)
        if axis is not None and _line_up(firings, axis):
            return torch.cat(firings, dim=axis)
        raise WhisperLensError(f"{name} fired {len(firings)} times with shapes that do not line up; use cache.firings(name)")

    def _resolve(self, name: str) -> str:
        from .hooked import resolve_alias  # the alias table belongs to the model

        name = resolve_alias(name)
        if name not in self._firings:
            raise KeyError(f"{name} is not in the cache (cached: {len(self._firings)} names)")
        return name

    def __contains__(self, name: str) -> bool:
        try:
            self._resolve(name)
        except KeyError:
            return False
        return True

    def keys(self) -> list[str]:
        return list(self._firings)

    def items(self) -> Iterator[tuple[str, torch.Tensor]]:
        return ((name, self[name]) for name in self._firings)

    def __len__(self) -> int:
        return len(self._firings)

    def save(self, path) -> None:
        """Save as safetensors (by suffix `.safetensors`) or numpy `.npz`, atomically."""
        from .storage import atomic_path

        tensors = {}
        for name, firings in self._firings.items():
            try:
                tensors[name] = self[name]
            except WhisperLensError:  # e.g. self-attention keys growing step by step: one entry per firing
                tensors.update({f"{name}.{i}": f for i, f in enumerate(firings)})
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


def _query_axis(name: str) -> int | None:
    """The axis along which successive decoder steps' firings stack (None: they don't)."""
    if name.endswith(("hook_k", "hook_v")):
        return None  # keys and values span all positions so far (or all audio frames) at each step
    if name.endswith(("hook_scores", "hook_pattern")):
        return 2  # (batch, head, query, key)
    return 1  # (batch, position, ...)


def _line_up(firings: list[torch.Tensor], axis: int) -> bool:
    shapes = {tuple(s for i, s in enumerate(f.shape) if i != axis) for f in firings}
    return len(shapes) == 1 and all(f.dim() > axis for f in firings)


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
        matches = name_matcher(self._resolve_filter(names))
        return [name for name in self.hook_dict if matches(name)]

    def _resolve_filter(self, names: NameFilter) -> NameFilter:
        from .hooked import resolve_alias

        if isinstance(names, str):
            return resolve_alias(names)
        if isinstance(names, (list, tuple)):
            return [resolve_alias(n) for n in names]
        return names

    def _select(self, names: NameFilter) -> list[HookPoint]:
        selected = [self.hook_dict[n] for n in self.hook_names(names)]
        if not selected and isinstance(names, (str, list, tuple)):
            raise WhisperLensError(f"no hook point matches {names!r}; see `whisperlens inspect` for the names")
        return selected

    def remove_all_hooks(self) -> None:
        for hook_point in self.hook_dict.values():
            hook_point.remove_hooks()

    @contextmanager
    def hooks(self, fwd: Iterable[tuple[NameFilter, HookFn]] = (), bwd: Iterable[tuple[NameFilter, HookFn]] = ()):
        """Attach hooks for the duration of a `with` block; they are removed even on error."""
        attached: list[HookPoint] = []
        try:
            for direction, pairs in (("fwd", fwd), ("bwd", bwd)):
                for names, fn in pairs:
                    for hook_point in self._select(names):
                        hook_point.add_hook(fn, direction)
                        attached.append(hook_point)
            yield self
        finally:
            for hook_point in attached:
                hook_point.remove_hooks()

    @contextmanager
    def caching(self, names: NameFilter = None, detach: bool = True, device: str | torch.device | None = None):
        """Record every firing of the selected hooks into an ActivationCache while the block runs."""
        cache = ActivationCache()

        def save(activation: torch.Tensor, hook: HookPoint):
            value = activation.detach() if detach else activation
            cache.record(hook.name, value.to(device) if device is not None else value)

        with self.hooks(fwd=[(self._resolve_filter(names), save)]):
            yield cache
