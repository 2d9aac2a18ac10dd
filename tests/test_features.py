"""The feature harvest, labels, listening and CLI, on real tiny.en weights and a small corpus
synthesized with the corpus builder."""

from __future__ import annotations

import json
from dataclasses import asdict
from html.parser import HTMLParser

import numpy as np
import pytest
import torch

from whisperlens.cli import main
from whisperlens.features.bases import NeuronBasis, RandomBasis
from whisperlens.features.harvest import (
    PHONE_INDEX,
    PHONES,
    Harvester,
    MatmulProbe,
    choose_mode,
)
from whisperlens.features.labels import negative_agreement, phone_labels
from whisperlens.features.listening import (
    amplified_window,
    data_uri,
    frame_centre_sample,
    spectrogram_figure,
)
from whisperlens.features.stats import (
    N_BANDS,
    SiteStats,
    band_of,
    bin_lower_edges,
    frame_priorities,
)
from whisperlens.features.store import FrameTable, describe_mode

from .conftest import small_config


class RecordingHarvester(Harvester):
    """A harvester that keeps every batch it folds in, so a test can redo the statistics from
    exactly the activations the harvest read."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.batches = []

    def process_batch(self, batch):
        self.batches.append(batch)
        super().process_batch(batch)


@pytest.fixture(scope="module")
def recorded(corpus, tiny):
    harvester = RecordingHarvester(corpus, small_config(), tiny)
    return harvester.run(progress=False), harvester.batches


def brute_force(batches, hook: str, basis):
    """Every activation of `basis` at `hook`, clip by clip: (values (n_features, frames), clip
    of each frame, position), from the batches the harvest read (in short mode a clip's
    activations depend on its batch's longest clip; tests/test_stream.py checks the stream
    against clips run alone). Everything after the forward passes is done here, one clip at a time."""
    values, clips, positions = [], [], []
    for batch in batches:
        values.append(basis.encode(batch.valid(hook)).numpy().T)
        for clip, n in zip(batch.clip_indices.tolist(), batch.lengths_of(hook), strict=True):
            clips += [clip] * n
            positions += list(range(n))
    return np.concatenate(values, axis=1), np.array(clips), np.array(positions)


def top_k_by_clip(values, clips, positions, k, sign=1.0):
    """Each clip's first maximum of sign * values, if positive; the k largest, ties to the earlier clip."""
    per_clip = []
    for clip in np.unique(clips):
        in_clip = np.flatnonzero(clips == clip)
        best = in_clip[np.argmax(sign * values[in_clip])]
        if sign * values[best] > 0:
            per_clip.append((-sign * values[best], clip, positions[best]))
    return sorted(per_clip)[:k]


@pytest.mark.parametrize("site", ["encoder.blocks.2.mlp.hook_post", "random:encoder.blocks.3.hook_resid_post",
                                  "decoder.blocks.1.mlp.hook_post"])
def test_streamed_statistics_equal_brute_force(recorded, site):
    config = small_config()
    harvested, batches = recorded
    hook = site.split(":")[-1]
    d = harvested.sites[site].n_features
    basis = RandomBasis(hook, 384, 64, config.seed) if site.startswith("random:") else NeuronBasis(hook, d)
    values, clips, positions = brute_force(batches, hook, basis)
    stats = harvested.sites[site]
    assert int(stats.n_frames) == values.shape[1]
    for f in range(0, basis.n_features, max(1, basis.n_features // 40)):
        # Top-k: each clip's first maximum, if positive; by value, ties to the earlier clip.
        expected = top_k_by_clip(values[f], clips, positions, config.top_k)
        got = [(-v, c, p) for v, c, p in zip(stats.top_values[f], stats.top_clips[f], stats.top_positions[f], strict=True)
               if c >= 0]
        assert got == expected
        # Histogram: fixed bins, exact counts. Bin 0 is (-inf, 0], the others [edge, next edge).
        edges = bin_lower_edges()
        bins = np.where(values[f] > 0, np.searchsorted(edges, values[f], side="right") - 1, 0)
        expected_histogram = np.bincount(bins, minlength=len(edges))
        assert np.array_equal(stats.complete_histogram()[f], expected_histogram)
        assert stats.firing_rate()[f] == pytest.approx((values[f] > 0).mean())
        # Band samples: the smallest hash priorities among each band's frames.
        priorities = frame_priorities(config.seed, clips, positions)
        bands = band_of(values[f])
        for band in range(2, N_BANDS):
            members = np.flatnonzero(bands == band)
            chosen = members[np.argsort(priorities[members])[:5]]
            kept = stats.sample_clips[f, band] >= 0
            assert list(zip(stats.sample_clips[f, band][kept], stats.sample_positions[f, band][kept], strict=True)) == \
                list(zip(clips[chosen], positions[chosen], strict=True))


def test_negative_examples_equal_brute_force(recorded):
    harvested, batches = recorded
    site, pre = "encoder.blocks.2.mlp.hook_post", "encoder.blocks.2.mlp.hook_pre"
    values, clips, positions = brute_force(batches, pre, NeuronBasis(pre, 1536))
    stats = harvested.sites[site]
    assert stats.negative_values.shape == (1536, small_config().top_k)
    for f in range(0, 1536, 37):
        # Each clip's first minimum of the pre-GELU value, if negative; the most negative first.
        expected = top_k_by_clip(values[f], clips, positions, small_config().top_k, sign=-1.0)
        got = [(-v, c, p) for v, c, p in zip(stats.negative_values[f], stats.negative_clips[f],
                                              stats.negative_positions[f], strict=True) if c >= 0]
        assert got == expected and got[0][0] < 0
    # Only encoder MLP neurons keep a negative side.
    assert [name for name, s in harvested.sites.items() if s.has_negatives] == [site]


def test_phone_counts_equal_brute_force(corpus, recorded):
    site = "encoder.blocks.2.mlp.hook_post"
    harvested, batches = recorded
    values, clips, positions = brute_force(batches, site, NeuronBasis(site, 1536))
    phones = np.array([PHONE_INDEX[p or "sil"] for i in range(len(corpus)) for p in corpus[i].frame_phones(100)])
    counts = harvested.sites[site].complete_phone_counts()
    for f in (0, 1, 17, 1535):
        expected = np.zeros((N_BANDS, len(PHONES)), np.int64)
        np.add.at(expected, (band_of(values[f]), phones), 1)
        assert np.array_equal(counts[f], expected)


class InterruptedCorpus:
    """A corpus whose audio read at clip `fail_at` is interrupted once, as a killed run would stop there."""

    def __init__(self, corpus, fail_at: int):
        self.corpus, self.fail_at = corpus, fail_at

    def __len__(self):
        return len(self.corpus)

    def __getitem__(self, index):
        clip = self.corpus[index]
        return InterruptedClip(clip, self) if index == self.fail_at else clip


class InterruptedClip:
    def __init__(self, clip, owner: InterruptedCorpus):
        self.clip, self.owner = clip, owner

    def __getattr__(self, name):
        return getattr(self.clip, name)

    @property
    def audio(self):
        if self.owner.fail_at is not None:
            self.owner.fail_at = None
            raise KeyboardInterrupt
        return self.clip.audio


def test_resumed_harvest_equals_uninterrupted(corpus, tiny, harvested, tmp_path):
    checkpoint = tmp_path / "checkpoint.npz"
    config = small_config(checkpoint_every=1)
    interrupted = InterruptedCorpus(corpus, fail_at=17)
    with pytest.raises(KeyboardInterrupt):
        Harvester(interrupted, config, tiny).run(checkpoint, progress=False)
    resumed_harvester = Harvester(interrupted, config, tiny)
    assert resumed_harvester.load_checkpoint(checkpoint) and resumed_harvester.clips_done == 14
    resumed = Harvester(interrupted, config, tiny).run(checkpoint, progress=False)
    assert resumed.sites.keys() == harvested.sites.keys()
    for name, stats in harvested.sites.items():
        for key, array in stats.arrays().items():
            assert np.array_equal(getattr(resumed.sites[name], key), array), (name, key)
    for key, array in harvested.frames.items():
        assert np.array_equal(resumed.frames[key], array)
    # A checkpoint of another configuration is not resumed from.
    assert not Harvester(corpus, small_config(seed=1), tiny).load_checkpoint(checkpoint)


class FailingHarvester(Harvester):
    """Its statistics fail on the second batch, as a bug in a kernel would."""

    def process_batch(self, batch):
        if self.clips_done >= 7:
            raise ValueError("kernel failure")
        super().process_batch(batch)


def test_a_failure_while_folding_stops_the_pass(corpus, tiny, tmp_path):
    # Batches are folded on a second thread: its error must end the pass, and the checkpoint
    # must hold exactly the batches folded before it.
    harvester = FailingHarvester(corpus, small_config(checkpoint_every=1, pipeline=True), tiny)
    with pytest.raises(ValueError, match="kernel failure"):
        harvester.run(tmp_path / "checkpoint.npz", progress=False)
    resumed = Harvester(corpus, small_config(checkpoint_every=1), tiny)
    assert resumed.load_checkpoint(tmp_path / "checkpoint.npz") and resumed.clips_done == 7


def planted_stats(frame_phones: list[list[str]], activations, negatives=None) -> tuple[SiteStats, FrameTable]:
    lengths = [len(p) for p in frame_phones]
    phones = np.array([PHONE_INDEX[p] for labels in frame_phones for p in labels], np.int16)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    positions = np.concatenate([np.arange(n) for n in lengths]).astype(np.int32)
    clips = np.arange(len(lengths))
    values = np.stack([activation(phones, positions) for activation in activations], axis=1).astype(np.float32)
    stats = SiteStats.empty(len(activations), 40, len(PHONES), 40 if negatives else 0)
    stats.update(values, offsets, clips, positions, phones, frame_priorities(0, np.repeat(clips, lengths), positions))
    if negatives:
        stats.update_negative(np.stack([negative(phones, positions) for negative in negatives], axis=1), offsets,
                              clips, positions)
    table = FrameTable({"phone_offsets": offsets, "phones": phones, "token_offsets": np.zeros(len(lengths) + 1, np.int64),
                        "tokens": np.zeros(0, np.int32)})
    return stats.finalized(), table


def test_phone_labels_on_planted_activations():
    rng = np.random.default_rng(0)
    words = [["sil"] * 3 + list(rng.choice(["S", "M", "AA", "IY", "T"], size=20)) + ["sil"] * 3 for _ in range(40)]

    def is_(phone):
        return lambda phones, positions: (phones == PHONE_INDEX[phone]).astype(float)

    noise = rng.random(sum(map(len, words)))
    activations = [
        lambda phones, positions: 4.0 * is_("S")(phones, positions),  # fires on S only
        # M strongly (top band), AA weakly, and on many more frames: a polyphonetic feature.
        lambda phones, positions: 8.0 * is_("M")(phones, positions) + 1.0 * is_("AA")(phones, positions),
        lambda phones, positions: noise[: len(phones)] - 0.5,  # fires anywhere
    ]
    stats, table = planted_stats(words, activations)
    labels = phone_labels(stats, table)
    s_frames = sum(clip_phones.count("S") for clip_phones in words)
    assert labels[0].top_phone == "S" and labels[0].top_share == 1.0 and labels[0].selective
    assert labels[0].precision["S"] == 1.0 and labels[0].recall["S"] == pytest.approx(1.0)
    assert stats.phone_totals[PHONE_INDEX["S"]] == s_frames
    assert not labels[0].polyphonetic
    assert labels[1].top_phone == "M" and labels[1].selective
    assert [b["phone"] for b in labels[1].bands] == ["M", "AA"]  # 8.0 in the top band, 1.0 three octaves down
    assert labels[1].polyphonetic  # its populated bands disagree
    assert not labels[2].selective and labels[2].top_share < 0.5


def test_negative_side_labels_and_agreement():
    rng = np.random.default_rng(1)
    words = [["sil"] * 3 + list(rng.choice(["S", "M", "AA", "IY", "T"], size=20)) + ["sil"] * 3 for _ in range(40)]

    def is_(phone):
        return lambda phones: (phones == PHONE_INDEX[phone]).astype(float)

    positive = [lambda phones, positions: 3.0 * is_("S")(phones),  # S on both sides: they agree
                lambda phones, positions: 3.0 * is_("M")(phones)]  # M positive, T negative: they disagree
    negative = [lambda phones, positions: -2.0 * is_("S")(phones), lambda phones, positions: -2.0 * is_("T")(phones)]
    stats, table = planted_stats(words, positive, negative)
    labels = phone_labels(stats, table)
    assert (labels[0].negative_top_phone, labels[0].negative_top_share, labels[0].negative_min) == ("S", 1.0, -2.0)
    assert labels[1].negative_top_phone == "T" and labels[1].negative_selective and labels[1].top_phone == "M"
    agreement = negative_agreement("site", labels)
    assert (agreement.neurons, agreement.both, agreement.agree, agreement.agree_share) == (2, 2, 1, 0.5)
    assert agreement.chance == 0.0  # neither neuron's positive phone is the other's negative phone
    # Without negatives kept, there is nothing to compare.
    no_negatives, table = planted_stats(words, positive)
    assert negative_agreement("site", phone_labels(no_negatives, table)) is None


def test_auto_mode_follows_the_matmul_probe(monkeypatch, corpus, tiny):
    from whisperlens.features import harvest as harvest_module
    from whisperlens.features.config import FeaturesConfig

    for probe, chosen in ((MatmulProbe(100.0, 400.0), "short-bf16"), (MatmulProbe(100.0, 20.0), "short")):
        monkeypatch.setattr(harvest_module, "probe_matmul", lambda probe=probe: probe)
        assert choose_mode("auto") == chosen
        harvester = Harvester(corpus[:3], small_config(mode="auto", hooks=("encoder.blocks.0.mlp.hook_post",)))
        assert harvester.config.mode == chosen
        assert next(harvester.model.parameters()).dtype == (torch.bfloat16 if chosen == "short-bf16" else torch.float32)
        assert harvester.mode == {"requested": "auto", "chosen": chosen, "probe": asdict(probe)}
        assert FeaturesConfig().model_spec().dtype == ("bfloat16" if chosen == "short-bf16" else FeaturesConfig().model.dtype)
        assert describe_mode(harvester.mode).startswith(f"{chosen} (chosen automatically: bf16 matmul ran at ")

    def no_probe():
        raise AssertionError("--mode given: nothing to probe")

    monkeypatch.setattr(harvest_module, "probe_matmul", no_probe)
    assert Harvester(corpus[:3], small_config(mode="short"), tiny).mode == {"requested": "short", "chosen": "short"}
    assert describe_mode({"requested": "exact", "chosen": "exact"}) == "exact (--mode exact)"


def test_listening_window_is_loudest_at_the_frame(tmp_path):
    audio = np.full(32_000, 0.1, np.float32)
    louder = amplified_window(audio, position=50)
    centre = frame_centre_sample(50) - (frame_centre_sample(50) - 8_000)
    assert len(louder) == 16_000
    assert np.argmax(np.abs(louder)) == pytest.approx(centre, abs=2)
    assert np.abs(louder).max() == pytest.approx(0.9) and np.abs(louder[0]) < 0.3
    assert data_uri(louder, "wav").startswith("data:audio/wav;base64,")
    trace = np.linspace(0, 1, 100)
    path = spectrogram_figure([{"audio": audio, "position": 50, "trace": trace, "caption": "x"}], "t", tmp_path / "s.png")
    assert path.read_bytes()[:4] == b"\x89PNG"


def test_store_show_and_export(store, corpus, capsys):
    assert main(["features", "describe", "encoder.blocks.2.mlp.1:17", "--store", str(store.root)]) == 0
    shown = capsys.readouterr().out
    assert "encoder.blocks.2.mlp.hook_post:17" in shown and "top phone" in shown
    # What to hear first, each an example the page plays, and the neuron's negative side.
    first = shown.split("listen first")[1].split("top examples")[0].strip().splitlines()[1:]
    assert first[0].startswith("  #1 ") and "the strongest example" in first[0]
    assert all(int(line.split()[0][1:]) <= 5 for line in first)
    assert "negative side (pre-GELU" in shown and "tiny.en, short (--mode short))" in shown
    decoder = store.stats("decoder.blocks.1.mlp.hook_post")
    live, dead = np.flatnonzero(decoder.top_clips[:, 0] >= 0), np.flatnonzero(decoder.top_clips[:, 0] < 0)
    assert main(["features", "describe", f"decoder.blocks.1.mlp.hook_post:{live[0]}", "--store", str(store.root)]) == 0
    assert "top token" in capsys.readouterr().out
    assert main(["features", "describe", f"decoder.blocks.1.mlp.hook_post:{dead[0]}", "--store", str(store.root)]) == 0
    assert "dead feature" in capsys.readouterr().out
    from whisperlens.features.html import export_html

    index = export_html(store, corpus, top=2, sites=["encoder.blocks.2.mlp.hook_post", "decoder.blocks.1.mlp.hook_post"],
                        progress=False)
    # The index gives each encoder site's phone-selective share, read from the saved labels.
    selective = sum(label["selective"] for label in store.labels("encoder.blocks.2.mlp.hook_post"))
    assert f"{selective}/1536 (" in index.read_text()
    page = PageMarkup.of(index.parent / "encoder.blocks.2.mlp.hook_post.html")
    assert sorted(page.rows) == sorted(f"f{f}" for f in range(1536))
    # top=2: two features carry pre-rendered windows, band samples and a spectrogram.
    assert sum(source.endswith(".png") for source in page.sources) == 2 and len(page.sources) > 2
    for reference in page.sources:
        assert (index.parent / reference).exists(), reference
    assert page.clips and all((index.parent / "clips" / f"{clip}.mp3").exists() for clip in page.clips)
    # Every example of every feature has its activation over the clip drawn beside its buttons,
    # highest at the example's frame (the red mark), and the feature's top example reaching the top.
    stats = store.stats("encoder.blocks.2.mlp.hook_post")
    assert len(page.traces) == int((stats.top_clips[:, :5] >= 0).sum()) > 1000
    for frame_x, points in page.traces[:100]:
        ys = [int(point.split(",")[1]) for point in points.split()]
        assert len(ys) == 100 and ys[frame_x] == min(ys)
    assert min(int(point.split(",")[1]) for point in page.traces[0][1].split()) == 0
    assert page.first_marks >= 1536  # each live feature marks what to listen to first
    decoder_page = PageMarkup.of(index.parent / "decoder.blocks.1.mlp.hook_post.html")
    assert sorted(decoder_page.rows) == sorted(f"f{f}" for f in range(1536)) and not decoder_page.clips


class PageMarkup(HTMLParser):
    """What a listening page refers to: its feature rows' ids, every src, every clip a button plays."""

    def __init__(self):
        super().__init__()
        self.rows, self.sources, self.clips = [], [], set()
        self.traces, self.first_marks, self._lines = [], 0, []

    @classmethod
    def of(cls, path):
        parser = cls()
        parser.feed(path.read_text())
        return parser

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "tr" and "id" in attrs:
            self.rows.append(attrs["id"])
        if "src" in attrs:
            self.sources.append(attrs["src"])
        if "data-clip" in attrs:
            self.clips.add(int(attrs["data-clip"]))
        if tag == "b" and attrs.get("class") == "first":
            self.first_marks += 1
        if tag == "line":
            self._lines.append(attrs)
        if tag == "polyline":  # a trace: its frame mark is the svg's second line
            self.traces.append((int(self._lines[-1]["x1"]), attrs["points"]))


@pytest.mark.parametrize("argv, message", [
    (["features", "run", "--corpus", "/nonexistent/corpus"], "no corpus there"),
    (["features", "run", "--corpus", "CORPUS", "--layers", "7", "--no-progress"], "unknown layer 7"),
    (["features", "run", "--corpus", "CORPUS", "--hooks", "encoder.blocks.2.mlp.nothing", "--no-progress"], "unknown hook"),
    (["features", "run", "--corpus", "CORPUS", "--mode", "fast", "--no-progress"], "--mode must be one of"),
    (["features", "describe", "encoder.blocks.2.mlp.hook_post:99999", "--store", "STORE"], "unknown feature id"),
    (["features", "describe", "encoder.blocks.9.mlp.hook_post:1", "--store", "STORE"], "unknown site"),
    (["features", "describe", "nonsense", "--store", "STORE"], "unknown feature id"),
    (["features", "describe", "x:1", "--store", "/nonexistent/store"], "no feature store there"),
])
def test_cli_errors_are_one_line(argv, message, corpus, store, tmp_path, capsys):
    argv = [str(corpus.root) if a == "CORPUS" else str(store.root) if a == "STORE" else a for a in argv]
    assert main(argv + (["--out", str(tmp_path / "out")] if argv[1] == "run" else [])) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("whisperlens: error:") and message in err and "\n" not in err


def test_manifest_records_the_run(store):
    manifest = json.loads((store.root / "manifest.json").read_text())
    assert manifest["model"] == "tiny.en" and manifest["mode"] == "short"
    assert set(manifest["sites"]) == {"encoder.blocks.2.mlp.hook_post", "random:encoder.blocks.2.mlp.hook_post",
                                      "encoder.blocks.3.hook_resid_post", "random:encoder.blocks.3.hook_resid_post",
                                      "decoder.blocks.1.mlp.hook_post", "random:decoder.blocks.1.mlp.hook_post"}
