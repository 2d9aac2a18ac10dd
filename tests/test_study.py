"""The study layer: configs, results, fingerprints, rendering, the derived CLI and skipping done work."""

import json
import re
from dataclasses import dataclass, field

import numpy as np
import pytest

from whisperlens import WhisperLensError
from whisperlens.cli import main
from whisperlens.study import (
    Figure,
    ModelSpec,
    ModelStudyConfig,
    Result,
    Study,
    StudyContext,
    Table,
    Text,
    config_from_dict,
    config_to_dict,
    new_figure,
    save_figure,
)
from whisperlens.study.config import fingerprint
from whisperlens.study.render import ReportSection, write_report
from whisperlens.study.runner import command_line, run_pipeline, run_study


@dataclass
class Inner:
    """A nested part."""

    width: int = 3  # how wide
    names: tuple[str, ...] = ("a", "b")


@dataclass
class ToyConfig(ModelStudyConfig):
    """A study that squares numbers."""

    numbers: tuple[int, ...] = (1, 2, 3)  # numbers to square
    label: str | None = None
    inner: Inner = field(default_factory=Inner)

    def validate(self) -> None:
        super().validate()
        if any(n < 0 for n in self.numbers):
            raise WhisperLensError("--numbers must not be negative")


class ToyResult(Result):
    study = "toy"
    config_type = ToyConfig

    def views(self):
        squares = self.arrays["squares"]
        return [Text(self.summary["note"]), Table(["n", "n²"], [[n, s] for n, s in zip(self.config.numbers, squares)]),
                Figure("plot.png", "squares", numbers=Table(["max"], [[int(squares.max())]]))]


CALLS = []


def run_toy(config: ToyConfig, context) -> ToyResult:
    CALLS.append(config)
    squares = np.array([n * n for n in config.numbers], dtype=np.int64)
    context.folder.mkdir(parents=True, exist_ok=True)
    figure, axes = new_figure()
    axes.plot(squares)
    save_figure(figure, context.folder, "plot.png")
    return ToyResult(config, {"note": "<b>squares</b> & more", "total": int(squares.sum())}, {"squares": squares}, context.folder)


TOY = Study("toy", "Toy squares", ToyConfig, run_toy, ToyResult, description="squares")


def test_config_round_trips_through_json_with_nested_parts_and_tuples():
    config = ToyConfig(model=ModelSpec("base", dtype="bfloat16"), seed=3, numbers=(4, 5), label=None,
                       inner=Inner(7, ("x",)), interventions=[{"kind": "skip_layers", "layers": [1]}])
    data = json.loads(json.dumps(config_to_dict(config)))
    assert config_from_dict(ToyConfig, data) == config
    with pytest.raises(WhisperLensError, match="unknown config field"):
        config_from_dict(ToyConfig, {**data, "colour": "red"})


def test_result_load_is_the_exact_inverse_of_save(tmp_path):
    context = StudyContext(tmp_path / "toy")
    result = run_toy(ToyConfig(numbers=(2, 9)), context)
    result.fingerprint = "abc"
    result.save()
    loaded = ToyResult.load(tmp_path / "toy")
    assert loaded == result
    assert loaded.arrays["squares"].tolist() == [4, 81] and loaded.config.numbers == (2, 9)
    assert loaded != ToyResult(result.config, {**result.summary, "total": 0}, result.arrays, fingerprint="abc")


def test_loading_a_folder_without_a_result_or_of_another_study_is_a_clear_error(tmp_path):
    with pytest.raises(WhisperLensError, match="no toy result there"):
        ToyResult.load(tmp_path)
    (tmp_path / "result.json").write_text(json.dumps({"study": "other", "format_version": 1}))
    with pytest.raises(WhisperLensError, match="holds a other result"):
        ToyResult.load(tmp_path)


def test_fingerprint_covers_config_corpus_model_and_version_but_not_device(monkeypatch):
    base = fingerprint("toy", ToyConfig(), "corpus1", 1)
    assert fingerprint("toy", ToyConfig(), "corpus1", 1) == base
    assert fingerprint("toy", ToyConfig(model=ModelSpec(device="cuda")), "corpus1", 1) == base
    changed = [ToyConfig(numbers=(1,)), ToyConfig(seed=1), ToyConfig(model=ModelSpec("base")),
               ToyConfig(model=ModelSpec(dtype="bfloat16")), ToyConfig(inner=Inner(width=4))]
    assert all(fingerprint("toy", c, "corpus1", 1) != base for c in changed)
    assert fingerprint("toy", ToyConfig(), "corpus2", 1) != base
    assert fingerprint("toy", ToyConfig(), "corpus1", 2) != base
    import whisperlens

    monkeypatch.setattr(whisperlens, "__version__", "9.9")
    assert fingerprint("toy", ToyConfig(), "corpus1", 1) != base


def test_run_study_skips_a_matching_result_and_reruns_when_the_config_changes(tmp_path):
    CALLS.clear()
    context = StudyContext(tmp_path, progress=False)
    first, ran = run_study(TOY, ToyConfig(), tmp_path / "toy", context)
    assert ran and len(CALLS) == 1
    stamp = (tmp_path / "toy" / "result.json").stat().st_mtime_ns
    again, ran = run_study(TOY, ToyConfig(), tmp_path / "toy", context)
    assert not ran and len(CALLS) == 1 and again == first
    assert (tmp_path / "toy" / "result.json").stat().st_mtime_ns == stamp
    _, ran = run_study(TOY, ToyConfig(numbers=(5,)), tmp_path / "toy", context)
    assert ran and len(CALLS) == 2
    _, ran = run_study(TOY, ToyConfig(numbers=(5,)), tmp_path / "toy", context, force=True)
    assert ran and len(CALLS) == 3


def test_bad_config_fails_before_anything_is_written(tmp_path):
    with pytest.raises(WhisperLensError, match="must not be negative"):
        run_study(TOY, ToyConfig(numbers=(-1,)), tmp_path / "toy", StudyContext(tmp_path))
    assert not (tmp_path / "toy").exists()


def test_page_and_report_escape_text_rebase_paths_and_load_nothing_from_the_network(tmp_path):
    context = StudyContext(tmp_path)
    result, _ = run_study(TOY, ToyConfig(), tmp_path / "runs" / "toy", context)
    page = (tmp_path / "runs" / "toy" / "index.html").read_text()
    assert "&lt;b&gt;squares&lt;/b&gt; &amp; more" in page and "<b>squares" not in page
    assert 'src="plot.png"' in page and 'alt="squares"' in page
    assert "whisperlens toy run" in page
    report = write_report(tmp_path / "report" / "index.html", "Report <1>",
                          [ReportSection("toy", "Toy", result.views(), result.folder, "whisperlens toy run"),
                           ReportSection("later", "Later", None)]).read_text()
    assert 'src="../runs/toy/plot.png"' in report and "Report &lt;1&gt;" in report
    assert "Not finished yet" in report
    assert not re.search(r"(src|href)=\"(https?:)?//", page + report)


def test_same_seed_gives_byte_identical_result_files(tmp_path):
    for name in ("a", "b"):
        run_study(TOY, ToyConfig(), tmp_path / name, StudyContext(tmp_path))
    for file in ("result.json", "config.json", "arrays.safetensors", "plot.png", "index.html"):
        assert (tmp_path / "a" / file).read_bytes() == (tmp_path / "b" / file).read_bytes(), file


def test_command_line_reproduces_the_config():
    import simple_parsing

    config = ToyConfig(model=ModelSpec("base"), numbers=(4, 5), label="hi", inner=Inner(width=9),
                       interventions=[{"kind": "skip_layers", "layers": [1]}])
    command = command_line(TOY, config)
    assert command.startswith("whisperlens toy run ")
    parser = simple_parsing.ArgumentParser(add_option_string_dash_variants=simple_parsing.DashVariant.DASH,
                                           nested_mode=simple_parsing.NestedMode.WITHOUT_ROOT, add_config_path_arg=False)
    parser.add_arguments(ToyConfig, dest="config")
    import shlex

    assert parser.parse_args(shlex.split(command)[3:]).config == config


def test_pipeline_rewrites_the_report_after_each_study(tmp_path, capsys):
    CALLS.clear()
    seen = []

    def peek(config, context):
        seen.append((tmp_path / "out" / "index.html").read_text())
        return run_toy(config, context)

    peeking = Study("peek", "Peek", ToyConfig, peek, ToyResult)
    run_pipeline([(TOY, ToyConfig()), (peeking, ToyConfig(numbers=(7,)))], tmp_path / "out", "Main", StudyContext(tmp_path))
    # While the second study ran, the report already had the first one's table.
    assert "Toy squares" in seen[0] and "Not finished yet" in seen[0] and "<td class=\"num\">9</td>" in seen[0]
    final = (tmp_path / "out" / "index.html").read_text()
    assert "Not finished yet" not in final and "<td class=\"num\">49</td>" in final


def test_example_study_cli_derives_flags_from_the_config(capsys):
    with pytest.raises(SystemExit):
        main(["example", "run", "--help"])
    help_text = capsys.readouterr().out
    for flag in ("--audio", "--hooks", "--model", "--device", "--dtype", "--seed", "--interventions", "--out", "--force"):
        assert flag in help_text


@pytest.mark.parametrize("argv, message", [
    (["--device", "cuda"], "device 'cuda' is not usable here"),
    (["--audio", "missing.flac"], "missing.flac"),
    (["--interventions", "not json"], "JSON list"),
])
def test_example_study_rejects_bad_input_in_one_line_and_writes_nothing(tmp_path, capsys, argv, message):
    out = tmp_path / "ex"
    assert main(["example", "run", "--out", str(out), "--no-progress", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not out.exists()


def test_example_study_on_real_weights_transcribes_and_plots(tmp_path, capsys):
    out = tmp_path / "ex"
    assert main(["example", "run", "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "quick brown fox" in printed.lower()
    summary = json.loads((out / "result.json").read_text())["summary"]
    assert summary["words"][0]["word"] == "Hot"
    assert [h["name"] for h in summary["hooks"]] == [f"encoder.blocks.{i}.hook_resid_post" for i in range(4)]
    assert (out / "norms.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["example", "show", "--out", str(out)]) == 0
    assert "encoder.blocks.3.hook_resid_post" in capsys.readouterr().out
