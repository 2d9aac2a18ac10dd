"""`whisperlens run`, the README's main job, end to end on a small corpus."""

from __future__ import annotations

import dataclasses
import json

from whisperlens.cli import main
from whisperlens.commands import run as run_command
from whisperlens.corpus import CorpusConfig, build_corpus
from whisperlens.features.harvest import choose_mode

STUDIES = ("example", "wer", "align", "probes", "layers", "decoder", "patching", "locality", "features")

# The main job's own plan, with the two slowest studies cut to their smallest settings, so the
# test runs every study of `whisperlens run` through the pipeline in minutes (their own tests
# cover what they compute).
SMALLER = {
    "patching": {"pairs": 1, "position_pairs": 2, "window_pairs": 0, "crosslingual_pairs": 0},
    "locality": {"half_widths": (1500, 10), "asterisk": 0, "stat_clips": 1, "head_clips": 1, "removal_words": 2,
                 "margins": (0,), "relevance_clips": 1, "max_tokens": 24},
}


def smaller_plan(*args):
    plan = []
    for study, config in FULL_PLAN(*args):
        changes = dict(SMALLER.get(study.name, {}))
        if study.name == "locality":
            changes["corpus"] = dataclasses.replace(config.corpus, per_voice=None, clips=2)
        plan.append((study, dataclasses.replace(config, **changes)))
    return plan


FULL_PLAN = run_command.main_plan


def test_main_job_writes_every_study_and_a_second_run_does_no_work(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(run_command, "main_plan", smaller_plan)
    corpus_dir = tmp_path / "corpus"
    # english for every study; multilingual and non-speech for the probes; the pairs for patching
    sets = ("english", "multilingual", "nonspeech", "minimal_pairs", "en_es_pairs")
    build_corpus(CorpusConfig(out=corpus_dir, clips=45, sets=sets), progress=False)
    monkeypatch.chdir(tmp_path)  # the feature store goes to runs/features/... under the working directory
    argv = ["run", "--corpus", str(corpus_dir), "--clips", "45", "--out", "report", "--no-progress"]
    assert main(argv) == 0
    report = (tmp_path / "report" / "index.html").read_text()
    assert "quick brown fox" in report.lower()
    mode = choose_mode("auto")  # the features study's default: short, or short-bf16 where bf16 matmul is fast
    assert f"../runs/features/tiny.en/{mode}/html/index.html" in report
    assert "Not finished yet" not in report
    for study in STUDIES:
        assert f'id="{study}"' in report and (tmp_path / "report" / study / "index.html").exists()
    features = json.loads((tmp_path / "report" / "features" / "result.json").read_text())["summary"]
    assert {s["site"] for s in features["sites"]} >= {"encoder.blocks.2.mlp.hook_post", "sae:encoder.blocks.3.hook_resid_post"}
    store = tmp_path / "runs" / "features" / "tiny.en" / mode
    assert (store / "html" / "index.html").exists()
    example = json.loads((tmp_path / "report" / "example" / "result.json").read_text())["summary"]
    assert example["words"][0]["word"] == "Hot"
    capsys.readouterr()

    # A second run finds every study's fingerprint matching: no study runs, no result file or
    # store file is rewritten (a recomputation would rewrite them, and this would fail).
    watched = [p for p in (tmp_path / "report").rglob("*") if p.is_file() and p.name != "index.html"]
    watched += [p for p in store.rglob("*") if p.is_file()]
    before = {p: p.stat().st_mtime_ns for p in watched}
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert printed.count("up to date (same fingerprint), skipped") == len(STUDIES)
    assert {p: p.stat().st_mtime_ns for p in watched} == before

    # Then `features describe` reads the store the main job wrote.
    assert main(["features", "describe", "encoder.blocks.2.mlp.hook_post:0"]) == 0
    assert "encoder.blocks.2.mlp.hook_post" in capsys.readouterr().out


def test_main_job_rejects_bad_arguments(capsys, tmp_path):
    assert main(["run", "--clips", "0", "--out", str(tmp_path / "out")]) == 2
    assert "--clips must be positive" in capsys.readouterr().err
    assert main(["run", "--corpus", str(tmp_path / "missing"), "--out", str(tmp_path / "out")]) == 2
    assert main(["run", "--device", "cuda", "--out", str(tmp_path / "out")]) == 2
    assert "device 'cuda' is not usable here" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
