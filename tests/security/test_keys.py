"""Keys and binds: secret keys stay secret, nothing binds beyond loopback in the clear, and with keys only
authorized clients hear anything, statistics and parameters included.

Attacks: reading ``arena keys``' secret keys as another user; running ``arena keys`` again over keys in
use; ``--stats-bind`` / ``--spectate-bind`` / a learner's ``--pub`` on ``0.0.0.0`` without keys; a
subscriber without keys (or with a key the server never authorized) on a server's statistics and on a
learner's parameters when keys are given.
"""
import os
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import zmq
import zmq.auth

from server.net.endpoints import secure_client
from server.net.protocol import decode

ROOT = Path(__file__).resolve().parents[2]
ENV = dict(os.environ, PYTHONPATH=str(ROOT))


def cli(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "server.cli", *args], env=ENV, cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_keys(tmp_path: Path) -> Path:
    keys = tmp_path / "keys"
    p = cli("keys", str(keys))
    assert p.returncode == 0, p.stderr
    return keys


def one_line_refusal(p, *words):
    assert p.returncode == 2, (p.returncode, p.stderr)
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in p.stderr, p.stderr
    for w in words:
        assert w in lines[0], lines[0]


def test_arena_keys_writes_secret_keys_0600_in_a_0700_folder(tmp_path):
    old = os.umask(0o022)           # the usual umask, which made them 0644 / 0755 before
    try:
        keys = make_keys(tmp_path)
    finally:
        os.umask(old)
    assert mode(keys) == 0o700 and mode(keys / "authorized") == 0o700
    for name in ("server.key_secret", "client.key_secret"):
        assert mode(keys / name) == 0o600, name
    assert (keys / "authorized" / "client.key").read_text() == (keys / "client.key").read_text()


def test_arena_keys_never_replaces_keys_without_force(tmp_path):
    keys = make_keys(tmp_path)
    before = {p.name: p.read_bytes() for p in keys.iterdir() if p.is_file()}
    p = cli("keys", str(keys))
    one_line_refusal(p, "already holds keys", "--force")
    assert {q.name: q.read_bytes() for q in keys.iterdir() if q.is_file()} == before, "the keys in use were kept"
    os.chmod(keys / "server.key_secret", 0o644)     # an old, loose key file: --force must not keep its mode
    p = cli("keys", str(keys), "--force")
    assert p.returncode == 0, p.stderr
    after = {q.name: q.read_bytes() for q in keys.iterdir() if q.is_file()}
    assert after["server.key_secret"] != before["server.key_secret"], "--force made new keys"
    assert mode(keys / "server.key_secret") == 0o600 and mode(keys / "client.key_secret") == 0o600


def test_a_secret_key_other_users_can_read_is_refused(tmp_path):
    keys = make_keys(tmp_path)
    os.chmod(keys / "server.key_secret", 0o644)
    p = cli("serve", "connect4", "--bind", f"tcp://127.0.0.1:{free_port()}", "--keys", str(keys), "--steps", "1")
    one_line_refusal(p, "readable by other users", "chmod 600")


@pytest.mark.parametrize("flag", ["--stats-bind", "--spectate-bind"])
def test_every_socket_of_arena_serve_refuses_an_open_address_without_keys(tmp_path, flag):
    p = cli("serve", "connect4", "--bind", f"ipc://{tmp_path}/server", flag, f"tcp://0.0.0.0:{free_port()}",
            "--steps", "1")
    one_line_refusal(p, "needs CURVE keys", "0.0.0.0")


def test_a_learners_pub_refuses_an_open_address_without_keys(tmp_path):
    p = cli("learner", "connect4", "--name", "L0", "--out", str(tmp_path / "out"), "--bind", "tcp://127.0.0.1:*",
            "--pub", f"tcp://0.0.0.0:{free_port()}")
    assert p.returncode != 0 and "needs CURVE keys" in p.stderr and "Traceback" not in p.stderr, p.stderr


def _subscribers(ctx, endpoint: str, keys: Path) -> dict:
    """A keyless SUB, one with a key pair the server never authorized, and an authorized one."""
    out = {}
    for kind in ("keyless", "impostor", "authorized"):
        sub = ctx.socket(zmq.SUB)
        sub.setsockopt(zmq.LINGER, 0)
        sub.setsockopt(zmq.SUBSCRIBE, b"")
        if kind == "impostor":
            sub.curve_publickey, sub.curve_secretkey = zmq.curve_keypair()
            sub.curve_serverkey = zmq.auth.load_certificate(str(keys / "server.key"))[0]
        elif kind == "authorized":
            secure_client(sub, keys)
        sub.connect(endpoint)
        out[kind] = sub
    return out


def _heard(subs: dict, seconds: float) -> dict:
    got = {k: [] for k in subs}
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for k, sub in subs.items():
            while sub.poll(0):
                got[k].append(decode(sub.recv_multipart()))
        time.sleep(0.05)
    return got


def test_with_keys_a_servers_statistics_go_only_to_authorized_subscribers(tmp_path):
    keys = make_keys(tmp_path)
    stats = f"tcp://127.0.0.1:{free_port()}"
    proc = subprocess.Popen([sys.executable, "-m", "server.cli", "serve", "connect4", "--bind",
                             f"tcp://127.0.0.1:{free_port()}", "--stats-bind", stats, "--keys", str(keys),
                             "--matches", "4", "--agents", "random,random", "--steps", "5", "--no-progress"],
                            env=ENV, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    ctx = zmq.Context.instance()
    subs = _subscribers(ctx, stats, keys)
    try:
        got = _heard(subs, 6.0)            # no worker: the server waits, publishing once a second
        assert proc.poll() is None, proc.stderr.read()
        assert got["authorized"] and all(m.type == "stats" for m in got["authorized"])
        assert not got["keyless"] and not got["impostor"], "an unauthorized subscriber heard the statistics"
    finally:
        for s in subs.values():
            s.close(0)
        proc.kill()
        proc.communicate()


def test_with_keys_a_learners_parameters_go_only_to_authorized_subscribers(tmp_path):
    from server.learn.config import preset
    from server.learn.learner import Learner

    keys = make_keys(tmp_path)
    cfg = preset("connect4", num_matches=4, net_seed=0)
    pub = f"tcp://127.0.0.1:{free_port()}"
    learner = Learner(cfg, "L0", tmp_path / "out", gossip_bind="tcp://127.0.0.1:*", pub_bind=pub,
                      keys_dir=str(keys))
    ctx = zmq.Context.instance()
    subs = _subscribers(ctx, pub, keys)
    try:
        # its default segments endpoint (for the game server): ipc, in a folder only this user may enter
        seg = Path(learner.segments_endpoint[len("ipc://"):])
        assert learner.segments_endpoint.startswith("ipc://") and mode(seg.parent) == 0o700
        got = {k: [] for k in subs}
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline and not got["authorized"]:
            learner.publish_params()
            for k, v in _heard(subs, 0.3).items():
                got[k] += v
        for k, v in _heard(subs, 1.0).items():
            got[k] += v
        assert got["authorized"] and got["authorized"][0].type == "params"
        assert got["authorized"][0].arrays["params"].size == learner.params.size
        assert not got["keyless"] and not got["impostor"], "an unauthorized subscriber received the parameters"
    finally:
        for s in subs.values():
            s.close(0)
        learner.close()
