"""Screenshots of the dashboard for docs/dashboard.md, taken in Debian's Chromium (Playwright).

    python scripts/dashboard_screenshots.py [--run-dir runs/main] [--out docs/dashboard]

With --run-dir, the screenshots show that run; without, a small demo run is built first (the
example and features studies over a 30-clip corpus, as the dashboard's tests use) in --work.
Each page is driven as a person would: a phone search, the first feature, a synthesized clip
uploaded, a word clicked, the last word's span dragged on the spectrogram and removed, the
attention around a frame.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the tests' browser helper and demo run

SENTENCE = "The quick brown fox jumps over the lazy dog."


def demo_run(work: Path) -> Path:
    from tests.dashboard_run import build_run
    from whisperlens.corpus import CorpusConfig, build_corpus

    build_corpus(CorpusConfig(out=work / "corpus", clips=30, sets=("english",), workers=1), progress=False)
    return build_run(work / "main", str(work / "corpus"), progress=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", default=None, help="a run directory (default: build a small demo run in --work)")
    parser.add_argument("--work", default="/tmp/whisperlens-dashboard-demo", help="where the demo run is built")
    parser.add_argument("--out", default=str(ROOT / "docs" / "dashboard"), help="where the PNGs go")
    parser.add_argument("--phone", default="S", help="the phone searched for")
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    from tests.browser import CHROMIUM, FLAGS, drag_over_word
    from tests.dashboard_run import studies
    from whisperlens.dashboard.app import create_app
    from whisperlens.dashboard.server import serving

    work, out = Path(args.work), Path(args.out)
    work.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    run_dir = Path(args.run_dir) if args.run_dir else demo_run(work)
    clip = work / "fox.wav"
    subprocess.run(["flite", "-voice", "kal16", "-t", SENTENCE, "-o", str(clip)], check=True)

    def shot(page, name: str, full_page: bool = False) -> None:
        page.screenshot(path=str(out / f"{name}.png"), full_page=full_page)
        print(out / f"{name}.png")

    with serving(create_app(run_dir, studies())) as base, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(f"{base}/")
        page.wait_for_load_state("networkidle")
        shot(page, "report")

        page.goto(f"{base}/features?phone={args.phone}&sort=selectivity")
        shot(page, "features")

        page.click("table.browser tr:nth-child(2) td a")
        page.wait_for_load_state("networkidle")
        images = page.locator("img")
        for i in range(images.count()):  # spectrograms load lazily, each a model run: bring each into view
            images.nth(i).scroll_into_view_if_needed()
        page.wait_for_function("[...document.images].every(image => image.complete)", timeout=600_000)
        page.evaluate("window.scrollTo(0, 0)")
        shot(page, "feature", full_page=True)

        page.goto(f"{base}/listen")
        page.set_input_files("#upload-file", str(clip))
        page.click("#upload button[type=submit]")
        page.wait_for_selector("#transcript button.word", timeout=300_000)
        page.click("#transcript button.word >> text=fox")
        drag_over_word(page, page.locator("#transcript button.word").last)
        page.click("#poke button[type=submit]")
        page.wait_for_selector("#poke-result:not([hidden])", timeout=300_000)
        page.fill("#attention-frame", "60")
        page.click("#attention button[type=submit]")
        page.wait_for_selector("#attention-figure:not([hidden])", timeout=300_000)
        page.wait_for_function("document.getElementById('attention-image').complete")
        shot(page, "listen", full_page=True)
        browser.close()


if __name__ == "__main__":
    main()
