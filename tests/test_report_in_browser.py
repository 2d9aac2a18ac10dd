"""The report and a study page, opened in Chromium from a loopback server: every figure loads,
the audio plays from its file, nothing is fetched from anywhere else, and no script errors."""

from whisperlens.studies.example import STUDY as EXAMPLE
from whisperlens.studies.example import ExampleConfig
from whisperlens.study import ModelSpec, StudyContext
from whisperlens.study.runner import run_pipeline

from .browser import broken_images, browser_page, serve


def test_report_and_study_page_render_in_chromium(tmp_path):
    out = tmp_path / "site" / "main"
    run_pipeline([(EXAMPLE, ExampleConfig(model=ModelSpec("tiny.en")))], out, "whisperlens: tiny.en",
                 StudyContext(out, progress=False))
    with serve(tmp_path / "site") as base, browser_page(tmp_path / "profile") as page:
        for path in ("main/index.html", "main/example/index.html"):
            page.goto(f"{base}/{path}")
            page.wait_for_load_state("networkidle")
            assert broken_images(page) == [], path
            assert "quick brown fox" in page.inner_text("body").lower()
            audio = page.evaluate("document.querySelector('audio').src")
            assert page.request.get(audio).status == 200
            page.screenshot(path=str(tmp_path / f"{path.replace('/', '_')}.png"), full_page=True)
        assert page.errors == []
        assert all(url.startswith(base) for url in page.requests), page.requests
        # The figure sits beside its numbers.
        assert page.locator("figure img").count() == 1 and page.locator("figure table").count() == 1
