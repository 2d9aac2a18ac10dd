"""The feature store on disk: one directory per harvest.

    <root>/manifest.json          format version, model, mode, corpus, configuration, sites, timings
    <root>/clips.json             clip ids (a clip index in the statistics is a line here)
    <root>/frames.npz             per clip: the phone under each encoder frame, the tokens
    <root>/sites/<site>.npz       a site's finalized SiteStats arrays
    <root>/labels/<site>.json     phone or token labels (labels.py)
    <root>/saes/<hook>/           SAELens SAEs used as bases
    <root>/html/                  the listening pages
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..errors import WhisperLensError
from ..storage import atomic_path
from .harvest import PHONES, HarvestResult
from .stats import SiteStats

# Bump when the layout or the meaning of a stored array changes; stores of another version are
# refused with a request to rebuild rather than read wrongly.
# 2: sites keep negative examples (negative_values/clips/positions); the manifest records how
#    the mode was chosen (mode_choice).
FORMAT_VERSION = 2


def site_filename(site: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", site)


def labels_path(root: str | Path, site: str) -> Path:
    """Where a site's labels live (labels.py writes them; FeatureStore.labels reads them)."""
    return Path(root) / "labels" / f"{site_filename(site)}.json"


class FeatureStore:
    def __init__(self, root: str | Path):
        self.root = Path(root)
        manifest = self.root / "manifest.json"
        if not manifest.exists():
            raise WhisperLensError(
                f"{self.root}: no feature store there (no manifest.json); run `whisperlens features run --store {self.root}`"
            )
        self.manifest = _read_json(manifest)
        version = self.manifest.get("format_version") if isinstance(self.manifest, dict) else None
        if version != FORMAT_VERSION:
            found = "no format version" if version is None else f"format version {version!r}"
            raise WhisperLensError(
                f"{self.root}: feature store has {found}, this whisperlens reads version {FORMAT_VERSION}; "
                f"rebuild it with `whisperlens features run --store {self.root}`"
            )
        self._site_cache: dict[str, SiteStats] = {}

    # ---- writing ---------------------------------------------------------------------------

    @staticmethod
    def save(result: HarvestResult, root: str | Path, corpus_root: str | None, extra: dict | None = None) -> FeatureStore:
        root = Path(root)
        sites = {}
        for name, stats in result.sites.items():
            filename = f"sites/{site_filename(name)}.npz"
            with atomic_path(root / filename) as tmp:
                with open(tmp, "wb") as f:
                    np.savez(f, **stats.arrays())
            sites[name] = {**result.site_info[name], "file": filename}
        frames = result.frames
        with atomic_path(root / "frames.npz") as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, **frames)
        with atomic_path(root / "clips.json") as tmp:
            tmp.write_text(json.dumps(result.clip_ids))
        manifest = {
            "model": result.config.model, "mode": result.config.mode, "corpus": corpus_root,
            "config": asdict(result.config), "phones": list(PHONES), "sites": sites,
            "mode_choice": result.mode or {"requested": result.config.mode, "chosen": result.config.mode},
            "harvest_seconds": result.seconds, "harvest_clips_per_second": result.clips_per_second,
            **(extra or {}),
            "format_version": FORMAT_VERSION,
        }
        with atomic_path(root / "manifest.json") as tmp:
            tmp.write_text(json.dumps(manifest, indent=2, default=str))
        return FeatureStore(root)

    # ---- reading ---------------------------------------------------------------------------

    @property
    def sites(self) -> list[str]:
        return list(self.manifest["sites"])

    def site_info(self, site: str) -> dict:
        return self.manifest["sites"][self.check_site(site)]

    def check_site(self, site: str) -> str:
        from ..hooked import resolve_alias

        kind, _, hook = site.rpartition(":")
        resolved = f"{kind}:{resolve_alias(hook)}" if kind else resolve_alias(hook)
        if resolved not in self.manifest["sites"]:
            raise WhisperLensError(f"unknown site {site!r}; this store has: {', '.join(self.sites)}")
        return resolved

    def stats(self, site: str) -> SiteStats:
        site = self.check_site(site)
        if site not in self._site_cache:
            with np.load(self.root / self.manifest["sites"][site]["file"]) as data:
                self._site_cache[site] = SiteStats.from_arrays(data)
        return self._site_cache[site]

    def parse_feature(self, feature_id: str) -> tuple[str, int]:
        """`encoder.blocks.2.mlp.hook_post:17`, `sae:encoder.blocks.3.hook_resid_post:42` or
        `random:...:5` -> (site, index)."""
        site, sep, index = feature_id.rpartition(":")
        if not sep or not index.isdigit():
            raise WhisperLensError(f"unknown feature id {feature_id!r}: write SITE:INDEX, e.g. encoder.blocks.2.mlp.hook_post:17")
        site = self.check_site(site)
        n = self.manifest["sites"][site]["n_features"]
        if int(index) >= n:
            raise WhisperLensError(f"unknown feature id {feature_id!r}: {site} has features 0-{n - 1}")
        return site, int(index)

    @property
    def mode_description(self) -> str:
        """The mode and why: `short-bf16 (auto: bf16 matmul 2.6x fp32 on this CPU)`."""
        return describe_mode(self.manifest.get("mode_choice") or {"requested": self.manifest["mode"],
                                                                  "chosen": self.manifest["mode"]})

    @property
    def clip_ids(self) -> list[str]:
        return _read_json(self.root / "clips.json")

    @property
    def frames(self) -> FrameTable:
        return _frame_table(self.root / "frames.npz")

    def labels(self, site: str) -> dict:
        path = labels_path(self.root, self.check_site(site))
        if not path.exists():
            raise WhisperLensError(f"{path}: no labels yet; run `whisperlens features run` to completion")
        return _read_json(path)


def describe_mode(choice: dict) -> str:
    """A mode record (harvest.mode_record) in words."""
    chosen = choice["chosen"]
    probe = choice.get("probe")
    if choice.get("requested") != "auto" or not probe:
        return f"{chosen} (--mode {chosen})"
    ratio = probe["bf16_gflops"] / max(probe["fp32_gflops"], 1e-9)
    return (f"{chosen} (chosen automatically: bf16 matmul ran at {ratio:.1f}x fp32 on this CPU, "
            f"{probe['bf16_gflops']:.0f} against {probe['fp32_gflops']:.0f} GFLOP/s)")


class FrameTable:
    """Ragged per-clip arrays: phone index under each encoder frame, tokens of the transcript."""

    def __init__(self, arrays: dict[str, np.ndarray]):
        self.phone_offsets, self.phones = arrays["phone_offsets"], arrays["phones"]
        self.token_offsets, self.tokens = arrays["token_offsets"], arrays["tokens"]

    def phone_at(self, clips: np.ndarray, positions: np.ndarray) -> np.ndarray:
        """Phone index per (clip, position); -1 where clip is -1 (an empty example slot)."""
        clips, positions = np.asarray(clips), np.asarray(positions)
        valid = clips >= 0
        index = np.where(valid, self.phone_offsets[np.where(valid, clips, 0)] + positions, 0)
        return np.where(valid, self.phones[index], -1)

    def clip_phones(self, clip: int) -> np.ndarray:
        return self.phones[self.phone_offsets[clip]: self.phone_offsets[clip + 1]]

    def clip_tokens(self, clip: int) -> np.ndarray:
        return self.tokens[self.token_offsets[clip]: self.token_offsets[clip + 1]]


@lru_cache(maxsize=4)
def _frame_table(path: Path) -> FrameTable:
    with np.load(path) as data:
        return FrameTable({k: data[k] for k in data.files})


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise WhisperLensError(f"{path}: unreadable ({error})") from None


def basis_for_site(store: FeatureStore, site: str):
    """Rebuild the basis a site was harvested with (random directions come back from the seed)."""
    from .bases import NeuronBasis, RandomBasis, SAEBasis

    info = store.site_info(site)
    config = store.manifest["config"]
    if info["kind"] == "neurons":
        return NeuronBasis(info["hook"], info["n_features"])
    if info["kind"] == "random":
        d_in = _hook_width_from_store(store, info["hook"])
        return RandomBasis(info["hook"], d_in, info["n_features"], config["seed"])
    return SAEBasis(config["sae_paths"][info["hook"]], info["hook"])


def _hook_width_from_store(store: FeatureStore, hook: str) -> int:
    neuron_site = store.manifest["sites"].get(hook)
    if neuron_site is not None:
        return neuron_site["n_features"]
    from .harvest import _hook_width, model_for_mode

    return _hook_width(model_for_mode(store.manifest["model"], "exact", "cpu"), hook)
