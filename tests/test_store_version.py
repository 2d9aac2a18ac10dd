"""The feature store's format version: written on save, and a store of another version (or
none, from before versions) is refused with a one-line request to rebuild."""

from __future__ import annotations

import json

import numpy as np
import pytest

from whisperlens.cli import main
from whisperlens.errors import WhisperLensError
from whisperlens.features.harvest import PHONES, HarvestConfig, HarvestResult
from whisperlens.features.stats import SiteStats
from whisperlens.features.store import FORMAT_VERSION, FeatureStore

SITE = "encoder.blocks.0.mlp.hook_post"


@pytest.fixture
def store_root(tmp_path):
    """A real store written by FeatureStore.save: one site of 3 features, 2 clips of 4 frames."""
    stats = SiteStats.empty(3, 2, len(PHONES))
    stats.top_values[1] = [2.5, 1.0]
    result = HarvestResult(
        sites={SITE: stats},
        site_info={SITE: {"kind": "neurons", "hook": SITE, "n_features": 3}},
        clip_ids=["a", "b"],
        frames={"phone_offsets": np.array([0, 4, 8]), "phones": np.zeros(8, np.int64),
                "token_offsets": np.array([0, 0, 0]), "tokens": np.zeros(0, np.int64)},
        config=HarvestConfig(),
        seconds=1.0,
        clips_per_second=2.0,
    )
    FeatureStore.save(result, tmp_path / "store", corpus_root=None, extra={"format_version": 99})
    return tmp_path / "store"


def rewrite_manifest(root, change):
    path = root / "manifest.json"
    manifest = json.loads(path.read_text())
    change(manifest)
    path.write_text(json.dumps(manifest))


def test_save_writes_the_format_version_and_the_store_reads_back(store_root):
    assert json.loads((store_root / "manifest.json").read_text())["format_version"] == FORMAT_VERSION == 2
    store = FeatureStore(store_root)
    assert store.sites == [SITE] and store.clip_ids == ["a", "b"]
    assert store.stats(SITE).top_values[1].tolist() == [2.5, 1.0]


@pytest.mark.parametrize("version, found", [(1, "format version 1"), ("2", "format version '2'"), (None, "no format version")])
def test_another_version_asks_for_a_rebuild(store_root, version, found):
    rewrite_manifest(store_root, lambda m: m.update(format_version=version) if version is not None else m.pop("format_version"))
    with pytest.raises(WhisperLensError) as error:
        FeatureStore(store_root)
    message = str(error.value)
    assert "\n" not in message
    assert found in message and f"reads version {FORMAT_VERSION}" in message
    assert f"rebuild it with `whisperlens features run --store {store_root}`" in message


def test_corrupt_manifest_is_a_clear_error(store_root):
    (store_root / "manifest.json").write_text("{not json")
    with pytest.raises(WhisperLensError, match="manifest.json: unreadable"):
        FeatureStore(store_root)
    (store_root / "manifest.json").write_text("[1, 2]")
    with pytest.raises(WhisperLensError, match="no format version"):
        FeatureStore(store_root)


def test_cli_reports_an_old_store_in_one_line(store_root, capsys):
    rewrite_manifest(store_root, lambda m: m.pop("format_version"))
    code = main(["features", "describe", f"{SITE}:1", "--store", str(store_root)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("whisperlens: error: ")
    assert "no format version" in err and "rebuild it" in err
