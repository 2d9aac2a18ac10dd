"""How far the fast modes agree with exact mode: the same harvest in each mode, compared
feature by feature (top-k overlap, top-1 agreement, phone-label agreement)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..corpus.selection import CorpusSelection
from ..storage import atomic_path
from .harvest import HarvestConfig, Harvester, model_for_mode
from .labels import phone_labels
from .store import FrameTable

AGREEMENT_HOOKS = ("encoder.blocks.*.mlp.hook_post", "encoder.blocks.*.hook_resid_post")


@dataclass
class AgreementConfig:
    corpus: Path | str | None = None
    corpus_set: str | None = "english"
    clips: int = 500
    model: str = "tiny.en"
    modes: tuple[str, ...] = ("short", "short-bf16")
    hooks: tuple[str, ...] = AGREEMENT_HOOKS
    top_k: int = 32
    batch_size: int = 32
    seed: int = 0
    out: Path = Path("runs/features/agreement")


@dataclass
class SiteAgreement:
    mode: str
    site: str
    features: int  # live in exact mode (a positive maximum)
    topk_overlap: float  # mean over features of |top-k clips in both| / |top-k clips in exact|
    top1_same: float  # share of features whose best clip is the same
    label_agreement: float  # among features phone-selective in exact mode: same top phone
    selective_exact: int
    selective_mode: int


@dataclass
class AgreementResult:
    config: AgreementConfig
    rows: list[SiteAgreement]
    clips_per_second: dict[str, float] = field(default_factory=dict)

    def markdown(self) -> str:
        lines = [f"Agreement with exact mode, {self.config.model}, {self.config.clips} clips, top-{self.config.top_k}:", "",
                 "| mode | site | live features | top-k overlap | same top-1 clip | same phone label | selective (exact / mode) |",
                 "|---|---|---:|---:|---:|---:|---:|"]
        for r in self.rows:
            lines.append(f"| {r.mode} | {r.site} | {r.features} | {r.topk_overlap:.1%} | {r.top1_same:.1%} | "
                         f"{r.label_agreement:.1%} | {r.selective_exact} / {r.selective_mode} |")
        lines += ["", "| mode | harvest clips/s |", "|---|---:|"]
        lines += [f"| {mode} | {rate:.1f} |" for mode, rate in self.clips_per_second.items()]
        return "\n".join(lines)

    def save(self, path: Path) -> None:
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps({"config": asdict(self.config), "rows": [asdict(r) for r in self.rows],
                                       "clips_per_second": self.clips_per_second}, indent=2, default=str))


def compare_sites(mode: str, site: str, exact, fast, frames: FrameTable) -> SiteAgreement:
    live = np.flatnonzero(exact.top_clips[:, 0] >= 0)
    overlaps, same_top1 = [], []
    for f in live:
        exact_clips = set(exact.top_clips[f][exact.top_clips[f] >= 0].tolist())
        fast_clips = set(fast.top_clips[f][fast.top_clips[f] >= 0].tolist())
        overlaps.append(len(exact_clips & fast_clips) / len(exact_clips))
        same_top1.append(exact.top_clips[f, 0] == fast.top_clips[f, 0])
    exact_labels, fast_labels = phone_labels(exact, frames), phone_labels(fast, frames)
    selective = [f for f, label in enumerate(exact_labels) if label.selective]
    agree = [exact_labels[f].top_phone == fast_labels[f].top_phone for f in selective]
    return SiteAgreement(
        mode=mode, site=site, features=len(live), topk_overlap=float(np.mean(overlaps)) if overlaps else float("nan"),
        top1_same=float(np.mean(same_top1)) if same_top1 else float("nan"),
        label_agreement=float(np.mean(agree)) if agree else float("nan"),
        selective_exact=len(selective), selective_mode=sum(label.selective for label in fast_labels),
    )


def measure_agreement(config: AgreementConfig, progress: bool = True) -> AgreementResult:
    corpus = CorpusSelection(path=config.corpus, sets=config.corpus_set or (), clips=config.clips).open()
    results, rates = {}, {}
    for mode in ("exact",) + tuple(m for m in config.modes if m != "exact"):
        harvest_config = HarvestConfig(model=config.model, hooks=config.hooks, bases=("neurons",), mode=mode,
                                       top_k=config.top_k, batch_size=config.batch_size, seed=config.seed)
        harvester = Harvester(corpus, harvest_config, model_for_mode(config.model, mode, "cpu"))
        checkpoint = Path(config.out) / f"{mode}-checkpoint.npz"
        results[mode] = harvester.run(checkpoint, progress)
        rates[mode] = results[mode].clips_per_second
        checkpoint.unlink()  # resumes an interrupted mode; a finished one is measured afresh next time
    frames = FrameTable(results["exact"].frames)
    rows = [compare_sites(mode, site, results["exact"].sites[site], results[mode].sites[site], frames)
            for mode in results if mode != "exact" for site in results["exact"].sites]
    result = AgreementResult(config, rows, rates)
    result.save(Path(config.out) / "agreement.json")
    return result
