"""``--backend ray`` (server.net.ray_backend) on a real two-node Ray cluster, started by the test on loopback.

Both nodes are Ray processes on this machine bound to 127.0.0.1 (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``
makes Ray's own address loopback; nothing listens on another address). The runs are the real commands in
subprocesses: ``arena launch`` and ``arena train`` with their workers and learners as Ray actors, one of
each SIGKILLed mid-run. Learning is not measured here (a benchmark's job: see the README); sizes are tiny.
"""
import csv
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"      # before Ray is imported: loopback only
ray = pytest.importorskip("ray", reason="the ray extra (pip install -e '.[ray]') is not installed")
from ray.cluster_utils import Cluster  # noqa: E402

from agents import checkpoint as ckpt  # noqa: E402
from server.net.proc import reap_stale_dirs  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
ENV = dict(os.environ, PYTHONPATH=str(ROOT), RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0")
SMALL = ["--set", "num_matches=64", "--set", "batch_segments=64", "--set", "horizon=8", "--set", "hidden=32"]
PLACED = re.compile(r"([\w.-]+)@([\d.]+)\((\w+)\) pid (\d+)")


@pytest.fixture(scope="module")
def cluster():
    """Two Ray nodes on loopback, 3 CPUs each (Ray's scheduling count, not real cores)."""
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 3, "node_ip_address": "127.0.0.1",
                                                      "include_dashboard": False})
    c.add_node(num_cpus=3, node_ip_address="127.0.0.1")
    c.wait_for_nodes()
    yield c
    c.shutdown()


def cli(*args):
    return [sys.executable, "-m", "server.cli", *args]


def placed(text: str) -> dict[str, dict]:
    """name -> {ip, node, pid} from the driver's 'ray: N actors on M node(s)' line."""
    return {m[1]: {"ip": m[2], "node": m[3], "pid": int(m[4])} for m in PLACED.finditer(text)}


def test_launch_places_workers_on_both_nodes_and_plays(cluster, tmp_path):
    out = tmp_path / "launch.json"
    r = subprocess.run(cli("launch", "connect4", "--backend", "ray", "--address", cluster.address, "--spread",
                           "--workers", "2", "--matches", "64", "--games", "200", "--agents", "random,greedy",
                           "--json", "--no-progress"), env=ENV, cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stderr[-3000:]
    where = placed(r.stderr)
    assert set(where) == {"w0", "w1"}
    assert len({w["node"] for w in where.values()}) == 2            # spread over the two nodes
    assert all(w["ip"] == "127.0.0.1" for w in where.values())
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert summary["matches"] >= 200 and summary["backend"] == "ray" and summary["workers"] == 2
    assert summary["restarts"] == {"w0": 0, "w1": 0}


def test_a_run_too_big_for_the_cluster_is_refused_in_one_line(cluster):
    r = subprocess.run(cli("launch", "connect4", "--backend", "ray", "--address", cluster.address, "--workers", "2",
                           "--worker-cpus", "5", "--steps", "10"), env=ENV, cwd=ROOT, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 2
    assert "needs 10 CPUs" in r.stderr and "has 6" in r.stderr, r.stderr[-2000:]


def _wait_for(pred, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_train_spreads_over_two_nodes_survives_killed_actors_and_resumes_the_learner(cluster, tmp_path):
    out = tmp_path / "run"
    proc = subprocess.Popen(cli("train", "connect4", "--backend", "ray", "--address", cluster.address, "--spread",
                                "--learners", "2", "--workers", "1", "--minutes", "1.5", "--out", str(out),
                                "--every", "2", "--eval-games", "100", "--save-every", "3", *SMALL),
                            env=ENV, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    lines: list[str] = []
    try:
        for line in proc.stdout:            # up to the placement line
            lines.append(line)
            if PLACED.search(line):
                break
        where = placed("".join(lines))
        assert set(where) == {"L0", "L1", "w0"}, "".join(lines)[-3000:]
        assert len({w["node"] for w in where.values()}) == 2
        l1 = out / "learners" / "L1"
        _wait_for(lambda: ckpt.has_checkpoint(l1), 120, "L1's first checkpoint")
        time.sleep(1.0)
        saved = json.loads((ckpt.latest(l1) / "state.json").read_text())["version"]
        os.kill(where["w0"]["pid"], signal.SIGKILL)       # the actors' processes; their children die with them
        os.kill(where["L1"]["pid"], signal.SIGKILL)
        rest, _ = proc.communicate(timeout=400)
        lines.append(rest)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    text = "".join(lines)
    assert proc.returncode == 0, text[-4000:]
    for name in ("policy/checkpoint.json", "curves.csv", "curves.png", "summary.json", "train.json",
                 "learners/L0/checkpoint.json", "learners/L1/checkpoint.json"):     # what a local run writes
        assert (out / name).is_file(), name
    summary = json.loads((out / "summary.json").read_text())
    assert summary["backend"] == "ray"
    assert summary["restarts"]["w0"] >= 1 and summary["restarts"]["L1"] >= 1, summary["restarts"]
    assert len(set(summary["nodes"].values())) == 2
    assert set(summary["eval"]) == {"random", "greedy"}
    # the restarted learner went on from its checkpoint: its versions never go back
    final = json.loads((ckpt.latest(l1) / "state.json").read_text())
    assert final["version"] > saved
    versions = [int(r["version"]) for r in csv.DictReader(open(out / "curves.csv")) if r["learner"] == "L1"]
    assert versions and all(b >= a for a, b in zip(versions, versions[1:])), versions
    assert "resumed from" in text
    # the killed actors' private folders are recognised as left by dead processes and removed (by the next
    # arena process that starts: here the restarted actors' own children, or this reap)
    reap_stale_dirs()
    for name in ("L1", "w0"):
        assert not list(Path(tempfile.gettempdir()).glob(f"arena-ray-{name}-{where[name]['pid']}-*")), name


def test_league_runs_its_learners_and_workers_as_actors(cluster, tmp_path):
    d = tmp_path / "lg"
    r = subprocess.run(cli("league", "connect4", "--dir", str(d), "--backend", "ray", "--address", cluster.address,
                           "--spread", "--minutes", "0.3", "--eval-games", "20", "--every", "5", *SMALL),
                       env=ENV, cwd=ROOT, capture_output=True, text=True, timeout=400)
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
    where = placed(r.stdout + r.stderr)
    assert set(where) == {"main0-L0", "mx0-L0", "w0"}
    assert len({w["node"] for w in where.values()}) == 2
    summary = json.loads((d / "league.json").read_text())
    assert summary["backend"] == "ray" and summary["restarts"] == {n: 0 for n in where}
    assert summary["top"] == "main0" and summary["matches"] > 0 and "random" in summary["evaluation"]
    for name in ("league.db", "leaderboard.csv", "payoff.csv", "payoff.png", "ratings.png"):
        assert (d / name).is_file(), name


def test_policy_workers_go_where_the_gpus_are(cluster):
    """A third node that declares a GPU (Ray's count: no real GPU is needed; the workers' --device auto
    falls back to the CPU there): both policy workers take an equal share of it, so both land on that node."""
    node = cluster.add_node(num_cpus=2, num_gpus=1, node_ip_address="127.0.0.1")
    try:
        cluster.wait_for_nodes()
        r = subprocess.run(cli("launch", "connect4", "--backend", "ray", "--address", cluster.address,
                               "--workers", "2", "--matches", "16", "--games", "32", "--agents", "random,greedy",
                               "--json", "--no-progress"), env=ENV, cwd=ROOT, capture_output=True, text=True,
                           timeout=240)
        assert r.returncode == 0, r.stderr[-3000:]
        where = placed(r.stderr)
        assert {w["node"] for w in where.values()} == {node.node_id[:8]}, (where, node.node_id)
    finally:
        cluster.remove_node(node)
