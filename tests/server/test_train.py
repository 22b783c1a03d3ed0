"""Training (server.learn): the game server's segments -> learners -> gossip; arena train end to end.

The sizes are tiny (64 matches, a 32-wide net) so the tests measure behaviour, not learning; the
learning bars are measured by ``arena train`` itself (README, issue notes).
"""
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from agents import checkpoint as ckpt
from server.net.protocol import ProtocolError, decode, encode
from server.learn.config import preset
from server.learn.learner import Learner

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


# -- in one process: the segments the game server sends and what the learner does with them ----------
def recorded_segments(cfg, version: int, steps: int = 60):
    """Real segments: random play on a real game, cut by the game server's ``TrajectoryRecorder``."""
    import arenas
    from agents import make_agent
    from server.play.trajectory import TrajectoryRecorder

    game = arenas.make("connect4", num_matches=cfg.num_matches, seed=3)
    rec = TrajectoryRecorder(game, 0, cfg.horizon, 1, np.zeros(cfg.num_matches, np.int64), 1, capacity=4096)
    agent = make_agent("random", game, seed=4)
    n = game.num_matches * game.num_agents
    for _ in range(steps):
        rows = np.flatnonzero(game.active.reshape(-1))
        acts = agent.act(game.obs.reshape((n,) + game.obs_shape)[rows], game.action_mask.reshape(n, -1)[rows])
        rec.decide(rows, acts, np.full(rows.size, -np.log(7), np.float32), version)
        actions = np.zeros((game.num_matches, 2), np.int64)
        actions.reshape(-1)[rows] = acts
        game.step(actions)
        rec.observe(np.flatnonzero(game.episode_done), np.zeros(n, np.int64))
    return {k: np.array(v) for k, v in rec.arrays(0).items()}


def segments_message(arrays, decisions=1, agent_steps=2):
    from server.net.protocol import Message
    return Message("segments", sender="server", arrays=arrays,
                   meta={"learner": "L0", "decisions": decisions, "agent_steps": agent_steps, "steps": 1,
                         "opponents": ["self", "random"], "results": [1, 2, 0, 3, 0, 1]})


def test_the_servers_segments_reach_the_learners_batch_intact_and_bad_ones_are_refused(tmp_path, one_torch_thread):
    cfg, _ = small_config(tmp_path, ppo={"max_lag": 100})      # one version's segments, many updates
    learner = Learner(cfg, "L0", tmp_path / "L0", gossip_bind=f"ipc://{tmp_path}/g")
    try:
        learner.state.version = 3
        learner.publish_params()                        # version 3 is one the learner published
        arrays = recorded_segments(cfg, version=3)
        msg = decode(encode(segments_message(arrays)))
        n = learner._check_segments(msg)
        assert n == arrays["obs"].shape[0] >= 64
        updates = n // 64
        assert learner._take(msg)                      # fills the batch of 64 (each time) and updates
        assert learner.state.updates == updates and learner.state.version == 3 + updates
        assert learner.last_stats["dropped_segments"] == 0
        assert learner.batch.size == n - 64 * updates
        rest = slice(64 * updates, n)
        for key in ("obs", "mask", "actions", "logp", "rewards", "dones", "valid"):
            np.testing.assert_array_equal(getattr(learner.batch, key)[:n - 64 * updates], arrays[key][rest])
        assert learner.state.results["random"] == [3, 0, 1] and learner.state.agent_steps == 2
        # the audit re-computed some decisions under version 3 (random play: logp -log 7 is not the net's)
        assert learner.state.audited_rows > 0

        def broken(key, value):
            bad = dict(arrays)
            bad[key] = value(arrays[key])
            return decode(encode(segments_message(bad)))

        bad = [broken("obs", lambda a: a.astype(np.float32)),                 # wrong dtype
               broken("mask", lambda a: a[:, :, :-1]),                        # wrong shape
               broken("version", lambda a: np.where(a >= 0, -5, a)),          # a decision of no version
               broken("version", lambda a: a[:, :1]),                         # one version per segment
               broken("logp", lambda a: np.full_like(a, np.nan)),             # not finite
               broken("actions", lambda a: a + 7),                            # out of range
               broken("valid", lambda a: np.zeros_like(a))]                   # empty segments
        for m in bad:
            with pytest.raises(ProtocolError):
                learner._check_segments(m)
        # segments of a version this learner never published (from before a restart) are dropped as stale
        old = dict(arrays)
        old["version"] = np.where(arrays["valid"], 999, -1)
        before = learner.state.dropped_segments
        learner._take(decode(encode(segments_message(old))))
        learner._take(decode(encode(segments_message(old))))
        assert learner.state.dropped_segments > before
    finally:
        learner.close()


# -- arena train end to end --------------------------------------------------------------------------
def test_arena_train_saves_plots_evaluates_and_resumes(tmp_path):
    out = tmp_path / "run"
    r = run_cli("train", "connect4", "--learners", "2", "--steps", "60000", "--out", str(out), "--every", "1",
                "--eval-games", "40", "--save-every", "2", *SMALL)
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"arena run connect4 --agents ckpt:{out / 'policy'},greedy" in r.stdout
    for name in ("policy/checkpoint.json", "curves.csv", "curves.png", "summary.json",
                 "learners/L0/checkpoint.json", "learners/L1/checkpoint.json"):
        assert (out / name).is_file(), name
    for folder in (out / "policy", out / "learners" / "L0"):     # each checkpoint one verified unit
        names = set(ckpt.open_checkpoint(folder).manifest["files"])
        assert {"policy.safetensors", "policy.json"} <= names
    assert {"optimizer.pt", "state.json"} <= set(ckpt.open_checkpoint(out / "learners" / "L1").manifest["files"])
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = list(csv.DictReader(open(out / "curves.csv")))
    assert {r["learner"] for r in rows} == {"L0", "L1"}
    distances = [float(r["consensus_distance"]) for r in rows if r["consensus_distance"]]
    assert distances and all(np.isfinite(d) and d >= 0 for d in distances)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["agent_steps"] >= 60000
    assert set(summary["eval"]) == {"random", "greedy"} and summary["eval"]["random"]["games"] == 40
    before = {n: json.loads((ckpt.latest(out / "learners" / n) / "state.json").read_text()) for n in ("L0", "L1")}
    adam_steps = torch.load(ckpt.latest(out / "learners" / "L0") / "optimizer.pt",
                            weights_only=True)["optimizer"]["state"][0]["step"]
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
    after = {n: json.loads((ckpt.latest(out / "learners" / n) / "state.json").read_text()) for n in ("L0", "L1")}
    for n in ("L0", "L1"):
        assert after[n]["version"] > before[n]["version"]
        assert after[n]["agent_steps"] > before[n]["agent_steps"]
    adam_after = torch.load(ckpt.latest(out / "learners" / "L0") / "optimizer.pt",
                            weights_only=True)["optimizer"]["state"][0]["step"]
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
