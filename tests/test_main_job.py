"""`whisperlens run`, the README's main job, end to end on a small corpus."""

from __future__ import annotations

import json

from whisperlens.cli import main
from whisperlens.corpus import CorpusConfig, build_corpus


def test_main_job_writes_report_store_and_pages_and_resumes(tmp_path, monkeypatch, capsys):
    corpus_dir = tmp_path / "corpus"
    build_corpus(CorpusConfig(out=corpus_dir, clips=45, sets=("english",)), progress=False)
    monkeypatch.chdir(tmp_path)  # the feature store goes to runs/features/... under the working directory
    argv = ["run", "--corpus", str(corpus_dir), "--clips", "45", "--out", "report", "--no-progress"]
    assert main(argv) == 0
    report = (tmp_path / "report" / "index.html").read_text()
    assert "quick brown fox" in report.lower()
    assert "../runs/features/tiny.en/short/html/index.html" in report
    store = tmp_path / "runs" / "features" / "tiny.en" / "short"
    summary = json.loads((store / "summary.json").read_text())
    assert {s["site"] for s in summary["sites"]} >= {"encoder.blocks.2.mlp.hook_post", "sae:encoder.blocks.3.hook_resid_post"}
    assert (store / "html" / "index.html").exists()
    assert json.loads((tmp_path / "report" / "example.json").read_text())["words"][0]["word"] == "Hot"
    first = (store / "summary.md").read_text()
    capsys.readouterr()

    # A second run finds everything done and gives the same result.
    assert main(argv) == 0
    assert (store / "summary.md").read_text() == first
    # Then `features show` reads the store the main job wrote.
    assert main(["features", "show", "encoder.blocks.2.mlp.hook_post:0"]) == 0
    assert "encoder.blocks.2.mlp.hook_post" in capsys.readouterr().out


def test_main_job_rejects_bad_arguments(capsys, tmp_path):
    assert main(["run", "--clips", "0", "--out", str(tmp_path / "out")]) == 2
    assert "--clips must be positive" in capsys.readouterr().err
    assert main(["run", "--corpus", str(tmp_path / "missing"), "--out", str(tmp_path / "out")]) == 2
    assert not (tmp_path / "out").exists()
