"""The dashboard in Chromium, as a person uses it: the report with every study's figures, a
phone search in the feature browser, a feature page whose audio loads and plays, an uploaded
clip's transcript and timeline, an intervention that changes the transcript, a span dragged on
the spectrogram whose word removal takes a word out, and a path-traversal URL that gets a 404.
Screenshots are saved beside the test's files."""

from __future__ import annotations

import pytest

from whisperlens.dashboard.app import create_app
from whisperlens.dashboard.server import serving

from .browser import broken_images, browser_page, drag_over_word
from .conftest import synthesize
from .dashboard_run import run_directory, studies

PHONE = "T"


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory, corpus):
    return run_directory(tmp_path_factory, corpus)


def test_dashboard_in_chromium(run_dir, tmp_path):
    clip = synthesize("The quick brown fox jumps over the lazy dog.", tmp_path / "fox.wav")
    with serving(create_app(run_dir, studies())) as base, browser_page(tmp_path / "profile") as page:
        page.set_viewport_size({"width": 1400, "height": 1000})
        assert base.startswith("http://127.0.0.1:")

        # The report: every study in the run directory, its figures loaded from the run directory.
        page.goto(f"{base}/")
        page.wait_for_load_state("networkidle")
        assert page.locator("section.study").count() == 2
        assert page.locator("section#features figure img").count() == 1
        assert broken_images(page) == []
        page.screenshot(path=str(tmp_path / "report.png"), full_page=True)

        # The feature browser: search for a phone; every row is that phone's.
        page.click("text=Features")
        page.select_option("#phone", PHONE)
        page.click("form.filters button[type=submit]")
        page.wait_for_load_state("networkidle")
        assert f"phone={PHONE}" in page.url
        phones = page.eval_on_selector_all("table.browser tr td:nth-child(4)", "cells => cells.map(c => c.textContent)")
        assert phones and set(phones) == {PHONE}
        page.screenshot(path=str(tmp_path / "features.png"))

        # A feature page: its audio loads and plays, the spectrogram and histogram load.
        page.click("table.browser tr:nth-child(2) td a")
        page.wait_for_load_state("networkidle")
        assert "/features/" in page.url and page.locator(".top-example").count() >= 1
        page.locator("img.seek").first.scroll_into_view_if_needed()
        page.wait_for_function("[...document.images].every(image => image.complete)")
        assert broken_images(page) == []
        played = page.eval_on_selector("audio.amplified", """audio => new Promise((done, fail) => {
            audio.addEventListener("error", () => fail(new Error("cannot load " + audio.src)));
            audio.addEventListener("playing", () => {
                const start = audio.currentTime;
                setTimeout(() => done({ready: audio.readyState, start, now: audio.currentTime, duration: audio.duration}), 300);
            }, {once: true});
            audio.play(); })""")
        assert played["ready"] >= 2 and played["now"] > played["start"] and 0.9 < played["duration"] < 1.2
        # A click on the spectrogram plays the plain audio from that point in the window.
        box = page.locator("img.seek").first.bounding_box()
        page.mouse.click(box["x"] + box["width"] * 0.75, box["y"] + box["height"] / 2)
        page.wait_for_function("(audio => audio.currentTime > 0.7 && !audio.paused)(document.querySelector('audio.plain'))")
        page.screenshot(path=str(tmp_path / "feature.png"), full_page=True)

        # Your audio: upload a synthesized clip; its transcript and timeline appear.
        page.click("nav.top >> text=Your audio")
        page.set_input_files("#upload-file", str(clip))
        page.click("#upload button[type=submit]")
        page.wait_for_selector("#transcript button.word", timeout=120_000)
        words = page.eval_on_selector_all("#transcript button.word", "words => words.map(w => w.textContent.toLowerCase())")
        assert "fox" in " ".join(words) and "dog." in words
        assert page.locator("#timeline-frames span.frame").count() == 139  # 2.77 s of 20 ms frames
        page.click("#transcript button.word >> text=fox")
        assert page.locator("#word-features li a").count() >= 3
        page.screenshot(path=str(tmp_path / "listen.png"), full_page=True)

        # One intervention: attention cut to each frame itself (band ±0) changes the transcript.
        page.fill("#band-k", "0")
        page.click("#poke button[type=submit]")
        page.wait_for_selector("#poke-result:not([hidden])", timeout=120_000)
        before, after = page.inner_text("#poke-before"), page.inner_text("#poke-after")
        assert "fox" in before.lower() and after != before
        assert '"attention_mask"' in page.inner_text("#poke-spec")

        # Word removal: a drag across the last word on the spectrogram selects its span; the
        # edited transcript lacks the word, shown struck out in the original beside it.
        start, end = drag_over_word(page, page.locator("#transcript button.word").last)
        assert page.is_checked("input[name=kind][value=remove]") and page.is_visible("#span-selection")
        assert float(page.input_value("#span-start")) == pytest.approx(start, abs=0.03)
        assert float(page.input_value("#span-end")) == pytest.approx(end, abs=0.03)
        page.click("#poke button[type=submit]")
        page.wait_for_function("document.getElementById('poke-spec').textContent.includes('encoder.hook_ln_post')",
                               timeout=120_000)
        before, after = page.inner_text("#poke-before").lower(), page.inner_text("#poke-after").lower()
        assert "dog" in before and "dog" not in after and "fox" in after
        assert "dog" in page.inner_text("#poke-before del").lower()

        # A bad upload: a clear message on the page, no crash.
        (tmp_path / "notes.wav").write_text("not audio at all")
        page.set_input_files("#upload-file", str(tmp_path / "notes.wav"))
        page.click("#upload button[type=submit]")
        page.wait_for_selector("#message:not([hidden])")
        assert "not a readable audio file" in page.inner_text("#message")

        # Path traversal: a 404, not a file from outside the run directory.
        for url in ("/media/../../etc/passwd", "/media/%2e%2e/%2e%2e/etc/passwd", "/media/example/..%2f..%2fresult.json"):
            assert page.goto(base + url).status == 404, url
        page.screenshot(path=str(tmp_path / "not-found.png"))
        assert page.errors == []
        assert all(url.startswith(base) or url.startswith(("data:", "blob:")) for url in page.requests), page.requests
