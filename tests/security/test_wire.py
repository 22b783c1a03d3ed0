"""Bad messages are only ``ProtocolError``: hostile bytes against the real sockets of real processes.

Attacks, each against a live process, each asserting what the user would check afterwards:
- the ~70-byte message whose shape fields wrap to 0 in int64 (``[2**32, 2**32]``, empty data frame),
  which killed ``arena serve`` and a learner's gossip thread with a plain ``ValueError``;
- eight 200 MB frames in one message, which drove the server to 1.9 GB before it was rejected;
- a message of more frames than the protocol's two, random garbage;
- 2,000 idle TCP connections while a real worker plays.
Afterwards the process is alive, counted the bad messages in its statistics, and still serves.
"""
import json
import os
import resource
import socket
import subprocess
import sys
import time
from pathlib import Path

import msgpack
import numpy as np
import pytest
import zmq

from server.net.protocol import MAGIC, VERSION, Message, decode, encode

ROOT = Path(__file__).resolve().parents[2]
ENV = dict(os.environ, PYTHONPATH=str(ROOT))
PEER = ROOT / "tests" / "server" / "gossip_peer.py"
SLOW = f"{ROOT / 'tests' / 'server' / 'slow_random.py'}:SlowRandom"


def cli(*args):
    return [sys.executable, "-m", "server.cli", *args]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wrapped_shape_message(mtype: str = "actions") -> list[bytes]:
    """The ~70-byte message of the issue: 2**32 * 2**32 == 0 in int64, and an empty data frame."""
    header = msgpack.packb({"magic": MAGIC, "v": VERSION, "type": mtype, "seq": 1, "from": "x", "pv": 0,
                            "meta": {}, "arrays": [["params" if mtype == "params" else "actions", "uint8",
                                                    [2**32, 2**32], 0]]})
    return [header, b""]


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def start_serve(*extra, agents="random,random", steps=40, matches=16, preexec_fn=None):
    port = free_port()
    bind, stats = f"tcp://127.0.0.1:{port}", f"tcp://127.0.0.1:{free_port()}"
    proc = subprocess.Popen(cli("serve", "connect4", "--bind", bind, "--stats-bind", stats, "--matches", str(matches),
                                "--agents", agents, "--steps", str(steps), "--json", "--no-progress", *extra),
                            env=ENV, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=preexec_fn)
    return proc, bind, stats


def wait_stats(stats_endpoint: str, until, seconds: float = 30) -> dict:
    """The server's statistics (its PUB socket, once a second) once ``until(meta)`` holds."""
    sub = zmq.Context.instance().socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.connect(stats_endpoint)
    deadline = time.monotonic() + seconds
    meta = {}
    try:
        while time.monotonic() < deadline:
            if sub.poll(500):
                meta = decode(sub.recv_multipart()).meta
                if until(meta):
                    return meta
    finally:
        sub.close(0)
    raise AssertionError(f"the server's statistics never showed what was expected: {meta}")


def start_worker(bind: str, *extra):
    return subprocess.Popen(cli("worker", "--connect", bind, "--exit-when-done", "--quiet", *extra), env=ENV,
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def finish(proc, timeout=120) -> dict:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


def test_hostile_messages_leave_arena_serve_alive_counting_them_and_serving(tmp_path):
    proc, bind, stats = start_serve()
    try:
        wait_stats(stats, lambda m: True)                        # bound and publishing
        before = peak_rss_mb(proc.pid)
        ctx = zmq.Context.instance()
        evil = ctx.socket(zmq.DEALER)
        evil.setsockopt(zmq.LINGER, 0)
        evil.connect(bind)
        wrapped = wrapped_shape_message()
        assert sum(len(f) for f in wrapped) < 100
        evil.send_multipart(wrapped)                             # 1: killed the server before
        evil.send_multipart([encode(Message("bye"))[0], b"\0" * 64, b"\0" * 64])   # 2: three frames
        for junk in (b"\x00garbage", b"\xc1" * 100, bytes(range(256))):            # 3-5: garbage
            evil.send_multipart([junk])
        wait_stats(stats, lambda m: m.get("bad_messages") == 5)
        # eight 200 MB frames in one message: the socket's cap (the biggest reply a worker may owe)
        # disconnects the sender at the first frame's size, before anything is allocated
        huge = memoryview(np.zeros(200 * 2**20, np.uint8))
        flood = ctx.socket(zmq.DEALER)
        flood.setsockopt(zmq.LINGER, 0)
        flood.connect(bind)
        flood.send_multipart([huge] * 8, copy=False)
        time.sleep(2.0)
        assert proc.poll() is None, "the server died"
        grown = peak_rss_mb(proc.pid) - before
        assert grown < 100, f"the server's peak memory grew by {grown:.0f} MB"
        evil.send_multipart(wrapped)                             # still counting, still alive
        wait_stats(stats, lambda m: m.get("bad_messages") == 6)
        w = start_worker(bind)
        summary = finish(proc)
        w.wait(timeout=30)
        assert summary["steps"] == 40, "a valid worker was served to the end"
        assert summary["server"]["bad_messages"] == 6
        evil.close(0)
        flood.close(0)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_thousands_of_idle_connections_leave_the_server_serving_its_worker():
    """2,000 raw TCP connections that never say a word, opened while a real worker plays, against a
    server started with the usual soft limit of 1,024 open files: the run completes."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < 2200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(4096, hard), hard))   # this test's own sockets
    if hard != resource.RLIM_INFINITY and hard < 4096:
        pytest.skip(f"the hard limit on open files ({hard}) is too low to open 2,000 connections here")

    def low_soft_limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard))

    # an agent that takes 30 ms per call: 600 steps last many seconds (one match group on 2 cores), so the
    # connections arrive mid-run
    proc, bind, stats = start_serve(agents=f"{SLOW},random", steps=600, matches=16, preexec_fn=low_soft_limit)
    conns = []
    try:
        w = start_worker(bind, "--agents", f"{SLOW},random", "--trust", "--agent-arg", "SlowRandom.delay=0.03")
        wait_stats(stats, lambda m: m.get("workers", 0) >= 1 and m.get("agent_steps", 0) > 0)
        host, port = bind[len("tcp://"):].rsplit(":", 1)
        for _ in range(2000):
            s = socket.socket()
            s.settimeout(5)
            s.connect((host, int(port)))
            conns.append(s)
        assert proc.poll() is None, "the run ended before the connections were open: make it longer"
        summary = finish(proc, timeout=180)
        assert summary["steps"] == 600 and summary["server"]["workers"] >= 1
        assert w.wait(timeout=30) == 0
    finally:
        for s in conns:
            s.close()
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


class GossipPeer:
    """A learner's gossip node in a process of its own (``tests/server/gossip_peer.py``)."""

    def __init__(self, name: str, seed: int):
        self.proc = subprocess.Popen([sys.executable, str(PEER), name, "1000", str(seed)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, bufsize=1, env=ENV)
        word, self.endpoint = self.proc.stdout.readline().split()
        assert word == "endpoint"
        self.name = name

    def ask(self, line: str) -> str:
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        out = self.proc.stdout.readline()
        assert out, f"gossip peer {self.name} exited ({self.proc.poll()})"
        return out.strip()

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=10)


def test_hostile_messages_never_kill_a_learners_gossip_thread():
    a, b = GossipPeer("L0", 0), GossipPeer("L1", 1)
    try:
        peers = f"L0={a.endpoint} L1={b.endpoint}"
        assert a.ask(f"peers {peers}") == "ok" and b.ask(f"peers {peers}") == "ok"
        evil = zmq.Context.instance().socket(zmq.DEALER)
        evil.setsockopt(zmq.LINGER, 0)
        evil.connect(a.endpoint)
        evil.send_multipart(wrapped_shape_message("params"))    # killed the gossip thread before
        evil.send_multipart([b"\xc1garbage"])
        evil.send_multipart(encode(Message("params", meta={"learner": "x", "version": 1, "size": 1000},
                                           arrays={"params": np.zeros(1000, np.float32)})) + [b"x"])
        replies = [decode(evil.recv_multipart()) for _ in range(3) if evil.poll(5000)]
        assert [r.type for r in replies] == ["error"] * 3, "each bad request is answered with an error"
        assert json.loads(a.ask("stats"))["bad_messages"] == 3
        assert b.ask("x L0").startswith("done 1 L0"), "L0's gossip thread still serves its peers"
        assert a.ask("x L1").startswith("done 1 L1"), "and still starts exchanges of its own"
        evil.close(0)
    finally:
        a.stop()
        b.stop()
