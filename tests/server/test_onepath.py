"""One data path: training through the game server and policy workers, as real processes over real sockets.

A learner (``arena learner --segments``), a training game server (``arena serve --learner``) and policy
workers (``arena worker --learner``) by hand, as on several hosts; then ``arena train`` itself.
"""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import zmq

from server.net.protocol import ProtocolError, decode

ROOT = Path(__file__).resolve().parents[2]
ENV = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
SMALL = {"num_matches": 32, "batch_segments": 32, "horizon": 4, "hidden": 16}


def cli(*args):
    return [sys.executable, "-m", "server.cli", *args]


@pytest.fixture
def procs():
    started = []

    def start(*args, **kw):
        p = subprocess.Popen(cli(*args), env=ENV, cwd=ROOT, stdout=subprocess.DEVNULL,
                             stderr=kw.pop("stderr", subprocess.DEVNULL), start_new_session=True)
        started.append(p)
        return p
    yield start
    for p in started:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in started:
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def config(tmp_path, **kw) -> Path:
    from server.learn.config import preset

    cfg = preset("connect4", net_seed=0, **{**SMALL, **kw})
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg.to_dict()))
    return path


class Sub:
    """A SUB socket on some PUB endpoints, keeping the last message of each type per sender."""

    def __init__(self, *endpoints):
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.SUB)
        self.sock.setsockopt(zmq.SUBSCRIBE, b"")
        self.sock.setsockopt(zmq.LINGER, 0)
        for ep in endpoints:
            self.sock.connect(ep)
        self.last: dict[tuple[str, str], dict] = {}

    def poll(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            if not self.sock.poll(int(left * 1000)):
                return
            try:
                msg = decode(self.sock.recv_multipart())
            except ProtocolError:
                continue
            self.last[(msg.type, str(msg.meta.get("learner", msg.sender)))] = dict(msg.meta)

    def wait(self, what, seconds: float = 60.0):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.poll(0.2)
            got = what()
            if got:
                return got
        raise AssertionError("timed out")

    def close(self):
        self.sock.close(0)
        self.ctx.term()


def start_pieces(tmp_path, procs, workers=1, learners=("L0",), **cfg_kw):
    cfg = config(tmp_path, **cfg_kw)
    ipc = tmp_path / "ipc"
    ipc.mkdir(exist_ok=True)
    ep = {n: (f"ipc://{ipc}/{n}.seg", f"ipc://{ipc}/{n}.pub", f"ipc://{ipc}/{n}.gossip") for n in learners}
    for i, n in enumerate(learners):
        peers = ",".join(f"{m}={ep[m][2]}" for m in learners if m != n)
        procs("learner", "connect4", "--config", str(cfg), "--name", n, "--out", str(tmp_path / n),
              "--segments", ep[n][0], "--pub", ep[n][1], "--bind", ep[n][2], "--save-every", "1",
              "--seed", str(100 + i), *(["--peers", peers] if peers else []))
    server = f"ipc://{ipc}/server"
    stats = f"ipc://{ipc}/stats"
    procs("serve", "connect4", "--config", str(cfg), "--bind", server, "--stats-bind", stats, "--no-progress",
          *[a for n in learners for a in ("--learner", f"{n}={ep[n][0]},{ep[n][1]}")])
    for _ in range(workers):
        procs("worker", "--connect", server, "--agents", ",".join([*learners, "random", "greedy", "past"]),
              "--quiet", *[a for n in learners for a in ("--learner", f"{n}={ep[n][1]}")])
    return ep, stats


def test_the_workers_version_follows_the_learners_within_a_second(tmp_path, procs):
    ep, stats = start_pieces(tmp_path, procs)
    sub = Sub(ep["L0"][1], stats)
    try:
        sub.wait(lambda: sub.last.get(("stats", "L0"), {}).get("version", 0) >= 3, 120)
        lags = []
        for _ in range(5):
            v = sub.last[("stats", "L0")]["version"]
            t0 = time.monotonic()
            sub.wait(lambda: (sub.last.get(("stats", "server"), {}).get("version.L0", -1) >= v), 10)
            lags.append(time.monotonic() - t0)
            sub.poll(0.5)
        # the server's stats are published once a second: a version seen there was in use within that second
        assert min(lags) <= 2.0, lags
        s = sub.last[("stats", "server")]
        assert s["segments_sent"] > 0 and s.get("unrecorded_replies", 0) == 0
    finally:
        sub.close()


def test_a_worker_killed_mid_training_leaves_no_row_with_a_wrong_version(tmp_path, procs):
    ep, stats = start_pieces(tmp_path, procs, workers=2)
    sub = Sub(ep["L0"][1], stats)
    try:
        sub.wait(lambda: sub.last.get(("stats", "L0"), {}).get("version", 0) >= 2, 120)
        worker_pids = [p for p in _children_named("worker")]
        assert worker_pids, "no worker process found"
        os.kill(worker_pids[0], signal.SIGKILL)
        v = sub.last[("stats", "L0")]["version"]
        sub.wait(lambda: sub.last.get(("stats", "L0"), {}).get("version", 0) >= v + 3, 120)
        sub.wait(lambda: sub.last.get(("stats", "server"), {}).get("workers_lost", 0) >= 1, 30)
        learner = sub.last[("stats", "L0")]
        # every row's behaviour log-probability is re-computed by the learner under the version the row
        # names (a sample per message): a row stitched from two replies would not match
        assert learner["audited_rows"] > 0
        assert learner["mismatched_rows"] == 0
        assert learner["bad_messages"] == 0
    finally:
        sub.close()


def _children_named(word: str) -> list[int]:
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmd = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")
        except OSError:
            continue
        if b"server.cli" in cmd and word.encode() in cmd:
            out.append(int(pid))
    return out


def test_a_killed_learner_returns_with_resume_and_training_goes_on(tmp_path, procs):
    ep, stats = start_pieces(tmp_path, procs, learners=("L0", "L1"))
    sub = Sub(ep["L0"][1], ep["L1"][1], stats)
    try:
        sub.wait(lambda: all(sub.last.get(("stats", n), {}).get("version", 0) >= 2 for n in ("L0", "L1")), 120)
        time.sleep(1.5)                                    # a checkpoint of L1 (every second)
        l1 = [p for p in _children_named("learner") if _cmd_has(p, "L1")]
        assert l1
        os.kill(l1[0], signal.SIGKILL)
        v0 = sub.last[("stats", "L0")]["version"]
        sub.wait(lambda: sub.last.get(("stats", "L0"), {}).get("version", 0) >= v0 + 3, 120)   # L0 goes on
        saved = json.loads((tmp_path / "L1" / "state.json").read_text())["version"] \
            if (tmp_path / "L1" / "state.json").is_file() else None
        cfg = tmp_path / "config.json"
        procs("learner", "connect4", "--config", str(cfg), "--name", "L1", "--out", str(tmp_path / "L1"),
              "--segments", ep["L1"][0], "--pub", ep["L1"][1], "--bind", ep["L1"][2], "--save-every", "1",
              "--seed", "101", "--peers", f"L0={ep['L0'][2]}", "--resume")
        sub.last.pop(("stats", "L1"), None)
        back = sub.wait(lambda: sub.last.get(("stats", "L1")), 60)
        if saved is not None:
            assert back["version"] >= saved                   # its version never goes back
        vb = back["version"]
        sub.wait(lambda: sub.last.get(("stats", "L1"), {}).get("version", 0) >= vb + 2, 120)   # and it trains
    finally:
        sub.close()


def _cmd_has(pid: int, word: str) -> bool:
    try:
        return word.encode() in open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")
    except OSError:
        return False


def test_arena_watch_attaches_to_arena_train(tmp_path):
    """The training matches are the game server's: a spectator client gets the hello and frames."""
    import re

    from server.spectator.watch import WatchClient

    p = subprocess.Popen(cli("train", "connect4", "--learners", "1", "--minutes", "2", "--out", str(tmp_path / "run"),
                             "--eval-games", "0", "--every", "30", *[a for k, v in SMALL.items()
                                                                     for a in ("--set", f"{k}={v}")]),
                         env=ENV, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         start_new_session=True)
    try:
        endpoint = None
        deadline = time.monotonic() + 60
        while endpoint is None and time.monotonic() < deadline:
            line = p.stdout.readline()
            m = re.search(r"arena watch --connect (\S+)", line)
            endpoint = m.group(1) if m else None
        assert endpoint, "arena train printed no spectator endpoint"
        client = WatchClient(endpoint)
        frames = 0
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (client.hello and frames > 10):
            if client.hello and frames == 0:
                client.select(*client.locate(1))
            frames += sum(len(f) for _, f in client.receive(50))
        client.close()
        assert client.hello["arena"] == "connect4" and "L0" in client.hello["agents"]
        assert frames > 10
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=120)
