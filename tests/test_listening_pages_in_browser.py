"""The feature listening pages, opened in Chromium from a loopback server as a person opens them:
the index links to every site page, a site page's spectrograms and players load from their files,
a play button plays its example, nothing is fetched from anywhere else, and no script errors."""

from playwright.sync_api import TimeoutError as PlaywrightTimeout

from whisperlens.features.html import EXAMPLES_SHOWN, export_html

from .browser import broken_images, browser_page, serve

# Records, for every media element the page plays, where it started playing and where it paused.
RECORD_PLAYS = """
window.played = [];
const play = HTMLMediaElement.prototype.play;
HTMLMediaElement.prototype.play = function () {
  const record = {src: this.src, volume: this.volume};
  window.played.push(record);
  this.addEventListener("playing", () => { record.from = this.currentTime; }, {once: true});
  this.addEventListener("pause", () => { record.to = this.currentTime; record.duration = this.duration; }, {once: true});
  return play.call(this);
};
"""
SITES = ["encoder.blocks.2.mlp.hook_post", "decoder.blocks.1.mlp.hook_post"]
TOP = 2


def test_listening_pages_render_and_play_in_chromium(store, corpus, tmp_path):
    index = export_html(store, corpus, top=TOP, sites=SITES, progress=False)
    with serve(index.parent) as base, browser_page(tmp_path / "profile") as page:
        page.set_viewport_size({"width": 1400, "height": 1000})
        page.add_init_script(RECORD_PLAYS)
        page.goto(f"{base}/index.html")
        links = page.eval_on_selector_all("a", "links => links.map(a => a.href)")
        assert links == [f"{base}/{site}.html" for site in SITES]
        assert all(page.request.get(link).status == 200 for link in links)
        page.screenshot(path=str(tmp_path / "index.png"))

        # The decoder page: a row per feature, its top token and contexts, nothing to play.
        page.click(f"text={SITES[1]}")
        page.wait_for_load_state("networkidle")
        assert page.url == links[1]
        assert page.locator("table.features tr[id]").count() == 1536
        assert page.locator("button, audio, img").count() == 0

        # The encoder page, reached back through its link.
        page.click("text=all sites")
        page.click(f"text={SITES[0]}")
        page.wait_for_load_state("networkidle")
        assert page.url == links[0]
        assert page.locator("table.features tr[id]").count() == 1536
        first = page.inner_text("table.features tr[id] >> nth=0")
        assert "top-k:" in first and "precision/recall:" in first and "fires on" in first
        # Spectrograms are lazy: bring each into view, then every image has loaded.
        images = page.locator("img")
        assert images.count() == TOP
        for i in range(TOP):
            images.nth(i).scroll_into_view_if_needed()
        page.wait_for_function("[...document.images].every(image => image.complete)")
        assert broken_images(page) == []
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=str(tmp_path / "site.png"))

        # Every player's file is served, and the browser decodes one: a window of a second.
        sources = page.eval_on_selector_all("audio", "players => players.map(a => a.src)")
        assert len(sources) >= TOP * 2 * 5  # five top examples, plain and amplified
        assert all(source.startswith(f"{base}/media/") for source in sources)
        assert all(page.request.get(source).status == 200 for source in set(sources))
        duration = page.eval_on_selector("audio", """player => new Promise((done, fail) => {
            player.addEventListener("loadedmetadata", () => done(player.duration));
            player.addEventListener("error", () => fail(new Error("cannot load " + player.src)));
            player.preload = "metadata"; player.load(); })""")
        assert 0.9 < duration < 1.2

        # A play button plays its example's window from the clip's file (the same page from a
        # server without range requests, like this one, or from disk): marked while it plays.
        buttons = page.locator("button[data-clip]")
        examples = int((store.stats(SITES[0]).top_clips[:, :EXAMPLES_SHOWN] >= 0).sum())
        assert buttons.count() == 2 * examples  # every example of every feature can be heard, amplified and plain
        assert page.locator("svg.trace polyline").count() == examples  # and its activation over the clip is drawn
        assert page.locator("svg.trace >> nth=0").bounding_box()["width"] == 100
        late = next(i for i in range(0, 200, 2) if int(buttons.nth(i).get_attribute("data-pos")) > 40)
        for url in (page.url, index.with_name(f"{SITES[0]}.html").as_uri()):
            if url != page.url:
                page.goto(url)
            for button in (buttons.nth(late), buttons.nth(late + 1)):  # amplified, then plain
                clip, pos = int(button.get_attribute("data-clip")), int(button.get_attribute("data-pos"))
                assert page.request.get(f"{base}/clips/{clip}.mp3").status == 200
                button.click()
                try:
                    page.wait_for_selector("button.playing", timeout=5_000)
                    page.wait_for_selector("button.playing", state="detached", timeout=5_000)
                except PlaywrightTimeout:
                    raise AssertionError(f"{url}: the button did not play; page errors {page.errors}") from None
                played = page.evaluate("window.played.at(-1)")
                # From disk the clip's file plays; from this server, the same file fetched whole.
                assert played["src"] == f"{url.rsplit('/', 1)[0]}/clips/{clip}.mp3" or \
                    (url.startswith(base) and played["src"].startswith(f"blob:{base}/")), (url, played)
                assert played["volume"] == (0.25 if button.get_attribute("data-amp") is not None else 1)
                centre = (pos + 0.5) * 0.02
                assert centre - 0.5 <= played["from"] < centre - 0.4, (url, played)  # it seeks to the window
                end = min(centre + 0.5, played["duration"])
                assert end <= played["to"] < end + 0.3, (url, played)  # and stops at its end

        assert page.errors == []
        assert all(url.startswith((base, index.parent.as_uri(), f"blob:{base}/")) for url in page.requests), page.requests
