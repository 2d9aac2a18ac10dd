"""Static listening pages: one per site, opened from disk (no server, relative paths).

Every feature can be heard: the page plays its top examples from shared per-clip audio
files, seeking to the example and shaping the element's volume with the same gain envelope
as listening.py (volume automation rather than Web Audio, which a file:// page may not apply
to local media). The `top` most interpretable features of a page also get pre-rendered plain
and amplified windows, band samples and a spectrogram with the activation trace.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np

from ..stream import ActivationStream
from .harvest import PHONES, model_for_mode, stream_mode
from .listening import (
    DEFAULT_LISTENING,
    ListeningConfig,
    amplified_window,
    spectrogram_figure,
    window,
    write_audio,
)
from .store import FeatureStore, basis_for_site, site_filename

EXAMPLES_SHOWN = 5
BAND_SAMPLES_RENDERED = 5

_STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5em;font-size:14px}
table{border-collapse:collapse}td,th{border-bottom:1px solid #ddd;padding:4px 6px;vertical-align:top;text-align:left}
.poly{color:#b35900}.sel{color:#1a7f37;font-weight:600}.dim{color:#777}img{max-width:100%}
button{font-size:11px;margin:1px;padding:1px 4px}audio{height:28px;width:170px}
"""

_PLAYER = """
<script>
const FRAME = 0.02, HALF = %(half)s, FLOOR = %(floor)s, BUMP = %(bump)s;
function play(clip, pos, amplified) {
  const a = new Audio('clips/' + clip + '.%(ext)s');
  const centre = (pos + 0.5) * FRAME, start = Math.max(0, centre - HALF);
  a.addEventListener('loadedmetadata', () => {
    a.currentTime = start; a.volume = amplified ? FLOOR : 1; a.play();
    const timer = setInterval(() => {
      const t = a.currentTime;
      if (t >= centre + HALF || a.ended) { a.pause(); clearInterval(timer); return; }
      if (amplified) { const d = (t - centre) / BUMP; a.volume = FLOOR + (1 - FLOOR) * Math.exp(-0.5 * d * d); }
    }, 10);
  });
}
</script>
"""


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
    for site in tqdm(sites, desc="pages", disable=not progress):
        info = store.site_info(site)
        labels = store.labels(site)
        stats = store.stats(site)
        order = sorted(range(len(labels)), key=lambda f: (-labels[f]["score"], -labels[f]["max_value"], f))
        decoder = info["hook"].startswith("decoder.")
        rendered: dict[int, dict] = {}
        if not decoder and top > 0 and (render_every_site or _worth_rendering(info)):
            if model is None:
                model = model_for_mode(store.manifest["model"], store.manifest["mode"], "cpu")
            rendered = _render_top(store, site, stats, order[:top], corpus, model, out, config)
        if not decoder:
            for f in order:
                needed_clips.update(int(c) for c in stats.top_clips[f, :EXAMPLES_SHOWN] if c >= 0)
        page = out / f"{site_filename(site)}.html"
        page.write_text(_page(store, site, info, labels, stats, order, rendered, clip_ids, summaries, config, decoder))
        pages.append((site, page.name))
    for clip in tqdm(sorted(needed_clips), desc="clip audio", disable=not progress):
        path = out / "clips" / f"{clip}.{config.audio_format}"
        if not path.exists():
            write_audio(path, corpus[clip].audio, config.audio_format)
    index = out / "index.html"
    rows = "".join(
        f"<tr><td><a href='{name}'>{html.escape(site)}</a></td><td>{_summary_cell(summaries.get(site))}</td></tr>"
        for site, name in pages)
    index.write_text(f"<!doctype html><meta charset=utf-8><title>whisperlens features</title><style>{_STYLE}</style>"
                     f"<h1>Features of {html.escape(store.manifest['model'])} ({html.escape(store.manifest['mode'])} mode)</h1>"
                     f"<p>Corpus: {html.escape(str(store.manifest.get('corpus')))}, {len(clip_ids)} clips.</p>"
                     f"<table><tr><th>site</th><th>phone-selective features</th></tr>{rows}</table>")
    return index


def _worth_rendering(info: dict) -> bool:
    # Rendering costs ~1 s a feature; random directions and residual coordinates are the
    # baselines, listened to far less than MLP neurons and SAE features.
    return info["kind"] == "sae" or (info["kind"] == "neurons" and info["hook"].endswith("mlp.hook_post"))


def _summaries(store: FeatureStore) -> dict[str, dict]:
    path = store.root / "summary.json"
    if not path.exists():
        return {}
    return {s["site"]: s for s in json.loads(path.read_text())["sites"]}


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


def _render_top(store, site, stats, features, corpus, model, out: Path, config: ListeningConfig) -> dict[int, dict]:
    """Pre-rendered windows (plain and amplified) and a spectrogram for each feature."""
    frames = store.frames
    clips = sorted({int(c) for f in features for c in stats.top_clips[f, :EXAMPLES_SHOWN] if c >= 0})
    traces = activation_traces(store, site, clips, corpus, model)
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
            panels.append({"audio": audio, "position": position, "trace": traces[clip][f],
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


def _page(store, site, info, labels, stats, order, rendered, clip_ids, summaries, config, decoder) -> str:
    summary = summaries.get(site)
    baseline = next((s for s in summaries.values() if s["hook"] == info["hook"] and s["kind"] == "random"), None)
    head = (f"<!doctype html><meta charset=utf-8><title>{html.escape(site)}</title><style>{_STYLE}</style>"
            + _PLAYER % {"half": config.half_window, "floor": config.floor_gain, "bump": config.bump_seconds,
                         "ext": config.audio_format}
            + f"<p><a href='index.html'>all sites</a></p><h1>{html.escape(site)}</h1>"
            f"<p>{info['n_features']} features ({info['kind']}) at {html.escape(info['hook'])}, "
            f"{store.manifest['model']}, {store.manifest['mode']} mode. Ordered by top-k top-phone share.</p>")
    if summary:
        head += f"<p>Phone-selective: {_summary_cell(summary)}"
        if baseline and baseline["site"] != site:
            head += f"; random directions at the same hook: {_summary_cell(baseline)}"
        head += "</p>"
    rows = []
    for f in order:
        label = labels[f]
        rows.append(_token_row(site, f, label) if decoder else _phone_row(site, f, label, stats, rendered.get(f), clip_ids))
    header = ("<tr><th>feature</th><th>label</th><th>bands (top-down)</th><th>listen</th></tr>" if not decoder
              else "<tr><th>feature</th><th>top token</th><th>contexts</th></tr>")
    return head + f"<table>{header}{''.join(rows)}</table>"


def _phone_row(site, f, label, stats, rendered, clip_ids) -> str:
    css = "sel" if label["selective"] else ""
    top3 = ", ".join(f"{p} {s:.0%}" for p, s in label["top3"])
    flags = " <span class=poly>polyphonetic</span>" if label["polyphonetic"] else ""
    precision = ", ".join(f"{p} {v:.0%}/{label['recall'][p]:.0%}" for p, v in list(label["precision"].items())[:3])
    text = (f"<span class='{css}'>{html.escape(str(label['top_phone']))} {label['top_share']:.0%}</span>{flags}"
            f"<br><span class=dim>top-k: {top3}<br>precision/recall: {precision}<br>"
            f"max {label['max_value']:.2f}, fires on {label['firing_rate']:.1%} of frames</span>")
    bands = " ".join(f"{b['phone']}&nbsp;{b['share']:.0%}<span class=dim>({b['frames']})</span>" for b in label["bands"][:6])
    buttons = []
    for rank in range(min(EXAMPLES_SHOWN, stats.top_clips.shape[1])):
        clip, position = int(stats.top_clips[f, rank]), int(stats.top_positions[f, rank])
        if clip >= 0:
            title = html.escape(f"{clip_ids[clip]} frame {position} value {stats.top_values[f, rank]:.2f}")
            buttons.append(f"<button title='{title}' onclick='play({clip},{position},true)'>#{rank + 1}</button>"
                           f"<button title='plain' onclick='play({clip},{position},false)'>plain</button>")
    listen = "<div>" + " ".join(buttons) + "</div>"
    if rendered:
        for example in rendered["examples"]:
            listen += (f"<div>{html.escape(example['label'])} <i>{html.escape(example['text'])}</i><br>"
                       f"<audio controls preload=none src='{example['amp']}'></audio> amplified "
                       f"<audio controls preload=none src='{example['plain']}'></audio> plain</div>")
        if rendered["bands"]:
            listen += "<div>band samples: " + " ".join(
                f"{html.escape(b['label'])} <audio controls preload=none src='{b['amp']}'></audio>" for b in rendered["bands"]) + "</div>"
        if rendered["image"]:
            listen += f"<img loading=lazy src='{rendered['image']}'>"
    return f"<tr id='f{f}'><td>{html.escape(site)}:{f}</td><td>{text}</td><td>{bands}</td><td>{listen}</td></tr>"


def _token_row(site, f, label) -> str:
    contexts = "<br>".join(html.escape(c) for c in label["contexts"][:5])
    return (f"<tr id='f{f}'><td>{html.escape(site)}:{f}</td><td>{html.escape(repr(label['top_token']))} "
            f"{label['top_share']:.0%}<br><span class=dim>max {label['max_value']:.2f}</span></td><td>{contexts}</td></tr>")
