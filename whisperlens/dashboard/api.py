"""The dashboard's data: feature search, clips (upload, corpus), analysis, interventions,
attention, and media (files of the run directory, feature audio, figures)."""

from __future__ import annotations

from dataclasses import asdict, replace

from flask import Blueprint, Response, jsonify, request, send_file

from ..errors import WhisperLensError
from ..features.listening import amplified_window, encode_audio, frame_centre_sample, window
from ..interventions import Patch, interventions_from_json
from . import analysis, figures, params
from .feature_view import example_location, histogram_arrays
from .shared import NotFound, feature_index, state
from .workbench import MAX_CLIP_SECONDS

blueprint = Blueprint("api", __name__)
MAX_INTERVENTIONS = 8
ATTENTION_HALF = 25  # frames each side of the chosen one in the attention figure


def _workbench():
    return state()["workbench"]


def _media(data: bytes, mimetype: str) -> Response:
    """Bytes with byte-range support, so an <audio> element can seek in them."""
    response = Response(data, mimetype=mimetype)
    response.headers["Cache-Control"] = "private, max-age=3600"
    return response.make_conditional(request, accept_ranges=True, complete_length=len(data))


# ---- features ------------------------------------------------------------------------------


@blueprint.get("/api/features")
def search_features():
    index = feature_index()
    page = index.search(params.feature_query(request.args, index.sites, index.bases, index.phones))
    return jsonify({"total": page.total, "pages": page.pages, "query": asdict(page.query), "rows": page.rows})


def _example(feature_id: str, kind: str, index: int):
    workbench = _workbench()
    try:
        site, clip, position = example_location(workbench.require_store(), feature_id, kind, index)
    except KeyError:
        raise NotFound(f"{feature_id} has no {kind} example {index}") from None
    return site, clip, position, workbench.corpus[clip].audio


@blueprint.get("/audio/feature/<feature_id>/<any(top, band):kind>/<int:index>")
def feature_audio(feature_id: str, kind: str, index: int):
    """A second around the example's frame, plain or amplified at the frame (features/listening.py)."""
    _, _, position, audio = _example(feature_id, kind, index)
    amplified = params.flag(request.args, "amplified")
    samples = amplified_window(audio, position) if amplified else window(audio, position)[0]
    return _media(encode_audio(samples, "mp3"), "audio/mpeg")


@blueprint.get("/figures/feature/<feature_id>/<any(top, band):kind>/<int:index>.png")
def feature_window_figure(feature_id: str, kind: str, index: int):
    from ..features.html import activation_traces

    workbench = _workbench()
    site, clip, position, audio = _example(feature_id, kind, index)
    _, feature = workbench.store.parse_feature(feature_id)
    with workbench.using_model() as model:
        trace = activation_traces(workbench.store, site, [clip], workbench.corpus, model)[clip][feature]
    samples, start = window(audio, position)
    return _media(figures.window_png(samples, start, trace, frame_centre_sample(position)), "image/png")


@blueprint.get("/figures/feature/<feature_id>/histogram.png")
def feature_histogram(feature_id: str):
    edges, counts = histogram_arrays(_workbench().require_store(), feature_id)
    return _media(figures.histogram_png(edges, counts, f"{feature_id}: frames per activation bin"), "image/png")


# ---- clips ---------------------------------------------------------------------------------


@blueprint.get("/api/corpus")
def corpus_clips():
    """Corpus clips whose id or text contains `q`: the picker's choices."""
    q = params.text(request.args, "q").lower()
    limit = params.integer(request.args, "limit", 50, 1, 500)
    corpus = _workbench().corpus
    found = []
    for index, clip in enumerate(corpus):
        if q in clip.id.lower() or q in clip.text.lower():
            found.append({"clip": f"corpus-{index}", "id": clip.id, "text": clip.text, "duration": round(clip.duration, 2)})
            if len(found) >= limit:
                break
    return jsonify({"clips": found})


@blueprint.post("/api/clips")
def upload_clip():
    upload = request.files.get("audio")
    if upload is None:
        raise WhisperLensError("send the audio file as the form field 'audio'")
    data = upload.read()
    if not data:
        raise WhisperLensError(f"{upload.filename or 'the upload'}: the file is empty")
    key = _workbench().add_upload(data, upload.filename or "")
    audio = _workbench().clip(key)
    return jsonify({"clip": key, "duration": round(analysis.duration_seconds(audio), 2)})


@blueprint.get("/audio/clip/<clip>")
def clip_audio(clip: str):
    return _media(encode_audio(_workbench().clip(clip), "wav"), "audio/wav")


@blueprint.get("/figures/clip/<clip>/spectrogram.png")
def clip_spectrogram(clip: str):
    """The clip's spectrogram, on which the page selects a span to remove."""
    return _media(figures.clip_png(_workbench().clip(clip)), "image/png")


@blueprint.get("/api/clips/<clip>/analysis")
def analyse_clip(clip: str):
    """The transcript with word times, and the top features at each encoder frame for a site."""
    workbench = _workbench()
    store = workbench.require_store()
    sites = [s for s in store.sites if not store.site_info(s)["hook"].startswith("decoder.")]
    site = params.text(request.args, "site", sites[0] if sites else "", choices=sites)
    top = params.integer(request.args, "top", 3, 1, 10)
    audio = workbench.clip(clip)
    basis = workbench.basis(site)
    with workbench.using_model() as model:
        words = analysis.transcript(model, audio, workbench.language(model), encoder_outputs=workbench.encoder_outputs)
        frames = analysis.frame_features(model, audio, store.site_info(site)["hook"], basis, workbench.short, top)
    return jsonify({"clip": clip, "site": site, "duration": round(analysis.duration_seconds(audio), 3),
                    "frame_seconds": analysis.FRAME_SECONDS, **words, **frames})


@blueprint.post("/api/clips/<clip>/poke")
def poke_clip(clip: str):
    """The transcript under interventions: specs as data (whisperlens.interventions); feature
    steering, {"feature": ID, "scale": S}, a Steer spec along the feature's direction; and word
    removal, {"start": S, "end": E} in seconds, a Patch of the encoder output over that span with
    the padding-only audio's (the seeds' edit)."""
    workbench = _workbench()
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise WhisperLensError("send a JSON object: {\"interventions\": [...], \"steer\": [{\"feature\": ..., "
                               "\"scale\": ...}], \"remove\": [{\"start\": ..., \"end\": ...}]}")
    raw, steer, remove = body.get("interventions", []), body.get("steer", []), body.get("remove", [])
    if not all(isinstance(entries, list) for entries in (raw, steer, remove)) \
            or len(raw) + len(steer) + len(remove) > MAX_INTERVENTIONS:
        raise WhisperLensError(f"interventions, steer and remove are lists, {MAX_INTERVENTIONS} entries at most together")
    specs = interventions_from_json(raw)
    if any(isinstance(spec, Patch) and spec.source is not None for spec in specs):
        raise WhisperLensError("patch: a source cache is not data; give a value")
    specs += [_steering(entry) for entry in steer]
    audio = workbench.clip(clip)
    spans = [_span(entry, audio) for entry in remove]
    with workbench.using_model() as model:
        specs += [analysis.word_removal(workbench.padding(model), frames) for frames in spans]
        for spec in specs:
            spec.check(model)
        language, kept = workbench.language(model), workbench.encoder_outputs
        baseline = workbench.baselines.get(clip)
        if baseline is None:
            baseline = analysis.transcript(model, audio, language, words=False, encoder_outputs=kept)["text"]
            workbench.baselines.put(clip, baseline)
        try:
            changed = analysis.transcript(model, audio, language, specs, words=False, encoder_outputs=kept)
        except RuntimeError as error:  # a vector or value whose shape does not fit the activation
            raise WhisperLensError(f"the interventions do not fit this model's activations: {str(error)[:200]}") from None
    return jsonify({"clip": clip, "baseline": baseline, "text": changed["text"],
                    "interventions": [_summary(spec) for spec in specs]})


def _steering(entry):
    if not isinstance(entry, dict) or not isinstance(entry.get("feature"), str):
        raise WhisperLensError("each steer entry is {\"feature\": \"SITE:INDEX\", \"scale\": NUMBER}")
    scale = _entry_number(entry, "scale", "steer", -1000, 1000)
    site, index = _workbench().require_store().parse_feature(entry["feature"])
    basis = _workbench().basis(site)
    return analysis.steering(basis.hook, basis.direction(index), scale)


def _span(entry, audio) -> slice:
    if not isinstance(entry, dict):
        raise WhisperLensError("each remove entry is {\"start\": SECONDS, \"end\": SECONDS}")
    limit = MAX_CLIP_SECONDS
    return analysis.span_frames(audio, _entry_number(entry, "start", "remove", 0, limit),
                                _entry_number(entry, "end", "remove", 0, limit))


def _entry_number(entry: dict, name: str, what: str, low: float, high: float) -> float:
    """A number field of a JSON entry, checked as a query parameter is (params.number)."""
    value = params.number({name: str(entry.get(name, ""))}, name, None, low, high)
    if value is None:
        raise WhisperLensError(f"{what}: {name} is missing")
    return value


def _summary(spec) -> dict:
    """A spec as data: its long vectors cut to their length (a steering vector has d entries), a
    patch's source (another run's activations) named rather than listed."""
    if isinstance(spec, Patch) and spec.source is not None:
        return {**_summary(replace(spec, source=None)), "source": "the encoder output for padding-only audio"}
    data = spec.to_dict()
    return {k: (f"[{len(v)} values]" if isinstance(v, list) and len(v) > 16 else v) for k, v in data.items()}


def _attention(clip: str):
    workbench = _workbench()
    audio = workbench.clip(clip)
    frame = params.integer(request.args, "frame", 0, 0, 1499)
    with workbench.using_model() as model:
        patterns = analysis.attention_around(model, audio, frame, workbench.short)
    return patterns, frame


@blueprint.get("/api/clips/<clip>/attention")
def clip_attention(clip: str):
    """Per layer and head, the attention of the chosen frame over the clip's frames."""
    patterns, frame = _attention(clip)
    top = patterns.argsort(axis=-1)[..., ::-1][..., :3]
    return jsonify({"clip": clip, "frame": frame, "frame_seconds": analysis.FRAME_SECONDS,
                    "layers": patterns.shape[0], "heads": patterns.shape[1], "positions": patterns.shape[2],
                    "top": [[[{"frame": int(k), "weight": round(float(patterns[layer, head, k]), 4)} for k in top[layer, head]]
                             for head in range(patterns.shape[1])] for layer in range(patterns.shape[0])]})


@blueprint.get("/figures/clip/<clip>/attention.png")
def clip_attention_figure(clip: str):
    patterns, frame = _attention(clip)
    return _media(figures.attention_png(patterns, frame, ATTENTION_HALF), "image/png")


# ---- files of the run directory --------------------------------------------------------------


@blueprint.get("/media/<path:relative>")
def media(relative: str):
    """A file under the run directory, and nothing else (rundir.media_path rejects the rest)."""
    return send_file(state()["run"].media_path(relative), conditional=True, max_age=60)


