"""Distributed training (server.learn): rollout workers -> learners -> gossip, as real processes.

The sizes are tiny (64 matches, a 32-wide net) so the tests measure behaviour, not learning; the
learning bars are measured by ``arena train`` itself (README, issue notes).
"""
import csv
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from server.net.protocol import ProtocolError, decode, encode
from server.learn.config import preset
from server.learn.learner import Learner
from server.learn.report import Watcher
from server.learn.rollout import RolloutWorker

ROOT = Path(__file__).resolve().parents[2]
ENV = dict(os.environ, PYTHONPATH=str(ROOT))
SMALL = ["--set", "num_matches=64", "--set", "batch_segments=64", "--set", "horizon=8", "--set", "hidden=32"]


def small_config(tmp_path, net_seed=0, **kw):
    cfg = preset("connect4", num_matches=64, batch_segments=64, horizon=8, hidden=32, net_seed=net_seed, **kw)
    path = tmp_path / f"config-{net_seed}.json"
    path.write_text(json.dumps(cfg.to_dict()))
    return cfg, path


def cli(*args):
    return [sys.executable, "-m", "server.cli", *args]


def run_cli(*args, timeout=240):
    return subprocess.run(cli(*args), env=ENV, cwd=ROOT, capture_output=True, text=True, timeout=timeout)


# -- in one process: the message a worker sends and what the learner does with it --------------------
def test_a_workers_segments_reach_the_learners_batch_intact_and_bad_ones_are_refused(tmp_path, one_torch_thread):
    cfg, _ = small_config(tmp_path)
    learner = Learner(cfg, "L0", tmp_path / "L0", workers=0, gossip_bind=f"ipc://{tmp_path}/g")
    worker = RolloutWorker(cfg, "L0.w0", learner.segments_endpoint, learner.pub_endpoint, chunk=64, seed=5)
    try:
        # parameters reach the worker over PUB/SUB, loaded only when the version moves
        learner.state.version = 3
        deadline = time.monotonic() + 10
        while not worker._refresh(wait=0.1):
            learner.publish_params()
            assert time.monotonic() < deadline, "the worker never received parameters"
        assert worker.trainer.version == 3
        np.testing.assert_array_equal(worker.params.get(), learner.params.get())
        learner.publish_params()
        assert not worker._refresh(wait=0.3)          # same version: nothing reloaded

        worker.trainer.collect()
        msg = decode(encode(worker._message()))
        n = learner._check_segments(msg)
        assert n == worker.trainer.batch.size >= 64
        assert (msg.arrays["version"] == 3).all()
        updates = n // 64
        assert learner._take(msg)                      # fills the batch of 64 (each time) and updates
        assert learner.state.updates == updates and learner.state.version == 3 + updates
        assert learner.last_stats["dropped_segments"] == 0 and learner.last_stats["mean_lag"] == updates - 1
        assert learner.batch.size == n - 64 * updates
        b = worker.trainer.batch
        rest = slice(64 * updates, n)
        for key in ("obs", "mask", "actions", "logp", "rewards", "dones", "valid", "version"):
            np.testing.assert_array_equal(getattr(learner.batch, key)[:n - 64 * updates], getattr(b, key)[rest])
        assert learner.state.agent_steps == worker.trainer.agent_steps > 0

        def broken(key, value):
            m = decode(encode(worker._message()))
            arrays = {k: np.array(v) for k, v in m.arrays.items()}
            arrays[key] = value(arrays[key])
            m.arrays = arrays
            return decode(encode(m))

        bad = [broken("obs", lambda a: a.astype(np.float32)),                 # wrong dtype
               broken("mask", lambda a: a[:, :-1]),                           # wrong shape
               broken("version", lambda a: a + 100),                          # from the future
               broken("logp", lambda a: np.full_like(a, np.nan)),             # not finite
               broken("actions", lambda a: a + 7),                            # out of range
               broken("valid", lambda a: np.zeros_like(a))]                   # empty segments
        for m in bad:
            with pytest.raises(ProtocolError):
                learner._check_segments(m)
    finally:
        worker.close()
        learner.close()


# -- arena train end to end --------------------------------------------------------------------------
def test_arena_train_saves_plots_evaluates_and_resumes(tmp_path):
    out = tmp_path / "run"
    r = run_cli("train", "connect4", "--learners", "2", "--steps", "60000", "--out", str(out), "--every", "1",
                "--eval-games", "40", "--save-every", "2", *SMALL)
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"arena run connect4 --agents ckpt:{out / 'policy'},greedy" in r.stdout
    for name in ("policy.safetensors", "policy.json", "curves.csv", "curves.png", "summary.json",
                 "learners/L0/optimizer.pt", "learners/L1/state.json"):
        assert (out / name).is_file(), name
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = list(csv.DictReader(open(out / "curves.csv")))
    assert {r["learner"] for r in rows} == {"L0", "L1"}
    distances = [float(r["consensus_distance"]) for r in rows if r["consensus_distance"]]
    assert distances and all(np.isfinite(d) and d >= 0 for d in distances)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["agent_steps"] >= 60000
    assert set(summary["eval"]) == {"random", "greedy"} and summary["eval"]["random"]["games"] == 40
    before = {n: json.loads((out / "learners" / n / "state.json").read_text()) for n in ("L0", "L1")}
    adam_steps = torch.load(out / "learners" / "L0" / "optimizer.pt", weights_only=True)["state"][0]["step"]
    assert all(s["updates"] > 0 for s in before.values())

    # the policy plays with arena run
    p = run_cli("run", "connect4", "--agents", f"ckpt:{out / 'policy'},random", "--matches", "32", "--games", "32",
                "--json", "--no-progress")
    assert p.returncode == 0, p.stderr[-2000:]

    # a second run into the same directory must say --resume
    again = run_cli("train", "connect4", "--learners", "2", "--steps", "1000", "--out", str(out), *SMALL)
    assert again.returncode == 1 and "--resume" in again.stderr

    # --resume goes on from the counters, weights and optimizer state
    r2 = run_cli("train", "connect4", "--learners", "2", "--steps", "120000", "--out", str(out), "--every", "1",
                 "--eval-games", "0", "--resume", *SMALL)
    assert r2.returncode == 0, r2.stderr[-3000:]
    assert "resumed from" in r2.stderr
    after = {n: json.loads((out / "learners" / n / "state.json").read_text()) for n in ("L0", "L1")}
    for n in ("L0", "L1"):
        assert after[n]["version"] > before[n]["version"]
        assert after[n]["agent_steps"] > before[n]["agent_steps"]
    adam_after = torch.load(out / "learners" / "L0" / "optimizer.pt", weights_only=True)["state"][0]["step"]
    assert adam_after > adam_steps                   # Adam's moments went on, not restarted
    rows2 = list(csv.DictReader(open(out / "curves.csv")))
    assert len(rows2) > len(rows)                     # appended, not overwritten


def test_arena_train_refuses_bad_settings(tmp_path):
    r = run_cli("train", "connect4", "--set", "no_such_field=1", "--out", str(tmp_path / "x"))
    assert r.returncode == 2 and "no_such_field" in r.stderr
    r = run_cli("train", "nosuch", "--out", str(tmp_path / "x"))
    assert r.returncode == 2 and "unknown arena" in r.stderr
    r = run_cli("train", "connect4", "--resume", "--out", str(tmp_path / "empty"))
    assert r.returncode == 1 and "holds no run" in r.stderr


# -- faults, with real learner and worker processes -------------------------------------------------
class LearnerProc:
    """``arena learner`` as a child process, its stderr read in the background."""

    def __init__(self, tmp_path, name, config, seed, peers, workers=1, resume=False, extra=()):
        self.name, self.pub = name, f"ipc://{tmp_path}/{name}.pub"
        self.bind = f"ipc://{tmp_path}/{name}.gossip"
        args = ["learner", "connect4", "--name", name, "--config", str(config), "--seed", str(seed),
                "--out", str(tmp_path / name), "--workers", str(workers), "--bind", self.bind, "--pub", self.pub,
                "--gossip-timeout", "1", "--save-every", "1", *extra]
        if peers:
            args += ["--peers", ",".join(f"{k}={v}" for k, v in peers.items())]
        if resume:
            args.append("--resume")
        self.proc = subprocess.Popen(cli(*args), env=ENV, cwd=ROOT, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.proc.stderr:
            self.lines.append(line)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def wait_for(watcher, cond, seconds=90, what="condition"):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        watcher.poll(0.25)
        if cond():
            return
    raise AssertionError(f"timed out waiting for {what}; stats: {watcher.stats}")


@pytest.fixture
def procs():
    started: list[LearnerProc] = []
    yield started
    for p in started:
        p.stop()


def version(w, name):
    return w.stats.get(name, {}).get("version", -1)


def test_a_learner_killed_mid_training_then_restarted_rejoins(tmp_path, procs):
    # different initial nets, so the consensus distance starts far from 0 and gossip must close it
    _, c0 = small_config(tmp_path, net_seed=1)
    _, c1 = small_config(tmp_path, net_seed=2)
    ends = {n: f"ipc://{tmp_path}/{n}.gossip" for n in ("L0", "L1")}
    l0 = LearnerProc(tmp_path, "L0", c0, 10, {"L1": ends["L1"]})
    l1 = LearnerProc(tmp_path, "L1", c1, 11, {"L0": ends["L0"]})
    procs += [l0, l1]
    w = Watcher({"L0": l0.pub, "L1": l1.pub})
    try:
        wait_for(w, lambda: len(w.params) == 2, what="both learners' parameters")
        start_distance = w.consensus()
        wait_for(w, lambda: version(w, "L0") >= 5 and version(w, "L1") >= 5
                 and w.stats["L0"]["gossip_exchanges"] + w.stats["L0"]["gossip_served"] >= 4,
                 what="training with gossip")
        wait_for(w, lambda: w.consensus() < 0.2 * start_distance, what="consensus")

        # SIGKILL while exchanges go on every update: L0 trains on, its parameters finite
        l1.proc.send_signal(signal.SIGKILL)
        l1.proc.wait()
        v_kill, t_kill = version(w, "L0"), w.stats["L0"]["gossip_timeouts"]
        wait_for(w, lambda: version(w, "L0") >= v_kill + 10 and w.stats["L0"]["gossip_timeouts"] > t_kill,
                 what="L0 training on with a dead peer")
        assert np.isfinite(w.params["L0"]).all()
        assert l0.proc.poll() is None

        # restarted from its checkpoint, L1 rejoins: exchanges succeed again and consensus returns
        saved = json.loads((tmp_path / "L1" / "state.json").read_text())
        l1b = LearnerProc(tmp_path, "L1", c1, 11, {"L0": ends["L0"]}, resume=True)
        procs.append(l1b)
        w.forget("L1")
        wait_for(w, lambda: "L1" in w.stats, what="the restarted L1")
        assert version(w, "L1") >= saved["version"]
        ex = w.stats["L0"]["gossip_exchanges"] + w.stats["L0"]["gossip_served"]
        wait_for(w, lambda: w.stats["L0"]["gossip_exchanges"] + w.stats["L0"]["gossip_served"] >= ex + 4
                 and version(w, "L1") >= saved["version"] + 5, what="exchanges with the restarted L1")
        wait_for(w, lambda: w.consensus() < 0.2 * start_distance, what="consensus after the restart")
        assert any("resumed from" in line for line in l1b.lines)
    finally:
        w.close()


def test_a_killed_rollout_worker_stops_its_trajectories_and_training_goes_on(tmp_path, procs):
    _, c0 = small_config(tmp_path)
    l0 = LearnerProc(tmp_path, "L0", c0, 10, {}, workers=2)
    procs.append(l0)
    w = Watcher({"L0": l0.pub})
    try:
        wait_for(w, lambda: version(w, "L0") >= 3 and w.stats["L0"]["workers_alive"] == 2, what="two workers")
        pids = [int(m.group(1)) for line in l0.lines if (m := re.search(r"L0\.w1 started \(pid (\d+)\)", line))]
        assert pids, l0.lines
        os.kill(pids[0], signal.SIGKILL)
        wait_for(w, lambda: w.stats["L0"]["workers_alive"] == 1, seconds=10, what="the dead worker noticed")
        v = version(w, "L0")
        wait_for(w, lambda: version(w, "L0") >= v + 5, what="training on one worker")
        assert any("L0.w1 exited with code -9" in line for line in l0.lines)
        assert l0.proc.poll() is None
    finally:
        w.close()
