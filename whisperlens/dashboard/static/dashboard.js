// The dashboard's one script, plain JS (no build step, no library): the feature page's
// click-to-seek spectrograms, and the "your audio" page (upload or pick, transcript, spectrogram
// with span selection and timeline, poke, attention), which it fills in from the JSON API.
"use strict";

// ---- feature page: a click on a spectrogram plays the plain audio from that point ----------
document.querySelectorAll("img.seek").forEach(image => {
  image.addEventListener("click", event => {
    const audio = image.closest(".example").querySelector("audio.plain");
    const fraction = (event.clientX - image.getBoundingClientRect().left) / image.clientWidth;
    const seek = () => { audio.currentTime = fraction * audio.duration; audio.play(); };
    if (audio.readyState >= 1) seek(); else { audio.addEventListener("loadedmetadata", seek, {once: true}); audio.load(); }
  });
});

// ---- your audio ----------------------------------------------------------------------------
const listen = document.getElementById("choose");
if (listen) {
  const $ = id => document.getElementById(id);
  const state = {clip: null, analysis: null};
  const message = text => { $("message").textContent = text || ""; $("message").hidden = !text; };

  async function call(url, options) {
    $("busy").hidden = false;
    try {
      const response = await fetch(url, options);
      const body = await response.json().catch(() => ({error: `the server answered ${response.status}`}));
      if (!response.ok) throw new Error(body.error || `the server answered ${response.status}`);
      return body;
    } finally { $("busy").hidden = true; }
  }
  const colour = feature => `hsl(${(feature * 137.508) % 360}, 65%, 55%)`;
  const featureLink = (site, feature, value) => {
    const link = document.createElement("a");
    link.href = `/features/${site}:${feature}`;
    link.textContent = `${site}:${feature}`;
    const item = document.createElement("li");
    item.append(link, ` max ${value.toFixed(2)}`);
    return item;
  };

  function showWordFeatures(word, button) {
    document.querySelectorAll("#transcript button.word").forEach(b => b.classList.toggle("chosen", b === button));
    const a = state.analysis, best = new Map();
    const first = Math.floor(word.start / a.frame_seconds), last = Math.max(first, Math.ceil(word.end / a.frame_seconds) - 1);
    for (let frame = first; frame <= last && frame < a.features.length; frame++) {
      a.features[frame].forEach((feature, i) => best.set(feature, Math.max(best.get(feature) ?? -Infinity, a.values[frame][i])));
    }
    const list = document.createElement("ul");
    [...best.entries()].sort((x, y) => y[1] - x[1]).slice(0, 10).forEach(([f, v]) => list.append(featureLink(a.site, f, v)));
    const heading = document.createElement("h3");
    heading.textContent = `Top features over “${word.word}” (${word.start.toFixed(2)}–${word.end.toFixed(2)} s)`;
    $("word-features").replaceChildren(heading, list);
  }

  function showAnalysis(a) {
    state.analysis = a;
    $("clip").hidden = false;
    $("spectrogram").dataset.duration = a.duration;
    const transcript = a.words.map(word => {
      const button = document.createElement("button");
      button.className = "word"; button.type = "button"; button.textContent = word.word;
      button.dataset.start = word.start; button.dataset.end = word.end;
      button.addEventListener("click", () => showWordFeatures(word, button));
      return button;
    });
    $("transcript").replaceChildren(...(transcript.length ? transcript : [a.text || "(no speech)"]));
    const percent = seconds => `${(100 * seconds / a.duration).toFixed(3)}%`;
    $("timeline-words").replaceChildren(...a.words.map(word => {
      const span = document.createElement("span");
      span.textContent = word.word; span.style.left = percent(word.start); span.style.width = percent(word.end - word.start);
      return span;
    }));
    $("timeline-frames").replaceChildren(...a.features.map((features, frame) => {
      const span = document.createElement("span");
      span.className = "frame"; span.dataset.frame = frame;
      span.style.left = percent(frame * a.frame_seconds); span.style.width = percent(a.frame_seconds);
      span.style.background = colour(features[0]);
      span.style.opacity = Math.min(1, 0.25 + a.values[frame][0] / Math.max(...a.values.map(v => v[0]), 1e-6));
      span.title = `${(frame * a.frame_seconds).toFixed(2)} s: ` + features.map((f, i) => `${f} (${a.values[frame][i].toFixed(2)})`).join(", ");
      return span;
    }));
  }

  async function useClip(clip) {
    message("");
    state.clip = clip;
    $("clip-audio").src = `/audio/clip/${clip}`;
    $("spectrogram-image").src = `/figures/clip/${clip}/spectrogram.png`;
    setSpan(0, 0);
    try { showAnalysis(await call(`/api/clips/${clip}/analysis?site=${encodeURIComponent($("site").value)}`)); }
    catch (error) { message(error.message); }
  }

  $("upload").addEventListener("submit", async event => {
    event.preventDefault();
    const file = $("upload-file").files[0];
    if (!file) { message("choose a file first"); return; }
    const form = new FormData(); form.append("audio", file);
    try { await useClip((await call("/api/clips", {method: "POST", body: form})).clip); }
    catch (error) { message(error.message); }
  });

  async function fillPicker() {
    try {
      const {clips} = await call(`/api/corpus?q=${encodeURIComponent($("pick-q").value)}&limit=100`);
      $("pick-clip").replaceChildren(...clips.map(clip => {
        const option = document.createElement("option");
        option.value = clip.clip; option.textContent = `${clip.id}: ${clip.text}`;
        return option;
      }));
    } catch (error) { message(error.message); }
  }
  $("pick-q").addEventListener("change", fillPicker);
  $("pick").addEventListener("submit", event => { event.preventDefault(); if ($("pick-clip").value) useClip($("pick-clip").value); });
  $("site").addEventListener("change", () => { if (state.clip) useClip(state.clip); });

  $("timeline").addEventListener("click", event => {
    const frame = event.target.closest("span.frame");
    if (!frame || !state.analysis) return;
    $("clip-audio").currentTime = Number(frame.dataset.frame) * state.analysis.frame_seconds;
    $("clip-audio").play();
    $("attention-frame").value = frame.dataset.frame;
    showAttention();
  });

  // ---- a span of the clip, selected by a drag on the spectrogram or typed in seconds ----------
  const spectrogram = $("spectrogram");
  let dragFrom = null;
  const secondsAt = event => {
    const box = spectrogram.getBoundingClientRect();
    return Math.min(1, Math.max(0, (event.clientX - box.left) / box.width)) * state.analysis.duration;
  };
  function showSpan() {
    const start = Number($("span-start").value), end = Number($("span-end").value), duration = state.analysis?.duration;
    $("span-selection").hidden = !(duration && end > start);
    $("span-selection").style.left = `${(100 * start / duration).toFixed(3)}%`;
    $("span-selection").style.width = `${(100 * (end - start) / duration).toFixed(3)}%`;
  }
  function setSpan(from, to) {
    $("span-start").value = Math.min(from, to).toFixed(2); $("span-end").value = Math.max(from, to).toFixed(2);
    showSpan();
  }
  spectrogram.addEventListener("pointerdown", event => {
    if (!state.analysis) return;
    event.preventDefault();
    spectrogram.setPointerCapture(event.pointerId);
    dragFrom = secondsAt(event); setSpan(dragFrom, dragFrom);
  });
  spectrogram.addEventListener("pointermove", event => { if (dragFrom !== null) setSpan(dragFrom, secondsAt(event)); });
  spectrogram.addEventListener("pointerup", event => {
    if (dragFrom === null) return;
    setSpan(dragFrom, secondsAt(event)); dragFrom = null;
    if (Number($("span-end").value) > Number($("span-start").value)) document.querySelector("input[value=remove]").checked = true;
  });
  ["span-start", "span-end"].forEach(id => $(id).addEventListener("input", showSpan));

  // Which words of one transcript the other lacks: a longest common subsequence over words,
  // compared without case or punctuation. Written out because it is a dozen lines and the page
  // has no libraries (no build step).
  function wordDiff(before, after) {
    const a = before.split(/\s+/).filter(Boolean), b = after.split(/\s+/).filter(Boolean);
    const same = (x, y) => x.toLowerCase().replace(/[^\p{L}\p{N}']/gu, "") === y.toLowerCase().replace(/[^\p{L}\p{N}']/gu, "");
    const common = Array.from({length: a.length + 1}, () => new Array(b.length + 1).fill(0));
    for (let i = a.length - 1; i >= 0; i--) for (let j = b.length - 1; j >= 0; j--)
      common[i][j] = same(a[i], b[j]) ? common[i + 1][j + 1] + 1 : Math.max(common[i + 1][j], common[i][j + 1]);
    const left = [], right = [];
    for (let i = 0, j = 0; i < a.length || j < b.length;) {
      if (i < a.length && j < b.length && same(a[i], b[j])) { left.push([a[i++], false]); right.push([b[j++], false]); }
      else if (j >= b.length || (i < a.length && common[i + 1][j] >= common[i][j + 1])) left.push([a[i++], true]);
      else right.push([b[j++], true]);
    }
    return [left, right];
  }
  const marked = (words, tag) => words.flatMap(([word, changed], i) => {
    const node = changed ? Object.assign(document.createElement(tag), {textContent: word}) : document.createTextNode(word);
    return i ? [" ", node] : [node];
  });

  $("poke").addEventListener("submit", async event => {
    event.preventDefault();
    const kind = document.querySelector("input[name=kind]:checked").value, body = {interventions: [], steer: [], remove: []};
    if (kind === "remove") body.remove.push({start: Number($("span-start").value), end: Number($("span-end").value)});
    if (kind === "band") body.interventions.push({kind: "attention_mask", stack: "encoder", half_width: Number($("band-k").value)});
    if (kind === "head") body.interventions.push({kind: "ablate_heads", attention: `encoder.blocks.${Number($("head-layer").value)}.attn`,
                                                  heads: [Number($("head-index").value)]});
    if (kind === "steer") body.steer.push({feature: $("steer-feature").value.trim(), scale: Number($("steer-scale").value)});
    try {
      const result = await call(`/api/clips/${state.clip}/poke`, {method: "POST", headers: {"Content-Type": "application/json"},
                                                                  body: JSON.stringify(body)});
      const [before, after] = wordDiff(result.baseline, result.text);
      $("poke-before").replaceChildren(...marked(before, "del")); $("poke-after").replaceChildren(...marked(after, "ins"));
      $("poke-spec").textContent = JSON.stringify(result.interventions, null, 1);
      $("poke-result").hidden = false;
      message("");
    } catch (error) { message(error.message); }
  });

  async function showAttention() {
    const frame = Number($("attention-frame").value);
    try {
      const result = await call(`/api/clips/${state.clip}/attention?frame=${frame}`);
      $("attention-image").src = `/figures/clip/${state.clip}/attention.png?frame=${frame}`;
      const rows = [["layer", "head", "most-attended frames (weight)"]].concat(result.top.flatMap((heads, layer) =>
        heads.map((top, head) => [layer, head, top.map(t => `${t.frame} (${t.weight.toFixed(2)})`).join(", ")])));
      $("attention-table").replaceChildren(...rows.map((row, i) => {
        const tr = document.createElement("tr");
        tr.append(...row.map(cell => { const td = document.createElement(i ? "td" : "th"); td.textContent = cell; return td; }));
        return tr;
      }));
      $("attention-figure").hidden = false;
      message("");
    } catch (error) { message(error.message); }
  }
  $("attention").addEventListener("submit", event => { event.preventDefault(); showAttention(); });

  const steer = new URLSearchParams(location.search).get("steer");
  if (steer) { $("steer-feature").value = steer; document.querySelector("input[value=steer]").checked = true; }
  fillPicker();
  if ($("clip").dataset.clip) useClip($("clip").dataset.clip);
}
