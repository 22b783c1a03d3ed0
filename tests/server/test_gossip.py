"""Gossip between learner processes over real sockets on loopback: consensus, bytes per round, faults.

Each learner is a process of its own (``gossip_peer.py``: a ``GossipNode`` over a random vector, no
training) that the test drives line by line. A round: every learner starts one exchange with a random
live peer, and the round ends when all have their answer (a responder applies its average before it
answers, so every average of the round is in place by then).
"""
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from server.learn.gossip import GossipNode, VectorParams, consensus_distance

HERE = Path(__file__).resolve().parent
PEER = HERE / "gossip_peer.py"
SIZE = 10_000


class Learner:
    def __init__(self, name: str, seed: int, *extra: str, bind: str = "tcp://127.0.0.1:*"):
        self.name = name
        self.proc = subprocess.Popen([sys.executable, str(PEER), name, str(SIZE), str(seed), "--bind", bind, *extra],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        word, self.endpoint = self.readline().split()
        assert word == "endpoint"

    def send(self, line: str) -> None:
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def readline(self) -> str:
        line = self.proc.stdout.readline()
        assert line, f"learner {self.name} exited (status {self.proc.poll()})"
        return line.strip()

    def ask(self, line: str) -> str:
        self.send(line)
        return self.readline()

    def params(self, tmp_path: Path) -> np.ndarray:
        path = tmp_path / f"{self.name}.npy"
        assert self.ask(f"dump {path}") == "dumped"
        return np.load(path)

    def stats(self) -> dict:
        import json
        return json.loads(self.ask("stats"))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)
        for f in (self.proc.stdin, self.proc.stdout):
            try:
                f.close()
            except OSError:
                pass


def start(k: int, *extra: str) -> list[Learner]:
    learners = [Learner(f"L{i}", i, *extra) for i in range(k)]
    peers = " ".join(f"{l.name}={l.endpoint}" for l in learners)
    for l in learners:
        assert l.ask(f"peers {peers}") == "ok"
    return learners


def run_round(learners: list[Learner]) -> list[str]:
    for l in learners:
        l.send("x")
    return [l.readline() for l in learners]


@pytest.fixture
def cleanup():
    started: list[Learner] = []
    yield started
    for l in started:
        l.stop()


def test_four_learners_reach_consensus_geometrically(tmp_path, cleanup):
    learners = start(4)
    cleanup.extend(learners)
    initial = np.stack([l.params(tmp_path) for l in learners])
    dist = [consensus_distance(list(initial))]
    for _ in range(50):
        replies = run_round(learners)
        assert all(r.startswith("done 1 ") for r in replies), replies
        vecs = [l.params(tmp_path) for l in learners]
        assert all(np.isfinite(v).all() for v in vecs)
        dist.append(consensus_distance(vecs))
        if dist[-1] <= 1e-6 * dist[0]:
            break
    ratio = np.array(dist) / dist[0]
    assert ratio[-1] <= 1e-6, f"after {len(dist) - 1} rounds the distance is {ratio[-1]:.2e} of its start"
    # geometric: every 5 rounds take off at least a factor 4 (pairwise averaging of 4 learners, one
    # exchange each per round, averages ~0.45 per round, i.e. ~0.02 per 5 rounds)
    for r in range(0, len(ratio) - 5):
        assert ratio[r + 5] <= ratio[r] / 4, f"rounds {r}..{r + 5}: {ratio[r]:.2e} -> {ratio[r + 5]:.2e}"
    # every average is a convex combination: the agreed point lies within the starting values
    final = np.mean([l.params(tmp_path) for l in learners], axis=0)
    assert (final >= initial.min(axis=0) - 1e-6).all() and (final <= initial.max(axis=0) + 1e-6).all()
    print(f"consensus distance / start by round: {' '.join(f'{r:.1e}' for r in ratio)}")


def test_bytes_per_round_do_not_grow_with_the_number_of_learners(cleanup):
    per_learner = {}
    rounds = 6
    for k in (2, 4, 8):
        learners = start(k)
        cleanup.extend(learners)
        before = sum(l.stats()["bytes_sent"] for l in learners)
        for _ in range(rounds):
            replies = run_round(learners)
            assert all(r.startswith("done 1 ") for r in replies), replies
        sent = sum(l.stats()["bytes_sent"] for l in learners) - before
        per_learner[k] = sent / (k * rounds)
        for l in learners:
            l.stop()
    vector = 4 * SIZE
    print(f"bytes sent per learner per round ({SIZE} float32 parameters = {vector} bytes): "
          + ", ".join(f"K={k}: {b:.0f}" for k, b in per_learner.items()))
    # each exchange sends one vector each way: two vectors (plus headers) per learner per round
    for k, b in per_learner.items():
        assert 2 * vector <= b <= 2 * vector + 2 * 1024, (k, b)
    assert max(per_learner.values()) <= 1.01 * min(per_learner.values()), per_learner


def test_a_learner_killed_mid_exchange_leaves_its_peer_unchanged(tmp_path, cleanup):
    learners = start(3, "--timeout", "1.0", "--retry-after", "0.5")
    cleanup.extend(learners)
    a, b, c = learners
    assert b.ask("stall") == "ok"
    before = a.params(tmp_path)
    a.send(f"x {b.name}")                       # A offers its parameters to B ...
    assert b.readline() == "stalled"            # ... B holds the whole request and hangs
    os.kill(b.proc.pid, signal.SIGKILL)         # killed in the middle of the exchange
    b.proc.wait(timeout=10)
    assert a.readline() == f"done 0 {b.name} timeout"
    after = a.params(tmp_path)
    assert np.isfinite(after).all()
    assert np.array_equal(after, before)        # bit for bit: nothing was applied
    # training goes on: the next exchanges skip the dead learner and succeed with the live one
    for _ in range(3):
        assert a.ask("x") == f"done 1 {c.name} -"
    assert not np.array_equal(a.params(tmp_path), before)
    # a learner that restarts on its endpoint rejoins
    b2 = Learner(b.name, 7, "--timeout", "1.0", bind=b.endpoint)
    cleanup.append(b2)
    assert b2.ask(f"peers {a.name}={a.endpoint} {c.name}={c.endpoint}") == "ok"
    assert a.ask(f"x {b.name}") == f"done 1 {b.name} -"


def test_bad_requests_are_refused_and_never_applied():
    """A request with NaN, the wrong size or the wrong layout gets an ``error`` answer; the responder's
    parameters stay as they were. A good one is answered with the old parameters, then averaged."""
    import zmq

    from server.net.protocol import Message, decode, encode

    pb = VectorParams(np.ones(8, np.float32))
    node = GossipNode("b", "tcp://127.0.0.1:*", pb).start()
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVTIMEO, 5000)
    sock.connect(node.endpoint)

    def offer(vec, seq, **meta):
        m = {"learner": "t", "version": 3, "size": 8, "layout": node.layout}
        m.update(meta)
        sock.send_multipart(encode(Message("params", seq=seq, sender="t", policy_version=3,
                                           arrays={"params": vec}, meta=m)))
        return decode(sock.recv_multipart())

    try:
        bad = np.zeros(8, np.float32)
        bad[3] = np.nan
        for seq, (vec, meta) in enumerate([(bad, {}), (np.zeros(9, np.float32), {"size": 9}),
                                           (np.zeros(8, np.float32), {"layout": 1}),
                                           (np.zeros(8, np.float64), {})]):
            reply = offer(vec, seq, **meta)
            assert reply.type == "error" and reply.seq == seq, reply
            assert np.array_equal(pb.get(), np.ones(8, np.float32))
        reply = offer(np.full(8, 3.0, np.float32), 9)
        assert reply.type == "params_ack" and reply.seq == 9 and reply.meta["learner"] == "b"
        assert np.array_equal(reply.arrays["params"], np.ones(8, np.float32))    # its parameters before
        assert np.array_equal(pb.get(), np.full(8, 2.0, np.float32))              # the average, applied
        assert node.stats.bad_messages == 4 and node.stats.served == 1
        assert node.stats.peer_versions == {"t": 3}
    finally:
        sock.close()
        ctx.term()
        node.close()
