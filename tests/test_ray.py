"""The Ray executor on a real cluster on this machine: a head and a worker node started with
`ray start` on free loopback ports, each with one CPU, stopped at the end. A small harvest (driven
by the CLI, as a user would), the probes study and the patching study give exactly the local
executor's results, and so does a harvest whose worker process is killed in the middle of a shard."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from whisperlens.corpus.selection import CorpusSelection
from whisperlens.distributed import ExecutorSpec
from whisperlens.features.sharded import harvest_sharded
from whisperlens.features.store import FeatureStore
from whisperlens.study.context import StudyContext
from whisperlens.study.runner import run_study

from .conftest import HOOKS, small_config
from .test_distributed import assert_same_harvest, same_array
from .test_sharded_studies import assert_same_result, patching_config

REPO = Path(__file__).resolve().parent.parent
RAY = shutil.which("ray", path=str(Path(sys.executable).parent)) or "ray"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Cluster:
    """`ray start --block` for a head and a worker node, each in its own process group, so that
    stopping them is killing exactly the groups this test started."""

    def __init__(self, log_dir: Path):
        self.port, self.marker = free_port(), uuid.uuid4().hex
        self.address = f"127.0.0.1:{self.port}"
        # the workers import this checkout's whisperlens, run one torch thread, and carry a marker
        # by which the test finds its own worker processes
        # Ray's token authentication off, for the nodes, the CLI and the drivers alike: a token
        # file left in ~/.ray by an earlier in-process cluster would otherwise turn it on for the
        # nodes but not for the CLI (the cluster listens on loopback only)
        self.env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "WHISPERLENS_TEST_CLUSTER": self.marker,
                    "RAY_AUTH_MODE": "disabled"}
        self.log_dir, self.nodes = log_dir, []

    def start(self) -> None:
        common = ["--num-cpus=1", "--object-store-memory=200000000", "--disable-usage-stats", "--block"]
        self._node("head", ["--head", "--node-ip-address=127.0.0.1", f"--port={self.port}", "--include-dashboard=false"],
                   common)
        self._wait(lambda: subprocess.run([RAY, "status", f"--address={self.address}"], capture_output=True,
                                          env=self.env, timeout=30).returncode == 0, "the head node")
        self._node("worker", [f"--address={self.address}", "--node-ip-address=127.0.0.1"], common)
        self._wait(lambda: b"2.0 CPU" in subprocess.run([RAY, "status", f"--address={self.address}"], capture_output=True,
                                                        env=self.env, timeout=30).stdout, "the worker node")

    def _node(self, name: str, flags: list[str], common: list[str]) -> None:
        log = open(self.log_dir / f"ray-{name}.log", "w")
        self.nodes.append(subprocess.Popen([RAY, "start", *flags, *common], env=self.env, stdout=log,
                                           stderr=subprocess.STDOUT, start_new_session=True))

    def _wait(self, ready, what: str, seconds: float = 90) -> None:
        deadline = time.monotonic() + seconds
        while not ready():
            if time.monotonic() > deadline or any(node.poll() is not None for node in self.nodes):
                self.stop()
                logs = "\n".join(path.read_text()[-2000:] for path in self.log_dir.glob("ray-*.log"))
                raise RuntimeError(f"Ray cluster: {what} did not come up\n{logs}")
            time.sleep(1)

    def worker_pids(self, title: str) -> list[int]:
        """Processes of this cluster whose title starts with `title` (Ray names an actor's process
        `ray::Class` and, while it runs a method, `ray::Class.method`)."""
        found = []
        for entry in Path("/proc").iterdir():
            try:
                if entry.name.isdigit() and (entry / "cmdline").read_bytes().startswith(title.encode()) \
                        and f"WHISPERLENS_TEST_CLUSTER={self.marker}".encode() in (entry / "environ").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue  # a process that ended while we looked
        return found

    def stop(self) -> None:
        for node in reversed(self.nodes):
            if node.poll() is None:
                os.killpg(node.pid, signal.SIGKILL)  # the group this test started: ray start, raylet, GCS, workers
            node.wait()
        # Killed, the head leaves its address in Ray's file for `ray.init()` and `--ray-address
        # auto` to find; remove it if it is still this cluster's (Ray's own temp dir is kept:
        # with another one, the CLI cannot find the cluster's auth token).
        current = Path("/tmp/ray/ray_current_cluster")
        with contextlib.suppress(OSError):
            if current.read_text().strip().endswith(f":{self.port}"):
                current.unlink()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    import ray

    running = Cluster(tmp_path_factory.mktemp("ray"))
    auth_mode = os.environ.get("RAY_AUTH_MODE")
    os.environ["RAY_AUTH_MODE"] = "disabled"  # for the drivers this process starts
    running.start()
    yield running
    ray.shutdown()
    running.stop()
    if auth_mode is None:
        del os.environ["RAY_AUTH_MODE"]
    else:
        os.environ["RAY_AUTH_MODE"] = auth_mode


def test_features_build_on_ray_equals_the_local_harvest(cluster, corpus, harvested, tmp_path):
    """`whisperlens features build --executor ray --ray-address ...`, a separate driver process."""
    config = small_config()
    store_dir = tmp_path / "store"
    argv = [sys.executable, "-m", "whisperlens", "features", "build", "--corpus", str(corpus.root), "--sets",
            "--hooks", *HOOKS, "--bases", "neurons", "random", "--random-features", str(config.random_features),
            "--batch-size", str(config.batch_size), "--top-k", str(config.top_k), "--mode", config.mode, "--html", "false",
            "--store", str(store_dir), "--out", str(tmp_path / "result"), "--no-progress",
            "--executor", "ray", "--ray-address", cluster.address, "--shard-batches", "1"]
    done = subprocess.run(argv, capture_output=True, text=True, env=cluster.env, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    store = FeatureStore(store_dir)
    assert sorted(store.sites) == sorted(harvested.sites) and store.clip_ids == harvested.clip_ids
    for site, stats in harvested.sites.items():
        for key, array in stats.arrays().items():
            assert same_array(getattr(store.stats(site), key), array), (site, key)
    assert not (store_dir / "harvest-shards.npz").exists()


def test_a_worker_killed_mid_shard_is_retried_and_the_result_is_unchanged(cluster, corpus, tiny, harvested):
    import ray

    ray.init(address=cluster.address, include_dashboard=False, log_to_driver=False, configure_logging=False,
             ignore_reinit_error=True)
    killed: list[int] = []

    def kill_one_worker_mid_shard() -> None:
        deadline = time.monotonic() + 120
        while not killed and time.monotonic() < deadline:
            busy = cluster.worker_pids("ray::ShardWorker.run")
            if busy:
                time.sleep(0.2)  # well inside the shard: its model is loading or its batches running
                os.kill(busy[0], signal.SIGKILL)
                killed.append(busy[0])
            time.sleep(0.01)

    killer = threading.Thread(target=kill_one_worker_mid_shard)
    killer.start()
    selection = CorpusSelection(path=str(corpus.root), sets=())
    result = harvest_sharded(corpus, selection, small_config(), tiny, ExecutorSpec("ray", cluster.address, shard_batches=1),
                             progress=False)
    killer.join()
    assert killed, "no worker was seen running a shard"
    assert_same_harvest(result, harvested)


def test_probes_study_on_ray_equals_local(cluster, corpus, tmp_path):
    import ray

    from whisperlens.studies.probes.study import STUDY, ProbesConfig

    ray.init(address=cluster.address, include_dashboard=False, log_to_driver=False, configure_logging=False,
             ignore_reinit_error=True)
    settings = dict(corpus=CorpusSelection(path=str(corpus.root), sets=("english",)), tasks=("phone",),
                    frames_per_class=8, folds=2, control_clusters_per_class=2, batch_size=4)
    results = {}
    for executor in (ExecutorSpec(), ExecutorSpec("ray", cluster.address, shard_batches=2)):
        folder = tmp_path / executor.executor
        results[executor.executor], ran = run_study(STUDY, ProbesConfig(**settings, executor=executor), folder,
                                                    StudyContext(folder, progress=False))
        assert ran
    local, on_ray = results["local"], results["ray"]
    assert on_ray.summary == local.summary and local.summary["frames_sampled"] > 0
    assert on_ray.arrays.keys() == local.arrays.keys()
    for name, array in local.arrays.items():
        assert np.array_equal(on_ray.arrays[name], array), name
    assert (tmp_path / "ray" / "result.json").read_text().count("fingerprint") == 1


def test_patching_study_on_ray_equals_local(cluster, minimal_pair_corpus, tmp_path):
    """A per-pair study (whisperlens.distributed.items): the override matrix's pairs as shards on
    the cluster's two workers, merged on the driver, give the local result."""
    import ray

    from whisperlens.studies.patching.study import STUDY

    ray.init(address=cluster.address, include_dashboard=False, log_to_driver=False, configure_logging=False,
             ignore_reinit_error=True)
    results = {}
    for executor in (ExecutorSpec(), ExecutorSpec("ray", cluster.address, shard_batches=1)):
        folder = tmp_path / executor.executor
        results[executor.executor], ran = run_study(STUDY, patching_config(minimal_pair_corpus, executor), folder,
                                                    StudyContext(folder, progress=False))
        assert ran
    assert_same_result(results["ray"], results["local"])
