"""How far the fast modes agree with exact mode: the same harvest in each mode, compared
feature by feature (top-k overlap, top-1 agreement, phone-label agreement)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

import numpy as np

from ..corpus.selection import CorpusSelection
from ..errors import WhisperLensError
from ..study import CorpusStudyConfig, Result, Study, Table
from .harvest import MODES, HarvestConfig, Harvester
from .labels import phone_labels
from .store import FrameTable

AGREEMENT_HOOKS = ("encoder.blocks.*.mlp.hook_post", "encoder.blocks.*.hook_resid_post")


@dataclass
class AgreementConfig(CorpusStudyConfig):
    """Harvest the same clips in exact mode and in each fast mode, and compare feature by feature."""

    corpus: CorpusSelection = field(default_factory=lambda: CorpusSelection(clips=500))
    modes: tuple[str, ...] = ("short", "short-bf16")  # fast modes compared with exact
    hooks: tuple[str, ...] = AGREEMENT_HOOKS  # hook names or globs
    top_k: int = 32  # top clips kept per feature
    batch_size: int = 32  # clips per forward pass

    def validate(self) -> None:
        super().validate()
        bad = [mode for mode in self.modes if mode not in MODES]
        if bad:
            raise WhisperLensError(f"--modes must be among {', '.join(MODES)}, not {bad[0]!r}")


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


class AgreementResult(Result):
    study = "agreement"
    config_type = AgreementConfig

    def views(self):
        rows = self.summary["rows"]
        return [
            Table(["mode", "site", "live features", "top-k overlap %", "same top-1 clip %", "same phone label %",
                   "selective (exact / mode)"],
                  [[r["mode"], r["site"], r["features"], round(100 * r["topk_overlap"], 1), round(100 * r["top1_same"], 1),
                    round(100 * r["label_agreement"], 1), f"{r['selective_exact']} / {r['selective_mode']}"] for r in rows],
                  caption=f"Agreement with exact mode, {self.config.model.model}, {len(self.summary['clip_ids'])} clips, "
                          f"top-{self.config.top_k}"),
            Table(["mode", "harvest clips/s"], [[m, round(r, 1)] for m, r in self.summary["clips_per_second"].items()]),
        ]


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


def run(config: AgreementConfig, context) -> AgreementResult:
    corpus = context.corpus(config.corpus)
    results, rates = {}, {}
    for mode in ("exact",) + tuple(m for m in config.modes if m != "exact"):
        harvest_config = HarvestConfig(model=config.model.model, hooks=config.hooks, bases=("neurons",), mode=mode,
                                       top_k=config.top_k, batch_size=config.batch_size, seed=config.seed)
        model = context.model(replace(config.model, dtype="bfloat16") if mode == "short-bf16" else config.model)
        checkpoint = context.checkpoint_path(mode)
        results[mode] = Harvester(corpus, harvest_config, model).run(checkpoint, context.show_progress)
        rates[mode] = results[mode].clips_per_second
        checkpoint.unlink()  # resumes an interrupted mode; a finished one is measured afresh next time
    frames = FrameTable(results["exact"].frames)
    rows = [asdict(compare_sites(mode, site, results["exact"].sites[site], results[mode].sites[site], frames))
            for mode in results if mode != "exact" for site in results["exact"].sites]
    summary = {"rows": rows, "clips_per_second": {m: round(r, 1) for m, r in rates.items()},
               "clip_ids": results["exact"].clip_ids}
    return AgreementResult(config, summary, folder=context.folder)


STUDY = Study("agreement", "Fast modes against exact mode", AgreementConfig, run, AgreementResult,
              description="How far the short (and bfloat16) harvest agrees with exact mode, feature by feature.")
