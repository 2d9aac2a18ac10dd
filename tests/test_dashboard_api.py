"""The dashboard's server side, through Flask's test client on a real run directory: the report
shows every study's blocks, the feature index searches and rejects bad parameters with a 400,
media never leave the run directory, uploads are checked like the CLI's, and concurrent
requests with different interventions each get what they would get alone."""

from __future__ import annotations

from pathlib import Path

import pytest

from whisperlens.dashboard.app import create_app

from .dashboard_run import run_directory, studies


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory, corpus):
    return run_directory(tmp_path_factory, corpus)


@pytest.fixture(scope="session")
def client(run_dir):
    app = create_app(run_dir, studies())
    app.testing = False  # errors go through the app's own handlers, as in the browser
    return app.test_client()


def test_report_shows_every_study_in_the_run(client, run_dir):
    page = client.get("/")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'id="example"' in html and 'id="features"' in html
    assert 'src="/media/features/selective.png"' in html and 'src="/media/example/norms.png"' in html
    assert client.get("/media/features/selective.png").data[:8] == b"\x89PNG\r\n\x1a\n"


# ---- the feature browser ------------------------------------------------------------------------


def _labels(run_dir):
    from whisperlens.features.store import FeatureStore

    store = FeatureStore(run_dir / "store")
    return {f"{site}:{label['feature']}": label for site in store.sites for label in store.labels(site)}


def test_feature_search_filters_sorts_and_pages(client, run_dir):
    labels = _labels(run_dir)
    everything = client.get("/api/features?per_page=1").json
    assert everything["total"] == len(labels)

    with_t = {fid for fid, label in labels.items() if label.get("top_phone") == "T"}
    first = client.get("/api/features?phone=T&sort=max&per_page=20").json
    second = client.get("/api/features?phone=T&sort=max&per_page=20&page=2").json
    assert first["total"] == len(with_t) > 20
    rows = first["rows"] + second["rows"]
    assert {row["id"] for row in rows} <= with_t and len({row["id"] for row in rows}) == len(rows)
    maxima = [row["max_value"] for row in rows]
    assert maxima == sorted(maxima, reverse=True)
    assert maxima == sorted((labels[fid]["max_value"] for fid in with_t), reverse=True)[:len(rows)]

    ascending = client.get("/api/features?sort=firing&order=asc&basis=random&selective=yes&per_page=200").json
    assert ascending["total"] == sum(1 for fid, label in labels.items() if fid.startswith("random:") and label.get("selective"))
    assert all(row["basis"] == "random" and row["selective"] for row in ascending["rows"])
    rates = [row["firing_rate"] for row in ascending["rows"]]
    assert rates == sorted(rates)

    ranged = client.get("/api/features?min_selectivity=0.6&max_selectivity=0.8&min_firing=0.01").json
    assert ranged["total"] == sum(1 for label in labels.values()
                                  if 0.6 <= label["top_share"] <= 0.8 and label["firing_rate"] >= 0.01)
    by_id = client.get("/api/features?q=hook_post:17&per_page=200").json
    assert {row["id"] for row in by_id["rows"]} == {fid for fid in labels if "hook_post:17" in fid}

    page = client.get("/features?phone=T&sort=max").get_data(as_text=True)
    assert f"{len(with_t)} of {len(labels)} features" in page


BAD_VALUES = ["-1", "0", "1e309", "nan", "inf", "abc", "' OR 1=1 --", "%", "_", "\x00", "ü" * 300, "9" * 40, "1.5", "[]", "{}"]


def test_bad_query_parameters_are_clear_400s_and_the_server_stays_up(client):
    import random

    rng = random.Random(0)
    names = ["page", "per_page", "sort", "order", "site", "basis", "phone", "selective", "polyphonetic",
             "min_selectivity", "max_selectivity", "min_firing", "max_firing", "q", "limit", "frame", "amplified", "top"]
    # Routes that run the model are fuzzed below with values their checks must reject: a
    # request they accept takes seconds.
    paths = ["/features", "/api/features", "/api/corpus", "/audio/feature/encoder.blocks.2.mlp.hook_post:3/top/0"]
    statuses = set()
    for _ in range(150):
        query = {rng.choice(names): rng.choice(BAD_VALUES) for _ in range(rng.randint(1, 3))}
        response = client.get(rng.choice(paths), query_string=query)
        statuses.add(response.status_code)
        assert response.status_code in (200, 400, 404), (query, response.status_code)
        if response.status_code != 200:
            assert "Traceback" not in response.get_data(as_text=True)
    assert 400 in statuses
    for value in ["-1", "1e309", "nan", "abc", "' OR 1=1 --", "9" * 40, "1.5", "\x00"]:
        for path, name in (("attention", "frame"), ("analysis", "site"), ("analysis", "top")):
            response = client.get(f"/api/clips/corpus-0/{path}", query_string={name: value})
            assert response.status_code == 400 and response.json["error"].startswith(name), (path, name, value)
    answer = client.get("/api/features?per_page=500")
    assert answer.status_code == 400 and answer.json == {"error": "per_page: must be a whole number between 1 and 200, got '500'"}
    assert client.get("/features?sort=nope").status_code == 400
    for path in ("/features/not-a-feature", "/features/encoder.blocks.2.mlp.hook_post:999999", "/audio/feature/x:1/top/0",
                 "/audio/feature/encoder.blocks.2.mlp.hook_post:3/top/99", "/figures/feature/nope:1/histogram.png",
                 "/api/clips/upload-unknown/analysis", "/api/clips/corpus-99999/attention", "/no/such/page"):
        response = client.get(path)
        assert response.status_code in (400, 404), path
        assert "Traceback" not in response.get_data(as_text=True)
    assert client.get("/").status_code == 200


# ---- media -------------------------------------------------------------------------------------


def test_media_are_served_only_from_the_run_directory(client, run_dir, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("outside the run directory")
    (run_dir / "example" / "escape.txt").unlink(missing_ok=True)
    (run_dir / "example" / "escape.txt").symlink_to(secret)
    (run_dir / ".hidden").write_text("hidden")
    assert client.get("/media/example/norms.png").status_code == 200
    ranged = client.get("/media/example/norms.png", headers={"Range": "bytes=0-7"})
    assert ranged.status_code == 206 and ranged.data == b"\x89PNG\r\n\x1a\n"
    relative_secret = "/".join([".."] * len(run_dir.relative_to(run_dir.anchor).parts)) + str(secret)
    for path in ["../secret.txt", "../../secret.txt", "..%2f..%2fsecret.txt", "%2e%2e/%2e%2e/secret.txt",
                 "example/../../secret.txt", relative_secret, "/" + str(secret), "//etc/passwd", "example/escape.txt",
                 ".hidden", "example", "example/", "nope.png", "example\\..\\..\\secret.txt", "example/%00.png"]:
        response = client.get("/media/" + path, follow_redirects=True)  # werkzeug redirects // to /
        assert response.status_code == 404, path
        assert b"outside the run directory" not in response.data
    audio = client.get("/audio/feature/encoder.blocks.2.mlp.hook_post:3/top/0", headers={"Range": "bytes=0-99"})
    assert audio.status_code == 206 and len(audio.data) == 100 and audio.mimetype == "audio/mpeg"


def test_links_out_of_the_run_directory_become_text(run_dir):
    from whisperlens.dashboard.rundir import RunDirectory
    from whisperlens.study import Link, Text

    run = RunDirectory(run_dir, studies())
    folder = run_dir / "features"
    inside = Link("../example/index.html", "the example's page")
    assert run._served(inside, folder) is inside
    outside = run._served(Link("../../elsewhere/html/index.html", "Listen to the features"), folder)
    assert isinstance(outside, Text)
    assert outside.text.startswith(f"Listen to the features: {(run_dir.parent / 'elsewhere/html/index.html').resolve()}")


def test_a_decoder_feature_plays_its_clips(client):
    top = client.get("/api/features?site=decoder.blocks.1.mlp.hook_post&sort=max&per_page=1").json["rows"][0]
    page = client.get(f"/features/{top['id']}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    clips = __import__("re").findall(r'src="/audio/clip/(corpus-\d+)"', html)
    assert clips and all(client.get(f"/audio/clip/{clip}").mimetype == "audio/wav" for clip in set(clips))
    assert "/audio/feature/" not in html and "img class=\"seek\"" not in html
    assert client.get(f"/audio/feature/{top['id']}/top/0").status_code == 404  # tokens have no frame to centre on


def test_the_store_a_result_names_is_found_relative_to_where_the_run_was_made(run_dir, tmp_path, monkeypatch):
    import json

    from whisperlens.dashboard.rundir import RunDirectory

    # As `whisperlens run` leaves it: runs/main/features/result.json names runs/features/MODEL/MODE,
    # relative to the directory it ran in.
    (tmp_path / "runs" / "features").mkdir(parents=True)
    (tmp_path / "runs" / "features" / "short").symlink_to(run_dir / "store")
    result = tmp_path / "runs" / "main" / "features"
    result.mkdir(parents=True)
    (result / "result.json").write_text(json.dumps({"study": "features", "summary": {"store": "runs/features/short"}}))
    monkeypatch.chdir(tmp_path / "runs")  # served from elsewhere: found beside the run directory's parent
    assert RunDirectory(tmp_path / "runs" / "main", studies()).store.root == tmp_path / "runs" / "features" / "short"
    monkeypatch.chdir(tmp_path)
    assert RunDirectory("runs/main", studies()).store.root == Path("runs/features/short")
    assert RunDirectory(tmp_path / "runs" / "main", studies(), store=run_dir / "store").store.root == run_dir / "store"
    # The main job's store lives in its run directory (`whisperlens run --out main` in runs/:
    # main/features/store), found from anywhere.
    (result / "store").symlink_to(run_dir / "store")
    (result / "result.json").write_text(json.dumps({"study": "features", "summary": {"store": "main/features/store"}}))
    assert RunDirectory(tmp_path / "runs" / "main", studies()).store.root == result / "store"
