"""The game server and policy workers as real processes over real sockets, and their faults."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import msgpack
import zmq
import zmq.auth

from server.net.protocol import MAGIC, VERSION, Message, decode, encode

ROOT = Path(__file__).resolve().parents[2]
SLOW = f"{Path(__file__).resolve().parent / 'slow_random.py'}:SlowRandom"
ENV = dict(os.environ, PYTHONPATH=str(ROOT))


def cli(*args):
    return [sys.executable, "-m", "server.cli", *args]


def start_server(tmp_path, *extra, matches=24, steps=60, agents=f"{SLOW},{SLOW}"):
    bind = f"ipc://{tmp_path}/server"
    out = tmp_path / "outcomes.json"
    proc = subprocess.Popen(cli("serve", "connect4", "--bind", bind, "--matches", str(matches), "--agents", agents,
                                "--steps", str(steps), "--seed", "7", "--json", "--no-progress",
                                "--outcomes", str(out), *extra),
                            env=ENV, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return proc, bind, out


def start_worker(bind, *extra, slow=True):
    """A worker; with ``slow`` it serves the test's file agent, named on its command line (a server
    never makes a worker load code) and trusted (in-process: its ``reseed`` keeps re-sent batches
    reproducible)."""
    agents = ("--agents", f"{SLOW},random,greedy", "--trust") if slow else ()
    return subprocess.Popen(cli("worker", "--connect", bind, "--exit-when-done", *agents, *extra), env=ENV,
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def wait_serving(*workers):
    """Until each worker says it serves (its first log line; it loads its agents first)."""
    for w in workers:
        line = w.stderr.readline()
        assert "serving" in line, line


def finish(proc, timeout=120):
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1]), err


def wait_ready(bind_dir, seconds=30):
    """Until the server has made its socket (it binds before it plays)."""
    deadline = time.monotonic() + seconds
    while not (Path(bind_dir) / "server").exists():
        assert time.monotonic() < deadline, "server never bound its socket"
        time.sleep(0.05)


def undisturbed(tmp_path, **kw):
    d = tmp_path / "ref"
    d.mkdir()
    proc, bind, out = start_server(d, **kw)
    wait_ready(d)
    w = start_worker(bind)
    summary, _ = finish(proc)
    w.wait(timeout=30)
    return summary, json.loads(out.read_text())


def test_launch_plays_like_run(tmp_path):
    p = subprocess.run(cli("launch", "connect4", "--matches", "64", "--agents", "greedy,random", "--workers", "2",
                           "--json", "--no-progress"), env=ENV, cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert p.returncode == 0, p.stderr
    s = json.loads(p.stdout.strip().splitlines()[-1])
    assert s["matches"] == 64 and s["results"]["greedy"]["games"] == 64
    assert s["results"]["greedy"]["wins"] > 50
    assert s["server"]["bad_messages"] == 0 and s["server"]["workers"] >= 1 and s["workers"] == 2


def test_a_killed_worker_is_noticed_and_its_batch_resent(tmp_path):
    ref, ref_out = undisturbed(tmp_path)
    proc, bind, out = start_server(tmp_path)
    wait_ready(tmp_path)
    a, b = start_worker(bind), start_worker(bind)
    wait_serving(a, b)
    time.sleep(1.0)                      # both serving, batches in flight (each act sleeps 20 ms)
    a.send_signal(signal.SIGKILL)
    summary, err = finish(proc)
    b.wait(timeout=30)
    assert "lost (silent for" in err, err
    import re
    silent = [float(x) for x in re.findall(r"lost \(silent for ([0-9.]+) s\)", err)]
    assert min(silent) < 10, f"the heartbeat should notice a dead worker after about a second: {silent}"
    # at least the killed one (on a loaded machine a stalled live worker may also be given up on and
    # welcomed back; that costs time, never correctness)
    assert summary["server"]["workers_lost"] >= 1 and summary["server"]["resent"] >= 1
    got = json.loads(out.read_text())
    assert got["step_counts"] == ref_out["step_counts"], "a match was stepped twice or lost"
    assert got["outcomes"] == ref_out["outcomes"] and summary["results"] == ref["results"]


def test_a_stopped_worker_is_replaced_and_its_late_replies_dropped(tmp_path):
    ref, ref_out = undisturbed(tmp_path)
    proc, bind, out = start_server(tmp_path, steps=90)
    wait_ready(tmp_path)
    a, b = start_worker(bind), start_worker(bind)
    wait_serving(a, b)
    time.sleep(1.0)
    a.send_signal(signal.SIGSTOP)
    time.sleep(2.5)                      # well past the 1 s liveness: the server gave up on it
    a.send_signal(signal.SIGCONT)        # it wakes up and answers what it held: too late
    summary, err = finish(proc)
    a.wait(timeout=30)
    b.wait(timeout=30)
    assert summary["server"]["workers_lost"] >= 1 and summary["server"]["late_replies"] >= 1, summary["server"]
    assert "is back" in err
    got = json.loads(out.read_text())
    ref2_dir = tmp_path / "ref90"
    ref2_dir.mkdir()
    p2, bind2, out2 = start_server(ref2_dir, steps=90)
    wait_ready(ref2_dir)
    w2 = start_worker(bind2)
    ref2, _ = finish(p2)
    w2.wait(timeout=30)
    assert got == json.loads(out2.read_text()) and summary["results"] == ref2["results"]


def test_bad_messages_are_rejected_counted_and_a_valid_client_still_served(tmp_path):
    proc, bind, out = start_server(tmp_path, agents="random,random", steps=20)
    wait_ready(tmp_path)
    ctx = zmq.Context.instance()
    evil = ctx.socket(zmq.DEALER)
    evil.setsockopt(zmq.LINGER, 0)
    evil.connect(bind)
    good_header = msgpack.packb({"magic": MAGIC, "v": VERSION, "type": "actions", "seq": 1, "from": "x",
                                 "pv": 0, "meta": {}, "arrays": [["actions", "int64", [4], 0]]})
    bad = [
        [b"\x00garbage"],                                                       # not msgpack
        [msgpack.packb({"magic": MAGIC, "v": VERSION + 9, "type": "hello"})],    # wrong version
        [good_header, b"\x00" * 7],                                             # truncated frame
        [good_header],                                                          # missing frame
        [msgpack.packb({"magic": MAGIC, "v": VERSION, "type": "act", "seq": 1, "from": "x", "pv": 0,
                        "meta": {}, "arrays": [["o", "object", [1], 0]]}), b"\x00" * 8],   # object dtype
        [b"\x00" * (70 * 1024)],                                                # oversized header
        [good_header, b"\x00" * 32, b"\x00" * 32],                               # a third frame
    ]
    for _ in range(50):
        for frames in bad:
            evil.send_multipart(frames)
    # the statistics go out on the PUB socket once a second, as protocol messages, and count the bad ones
    stats = ctx.socket(zmq.SUB)
    stats.connect(bind + ".stats")
    stats.setsockopt(zmq.SUBSCRIBE, b"")
    seen = 0
    deadline = time.monotonic() + 10
    while seen < 50 * len(bad) and time.monotonic() < deadline:
        if stats.poll(1500):
            msg = decode(stats.recv_multipart())
            assert msg.type == "stats" and "agent_steps_per_s" in msg.meta
            seen = msg.meta["bad_messages"]
    assert seen == 50 * len(bad)
    w = start_worker(bind, slow=False)
    summary, _ = finish(proc)
    w.wait(timeout=30)
    assert summary["server"]["bad_messages"] == 50 * len(bad)
    assert summary["steps"] == 20, "the valid worker was served to the end"
    evil.close(0)
    stats.close(0)


def test_without_the_right_curve_key_a_client_gets_nothing(tmp_path):
    keys = tmp_path / "keys"
    assert subprocess.run(cli("keys", str(keys)), env=ENV, cwd=ROOT, capture_output=True).returncode == 0
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    bind = f"tcp://127.0.0.1:{port}"
    proc = subprocess.Popen(cli("serve", "connect4", "--bind", bind, "--stats-bind", f"ipc://{tmp_path}/st",
                                "--keys", str(keys), "--matches", "8", "--agents", "random,random", "--steps", "5",
                                "--json", "--no-progress"), env=ENV, cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    time.sleep(3)
    ctx = zmq.Context.instance()
    intruder = ctx.socket(zmq.DEALER)                      # no CURVE at all
    intruder.setsockopt(zmq.LINGER, 0)
    intruder.connect(bind)
    intruder.send_multipart(encode(Message("hello", meta={"role": "worker", "agents": ["*"]})))
    impostor = ctx.socket(zmq.DEALER)                      # CURVE, but a key the server does not know
    impostor.setsockopt(zmq.LINGER, 0)
    pub, sec = zmq.curve_keypair()
    impostor.curve_publickey, impostor.curve_secretkey = pub, sec
    impostor.curve_serverkey = zmq.auth.load_certificate(str(keys / "server.key"))[0]
    impostor.connect(bind)
    impostor.send_multipart(encode(Message("hello", meta={"role": "worker", "agents": ["*"]})))
    assert not intruder.poll(2000) and not impostor.poll(500), "an unauthenticated client received something"
    w = start_worker(bind, "--keys", str(keys))
    summary, _ = finish(proc)
    w.wait(timeout=30)
    assert summary["steps"] == 5
    intruder.close(0)
    impostor.close(0)


def test_binding_beyond_loopback_needs_keys():
    p = subprocess.run(cli("serve", "connect4", "--bind", "tcp://0.0.0.0:5999"), env=ENV, cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "needs CURVE keys" in p.stderr and "Traceback" not in p.stderr


def test_one_worker_serves_two_servers(tmp_path):
    a_dir, b_dir = tmp_path / "a", tmp_path / "b"
    a_dir.mkdir()
    b_dir.mkdir()
    pa, bind_a, _ = start_server(a_dir, agents="greedy,random", steps=15)
    pb = subprocess.Popen(cli("serve", "battle", "--bind", f"ipc://{b_dir}/server", "--matches", "8", "--agents",
                              "greedy,random", "--steps", "15", "-o", "map_size=12", "-o", "team_size=2", "--json",
                              "--no-progress"), env=ENV, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True)
    wait_ready(a_dir)
    wait_ready(b_dir)
    w = start_worker(bind_a, "--connect", f"ipc://{b_dir}/server", slow=False)   # built-ins: no --agents needed
    sa, _ = finish(pa)
    sb, _ = finish(pb)
    assert w.wait(timeout=30) == 0, "the worker leaves once both servers said bye"
    assert sa["arena"] == "connect4" and sa["steps"] == 15
    assert sb["arena"] == "battle" and sb["steps"] == 15


LAUNCH_TAG = f"server.cli worker --connect ipc://{__import__('tempfile').gettempdir()}/arena-launch-"


def _workers_of(tag: str) -> list[str]:
    p = subprocess.run(["pgrep", "-f", tag], capture_output=True, text=True)
    return p.stdout.split()


def test_ctrl_c_stops_launch_and_its_workers_with_the_summary_so_far(tmp_path):
    # Ctrl-C's default handling, even when pytest itself was started with SIGINT ignored (a background
    # job of a non-interactive shell is): Python installs its KeyboardInterrupt handler only then
    p = subprocess.Popen(cli("launch", "connect4", "--matches", "64", "--agents", f"{SLOW},random", "--workers", "2",
                             "--games", "100000000", "--json", "--no-progress"), env=ENV, cwd=ROOT,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 60
    while len(_workers_of(LAUNCH_TAG)) < 2:
        assert time.monotonic() < deadline and p.poll() is None, "launch never started its workers"
        time.sleep(0.2)
    _wait_for_steps(p.pid, deadline + 60)
    p.send_signal(signal.SIGINT)   # what Ctrl-C sends
    out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    assert "interrupted: summary so far" in err
    s = json.loads(out.strip().splitlines()[-1])
    assert s["steps"] > 0 and s["matches"] < 100000000
    deadline = time.monotonic() + 10
    while _workers_of(LAUNCH_TAG) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _workers_of(LAUNCH_TAG), "a worker outlived launch"


def _wait_for_steps(pid: int, deadline: float) -> None:
    """Until the launched server's statistics (its ipc PUB in its run folder) show played steps."""
    import glob
    import tempfile

    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.setsockopt(zmq.LINGER, 0)
    try:
        while not (found := glob.glob(os.path.join(tempfile.gettempdir(), f"arena-launch-{pid}-*", "stats"))):
            assert time.monotonic() < deadline, "no stats endpoint of the launched server"
            time.sleep(0.1)
        sub.connect(f"ipc://{found[0]}")
        while time.monotonic() < deadline:
            if sub.poll(500):
                meta = decode(sub.recv_multipart()).meta
                if meta.get("agent_steps", 0) > 0:
                    return
        raise AssertionError("the launched server played no step")
    finally:
        sub.close(0)
        ctx.term()

