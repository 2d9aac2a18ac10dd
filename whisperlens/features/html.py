"""Static listening pages: one per site, opened from disk (no server, relative paths).

Every feature can be heard: the page plays its top examples from shared per-clip audio
files, seeking to the example and shaping the element's volume with the same gain envelope
as listening.py (volume automation rather than Web Audio, which a file:// page may not apply
to local media; from a server without range requests, where media cannot seek, the player
fetches the clip whole first). The `top` most interpretable features of a page also get
pre-rendered plain and amplified windows, band samples and a spectrogram with the activation
trace.

The pages go through the one renderer (`study/render.py`): this module gathers each row's
text and paths, and the templates `features_index.html.j2` and `features_site.html.j2` (with
the shared style sheet of `base.html.j2` and the page's one static player script) make them
HTML, escaped by jinja2.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np

from ..audio import SAMPLE_RATE, SAMPLES_PER_ENCODER_FRAME, encoder_positions
from ..stream import ActivationStream
from ..study.render import write_page
from .harvest import PHONES, model_for_mode, stream_mode
from .labels import site_summaries
from .listening import (
    DEFAULT_LISTENING,
    EXAMPLES_SHOWN,
    ListeningConfig,
    amplified_window,
    listening_order,
    spectrogram_figure,
    window,
    write_audio,
)
from .store import FeatureStore, basis_for_site, site_filename

BAND_SAMPLES_RENDERED = 5


def export_html(store: FeatureStore, corpus, top: int = 24, sites: list[str] | None = None, progress: bool = True,
                config: ListeningConfig = DEFAULT_LISTENING, render_every_site: bool = False) -> Path:
    """Write `<store>/html/index.html` and one page per site; return the index's path.

    Pre-rendered audio and spectrograms go to the `top` features of MLP-neuron and SAE pages
    (all encoder pages with `render_every_site`); every feature of every page can be played.
    """
    from tqdm import tqdm

    out = store.root / "html"
    sites = [store.check_site(s) for s in sites] if sites else store.sites
    summaries = _summaries(store)
    clip_ids = store.clip_ids
    needed_clips: set[int] = set()
    model = None
    pages = []
    encoder_sites = [site for site in sites if not store.site_info(site)["hook"].startswith("decoder.")]
    if encoder_sites:
        model = model_for_mode(store.manifest["model"], store.manifest["mode"], "cpu")
    traces = example_traces(store, encoder_sites, corpus, model, progress) if encoder_sites else {}
    for site in tqdm(sites, desc="pages", disable=not progress):
        info = store.site_info(site)
        labels = store.labels(site)
        stats = store.stats(site)
        order = sorted(range(len(labels)), key=lambda f: (-labels[f]["score"], -labels[f]["max_value"], f))
        decoder = info["hook"].startswith("decoder.")
        rendered: dict[int, dict] = {}
        if not decoder and top > 0 and (render_every_site or _worth_rendering(info)):
            rendered = _render_top(store, site, stats, order[:top], corpus, traces[site], out, config)
        if not decoder:
            for f in order:
                needed_clips.update(int(c) for c in stats.top_clips[f, :EXAMPLES_SHOWN] if c >= 0)
        page = out / f"{site_filename(site)}.html"
        write_page(page, "features_site.html.j2",
                   **_site_page(store, site, info, labels, stats, order, rendered, clip_ids, summaries, config, decoder,
                                traces.get(site)))
        pages.append({"site": site, "href": page.name, "selective": _summary_cell(summaries.get(site))})
    for clip in tqdm(sorted(needed_clips), desc="clip audio", disable=not progress):
        path = out / "clips" / f"{clip}.{config.audio_format}"
        if not path.exists():
            write_audio(path, corpus[clip].audio, config.audio_format)
    return write_page(out / "index.html", "features_index.html.j2", title="whisperlens features",
                      model=store.manifest["model"], mode=store.mode_description, corpus=str(store.manifest.get("corpus")),
                      n_clips=len(clip_ids), pages=pages)


def _worth_rendering(info: dict) -> bool:
    # Rendering costs ~1 s a feature; random directions and residual coordinates are the
    # baselines, listened to far less than MLP neurons and SAE features.
    return info["kind"] == "sae" or (info["kind"] == "neurons" and info["hook"].endswith("mlp.hook_post"))


def _summaries(store: FeatureStore) -> dict[str, dict]:
    return {s.site: asdict(s) | {"selective_share": s.selective_share} for s in site_summaries(store)}


def _summary_cell(summary: dict | None) -> str:
    if not summary:
        return ""
    return f"{summary['selective']}/{summary['n_features']} ({summary['selective_share']:.1%})"


def activation_traces(store: FeatureStore, site: str, clips: list[int], corpus, model) -> dict[int, np.ndarray]:
    """Every feature's activation over each clip's frames: {clip: (n_features, frames)}."""
    basis = basis_for_site(store, site)
    hook = store.site_info(site)["hook"]
    stream = ActivationStream(model, corpus, [hook], mode=stream_mode(store.manifest["mode"]), batch_size=16,
                              device="cpu", indices=clips)
    traces = {}
    for batch in stream:
        activations = batch[hook]
        for row, (clip, n) in enumerate(zip(batch.clip_indices.tolist(), batch.lengths, strict=True)):
            traces[clip] = basis.encode(activations[row, :n]).numpy().T
    return traces


def example_traces(store: FeatureStore, sites: list[str], corpus, model, progress: bool = False) -> dict[str, np.ndarray]:
    """Each feature's activation over the whole clip of each example a page plays: {site:
    (n_features, EXAMPLES_SHOWN, frames) float32, NaN past a clip's end and in empty slots}.
    One pass of the model over the clips any of `sites` needs, each hook read once per batch."""
    wanted: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}  # site -> (clip, feature, rank) of each slot
    for site in sites:
        clips = store.stats(site).top_clips[:, :EXAMPLES_SHOWN]
        features, ranks = np.nonzero(clips >= 0)
        wanted[site] = (clips[features, ranks], features, ranks)
    needed = sorted({int(c) for clips, _, _ in wanted.values() for c in clips})
    if not needed:
        return {site: np.full((store.stats(site).n_features, EXAMPLES_SHOWN, 0), np.nan, np.float32) for site in sites}
    bases = {site: basis_for_site(store, site) for site in sites}
    hooks = list(dict.fromkeys(basis.hook for basis in bases.values()))
    stream = ActivationStream(model, corpus, hooks, mode=stream_mode(store.manifest["mode"]), batch_size=32,
                              device="cpu", indices=needed, progress=progress and "traces")
    longest = max(encoder_positions(len(corpus[clip].audio)) for clip in needed)
    traces = {site: np.full((store.stats(site).n_features, EXAMPLES_SHOWN, longest), np.nan, np.float32) for site in sites}
    for batch in stream:
        rows = batch.rows(hooks[0])
        for site, (clips, features, ranks) in wanted.items():
            values = bases[site].encode(batch.valid(bases[site].hook)).numpy()  # (frames, n_features)
            for c, clip in enumerate(batch.clip_indices.tolist()):
                slots = np.flatnonzero(clips == clip)
                if len(slots):
                    start, end = rows.offsets[c], rows.offsets[c + 1]
                    traces[site][features[slots], ranks[slots], : end - start] = values[start:end, features[slots]].T
    return traces


def trace_svg(trace: np.ndarray, position: int, top: float, width: int = 100, height: int = 18) -> dict:
    """An example's activation over its clip as a small SVG polyline (integer coordinates keep
    a page of 1536 features x 5 examples a few MB): points, the example's frame, the zero line."""
    trace = trace[~np.isnan(trace)]
    if len(trace) == 0:
        return {}
    low, high = min(0.0, float(trace.min())), max(top, float(trace.max()), 1e-6)
    if len(trace) > width:  # long clips: the largest value of each pixel's frames
        edges = np.linspace(0, len(trace), width + 1).astype(int)
        trace = np.maximum.reduceat(trace, edges[:-1])
        position = position * width // int(edges[-1])
    xs = np.round(np.arange(len(trace)) * (width - 1) / max(len(trace) - 1, 1)).astype(int)
    ys = np.round((high - trace) / (high - low) * (height - 1)).astype(int)
    x_frame = int(round(position * (width - 1) / max(len(trace) - 1, 1)))
    return {"points": " ".join(f"{x},{y}" for x, y in zip(xs.tolist(), ys.tolist(), strict=True)),
            "x": x_frame, "zero": int(round(high / (high - low) * (height - 1))), "width": width, "height": height}


def _render_top(store, site, stats, features, corpus, traces: np.ndarray, out: Path, config: ListeningConfig) -> dict[int, dict]:
    """Pre-rendered windows (plain and amplified) and a spectrogram for each feature."""
    frames = store.frames
    rendered = {}
    folder = f"media/{site_filename(site)}"
    for f in features:
        examples, panels = [], []
        for rank in range(EXAMPLES_SHOWN):
            clip, position = int(stats.top_clips[f, rank]), int(stats.top_positions[f, rank])
            if clip < 0:
                continue
            audio = corpus[clip].audio
            phone = PHONES[frames.phone_at(np.array([clip]), np.array([position]))[0]]
            base = f"{folder}/{f}-top{rank}"
            write_audio(out / f"{base}-plain.{config.audio_format}", window(audio, position, config)[0], config.audio_format)
            write_audio(out / f"{base}-amp.{config.audio_format}", amplified_window(audio, position, config), config.audio_format)
            examples.append({"label": f"#{rank + 1} {stats.top_values[f, rank]:.2f} /{phone}/",
                             "plain": f"{base}-plain.{config.audio_format}", "amp": f"{base}-amp.{config.audio_format}",
                             "text": corpus[clip].text})
            trace = traces[f, rank]
            panels.append({"audio": audio, "position": position, "trace": trace[~np.isnan(trace)],
                           "caption": f"{stats.top_values[f, rank]:.2f} /{phone}/ {corpus[clip].text[:28]}"})
        bands = []
        max_band = next((b for b in range(stats.sample_clips.shape[1] - 1, 1, -1) if stats.sample_clips[f, b, 0] >= 0), None)
        for band in range(max_band or 1, 1, -1)[:BAND_SAMPLES_RENDERED]:
            clip, position = int(stats.sample_clips[f, band, 0]), int(stats.sample_positions[f, band, 0])
            if clip < 0:
                continue
            phone = PHONES[frames.phone_at(np.array([clip]), np.array([position]))[0]]
            path = f"{folder}/{f}-band{band}-amp.{config.audio_format}"
            write_audio(out / path, amplified_window(corpus[clip].audio, position, config), config.audio_format)
            bands.append({"label": f"{stats.sample_values[f, band, 0]:.2f} /{phone}/", "amp": path})
        image = None
        if panels:
            image = f"{folder}/{f}.png"
            spectrogram_figure(panels, f"{site}:{f}", out / image, config)
        rendered[f] = {"examples": examples, "bands": bands, "image": image}
    return rendered


def _site_page(store, site, info, labels, stats, order, rendered, clip_ids, summaries, config, decoder, traces) -> dict:
    """What features_site.html.j2 shows of a site: its description, its baseline and a row per feature."""
    summary = summaries.get(site)
    baseline = next((s for s in summaries.values() if s["hook"] == info["hook"] and s["kind"] == "random"), None)
    if decoder:
        rows = [_token_row(site, f, labels[f]) for f in order]
    else:
        frames = store.frames
        rows = [_phone_row(site, f, labels[f], stats, rendered.get(f), clip_ids, traces, frames) for f in order]
    return {
        "title": site, "site": site, "n_features": info["n_features"], "kind": info["kind"], "hook": info["hook"],
        "model": store.manifest["model"], "mode": store.mode_description, "decoder": decoder, "rows": rows,
        "selective": _summary_cell(summary) if summary else "",
        "baseline": _summary_cell(baseline) if summary and baseline and baseline["site"] != site else "",
        # The player script reads these from the table: the clips' files and listening.py's envelope.
        "player": {"frame": SAMPLES_PER_ENCODER_FRAME / SAMPLE_RATE, "half": config.half_window,
                   "floor": config.floor_gain, "bump": config.bump_seconds, "ext": config.audio_format},
    }


def _phone_row(site, f, label, stats, rendered, clip_ids, traces, frames) -> dict:
    plays = []
    first = {rank: (order, why) for order, (why, rank) in enumerate(listening_order(stats, frames, f, label["top_phone"]), 1)}
    for rank in range(min(EXAMPLES_SHOWN, stats.top_clips.shape[1])):
        clip, position = int(stats.top_clips[f, rank]), int(stats.top_positions[f, rank])
        if clip >= 0:
            phone = PHONES[frames.phone_at(np.array([clip]), np.array([position]))[0]]
            plays.append({"rank": rank + 1, "clip": clip, "position": position,
                          "title": f"{clip_ids[clip]} frame {position} value {stats.top_values[f, rank]:.2f} /{phone}/",
                          "trace": trace_svg(traces[f, rank], position, float(stats.top_values[f, 0])),
                          "first": first.get(rank)})
    return {
        "id": f, "name": f"{site}:{f}", "selective": label["selective"], "polyphonetic": label["polyphonetic"],
        "top": f"{label['top_phone']} {label['top_share']:.0%}",
        "top3": ", ".join(f"{p} {s:.0%}" for p, s in label["top3"]),
        "precision": ", ".join(f"{p} {v:.0%}/{label['recall'][p]:.0%}" for p, v in list(label["precision"].items())[:3]),
        "activity": f"max {label['max_value']:.2f}, fires on {label['firing_rate']:.1%} of frames",
        "bands": [{"phone": b["phone"], "share": f"{b['share']:.0%}", "frames": b["frames"]} for b in label["bands"][:6]],
        "plays": plays, "rendered": rendered,
    }


def _token_row(site, f, label) -> dict:
    return {"id": f, "name": f"{site}:{f}", "token": repr(label["top_token"]), "share": f"{label['top_share']:.0%}",
            "max": f"{label['max_value']:.2f}", "contexts": label["contexts"][:5]}
