"""Shared memory between the game server and policy workers on one host (``server.net.shm``): the same
games as frames, a worker that checks what it maps, and a hostile description or request refused."""
import json
import os
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import zmq

from server.net import doorbell, shm
from server.net.protocol import Message, decode, encode
from simcore.game import shared_buffers

ROOT = Path(__file__).resolve().parents[2]
ENV = dict(os.environ, PYTHONPATH=str(ROOT))

pytestmark = pytest.mark.skipif(not shm.available(), reason="no writable /dev/shm on this host")


def cli(*args):
    return [sys.executable, "-m", "server.cli", *args]


def launch(tmp_path, arena, transport, *extra):
    out = tmp_path / f"{arena}-{transport}.json"
    p = subprocess.run(cli("launch", arena, "--matches", "24", "--agents", "greedy,random", "--steps", "40",
                           "--seed", "3", "--workers", "2", "--transport", transport, "--json", "--no-progress",
                           "--outcomes", str(out), *extra), env=ENV, cwd=ROOT, capture_output=True, text=True,
                       timeout=240)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout.strip().splitlines()[-1]), json.loads(out.read_text())


@pytest.mark.parametrize("arena", ["connect4", "tag"])
def test_shared_memory_plays_the_same_games_as_frames(tmp_path, arena):
    """tag: per-team observation cuts and float actions through the reply arrays."""
    s_shm, o_shm = launch(tmp_path, arena, "shm")
    s_ipc, o_ipc = launch(tmp_path, arena, "ipc")
    assert o_shm == o_ipc and s_shm["results"] == s_ipc["results"]
    assert s_shm["server"]["bad_messages"] == 0 and s_shm["server"]["requests"] > 0
    # every request header went by the workers' doorbells (server.net.doorbell), none by frames
    assert s_shm["server"]["doorbell_requests"] == s_shm["server"]["requests"]
    assert s_ipc["server"]["doorbell_requests"] == 0


def test_the_server_and_worker_say_which_transport_they_use(tmp_path):
    bind = f"ipc://{tmp_path}/server"
    logs = {}
    for transport in ("shm", "frames"):
        server = subprocess.Popen(cli("serve", "connect4", "--bind", bind, "--matches", "8", "--agents",
                                      "random,random", "--steps", "10", "--transport", transport, "--json",
                                      "--no-progress"), env=ENV, cwd=ROOT, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        worker = subprocess.run(cli("worker", "--connect", bind, "--exit-when-done"), env=ENV, cwd=ROOT,
                                capture_output=True, text=True, timeout=120)
        out, _ = server.communicate(timeout=120)
        assert server.returncode == 0 and json.loads(out.splitlines()[-1])["steps"] == 10
        logs[transport] = worker.stderr
    assert "(shared memory)" in logs["shm"] and "(frames)" in logs["frames"]


def test_shared_arrays_hold_a_game_whose_kernels_write_there():
    import arenas

    owner = shm.SharedArrays()
    try:
        with shared_buffers(owner.allocate("g0")):
            game = arenas.get("connect4").game(num_matches=4)
        game.reset(seed=1)
        seen = shm.attach(owner.spec())
        assert np.array_equal(seen["g0.obs"], game.obs) and np.array_equal(seen["g0.action_mask"], game.action_mask)
        game.step(np.argmax(game.action_mask.reshape(-1, 7), axis=1).reshape(game.actions.shape))
        assert np.array_equal(seen["g0.obs"], game.obs), "another mapping sees each step"
        assert oct(os.stat(owner.path).st_mode & 0o777) == "0o700"
        assert all(oct(os.stat(Path(owner.path) / n).st_mode & 0o777) == "0o600" for n in ("nonce", "g0.obs"))
    finally:
        owner.close()
    assert not os.path.exists(owner.path)


def test_an_allocator_that_gives_the_wrong_buffer_is_refused():
    import arenas

    with pytest.raises(ValueError, match="C-contiguous"):
        with shared_buffers(lambda name, shape, dtype: np.zeros(shape[:-1], dtype)):
            arenas.get("connect4").game(num_matches=2)


@pytest.fixture
def owner():
    o = shm.SharedArrays()
    o.array("a", (4, 3), np.float32)
    yield o
    o.close()


@pytest.mark.parametrize("change, why", [
    (lambda s, o: {**s, "dir": "../etc"}, "not one of ours"),
    (lambda s, o: {**s, "dir": "arena-shm-1-nothere"}, "no shared-memory folder"),
    (lambda s, o: {**s, "nonce": "0" * 32}, "not the peer's"),
    (lambda s, o: {**s, "arrays": [["a", "object", [4, 3]]]}, "bad shared array entry"),
    (lambda s, o: {**s, "arrays": [["../nonce", "float32", [4, 3]]]}, "bad shared array entry"),
    (lambda s, o: {**s, "arrays": [["a", "float32", [400, 3]]]}, "not a 4800-byte file"),
    (lambda s, o: {**s, "arrays": [["a", "float32", [-4, 3]]]}, "bad shared array entry"),
    (lambda s, o: {**s, "arrays": [["missing", "float32", [1]]]}, "missing"),
    (lambda s, o: {**s, "arrays": [["a", "float32", [4, 3]]] * 300}, "more than"),
    (lambda s, o: [s], "holds dir, nonce and arrays"),
])
def test_a_hostile_description_is_refused(owner, change, why):
    with pytest.raises(shm.ShmError, match=why):
        shm.attach(change(owner.spec(), owner))


def test_a_symbolic_link_in_place_of_an_array_is_not_followed(owner, tmp_path):
    target = tmp_path / "secret"
    target.write_bytes(b"\x00" * 48)
    os.symlink(target, Path(owner.path) / "link")
    with pytest.raises(shm.ShmError, match="link"):
        shm.attach({**owner.spec(), "arrays": [["link", "float32", [4, 3]]]})


def _fake_server(tmp_path):
    """A ROUTER socket with shared arrays laid out as a game server's: one connect4 group of 4 matches."""
    import arenas

    owner = shm.SharedArrays()
    with shared_buffers(owner.allocate("g0")):
        game = arenas.get("connect4").game(num_matches=4)
    game.reset(seed=0)
    owner.array("rows", (8,), np.int64)
    owner.array("req_obs", (8 * game.obs[0, 0].nbytes,), np.uint8)
    owner.array("req_mask", (8, 7), np.int8)
    owner.array("w0.actions", (8,), np.int64)
    owner.array("w0.logp", (8,), np.float32)
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.ROUTER)
    sock.setsockopt(zmq.LINGER, 0)
    bind = f"ipc://{tmp_path}/fake"
    sock.bind(bind)
    return owner, game, sock, bind


def _recv(sock, want: str, seconds: float = 60):
    """The next message of type ``want`` (heartbeats in between are skipped; any other reply fails)."""
    deadline = time.monotonic() + seconds
    while True:
        assert sock.poll(max(1, int(1000 * (deadline - time.monotonic())))), f"no {want} from the worker"
        ident, *frames = sock.recv_multipart()
        msg = decode(frames)
        if msg.type == want:
            return ident, msg
        assert msg.type in ("heartbeat", "hello"), f"wanted {want}, got {msg.type} {msg.meta}"


def test_a_worker_refuses_bad_shared_requests_and_answers_good_ones(tmp_path):
    owner, game, sock, bind = _fake_server(tmp_path)
    worker = subprocess.Popen(cli("worker", "--connect", bind, "--agents", "greedy", "--exit-when-done"), env=ENV,
                              cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        ident, hello = _recv(sock, "hello")
        assert hello.meta["shm"] is True, "a worker on this host offers shared memory"
        spec = {**owner.spec(["g0.obs", "g0.action_mask", "rows", "req_obs", "req_mask", "w0.actions", "w0.logp"]),
                "reply": "w0"}
        sock.send_multipart([ident, *encode(Message("hello", meta={
            "role": "server", "arena": "connect4", "options": "{}", "agents": ["greedy"], "shm": json.dumps(spec)}))])
        while True:
            _, beat = _recv(sock, "heartbeat")
            if beat.meta.get("ready"):
                break
        assert beat.meta["shm"] is True, "it mapped our arrays"
        rows = np.flatnonzero(game.active.reshape(-1))
        owner.arrays["rows"][2:2 + rows.size] = rows
        bad = [{"shm": [2, 99]}, {"shm": [-1, 2]}, {"shm": [2]}, {"shm": [2, rows.size], "group": 5}]
        for i, meta in enumerate(bad):
            sock.send_multipart([ident, *encode(Message("act", seq=i + 1, meta={"agent": "greedy", "seed": 0,
                                                                                 "group": 0, **meta}))])
            _, reply = _recv(sock, "error")
            assert reply.seq == i + 1
        owner.arrays["rows"][2] = 10_000                          # a row outside the group
        sock.send_multipart([ident, *encode(Message("act", seq=50, meta={"agent": "greedy", "seed": 0, "group": 0,
                                                                          "shm": [2, rows.size]}))])
        _, reply = _recv(sock, "error")
        assert "outside" in reply.meta["error"]
        owner.arrays["rows"][2:2 + rows.size] = rows
        # interleaved rows: the server gathers them into the request arrays at the request's offset
        row_bytes = game.obs[0, 0].nbytes
        owner.arrays["req_obs"][2 * row_bytes:(2 + rows.size) * row_bytes] = \
            game.obs.reshape(-1, *game.obs.shape[2:])[rows].reshape(-1).view(np.uint8)
        owner.arrays["req_mask"][2:2 + rows.size] = game.action_mask.reshape(-1, 7)[rows]
        sock.send_multipart([ident, *encode(Message("act", seq=99, meta={"agent": "greedy", "seed": 0, "group": 0,
                                                                          "shm": [2, rows.size]}))])
        _, reply = _recv(sock, "actions")
        assert reply.seq == 99 and reply.meta["shm"] is True and not reply.arrays
        got = owner.arrays["w0.actions"][2:2 + rows.size]
        assert (got == 3).all(), "greedy opens in the centre column, written at the request's offset"
        # one contiguous run of rows: read straight from the game's own buffers (request arrays untouched)
        owner.arrays["req_mask"][:] = 0
        owner.arrays["rows"][5] = rows[0]
        sock.send_multipart([ident, *encode(Message("act", seq=100, meta={"agent": "greedy", "seed": 0, "group": 0,
                                                                           "shm": [5, 1]}))])
        _, reply = _recv(sock, "actions")
        assert reply.seq == 100 and owner.arrays["w0.actions"][5] == 3
    finally:
        sock.send_multipart([ident, *encode(Message("bye"))])
        worker.wait(timeout=30)
        sock.close(0)
        owner.close()


def _bell_frames(reader, seconds=60):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        frames = reader.read()
        if frames or reader.closed:
            return frames
        time.sleep(0.005)
    raise AssertionError("nothing on the doorbell")


def test_a_worker_answers_by_its_doorbell_and_drops_one_that_carries_garbage(tmp_path):
    owner, game, sock, bind = _fake_server(tmp_path)
    names = doorbell.make_pair(owner.path, "w0", 1)
    worker = subprocess.Popen(cli("worker", "--connect", bind, "--agents", "greedy", "--exit-when-done"), env=ENV,
                              cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    rep = doorbell.Reader(doorbell.open_fifo(f"{owner.path}/{names[1]}", write=False))
    req = -1
    try:
        ident, _ = _recv(sock, "hello")
        spec = {**owner.spec(["g0.obs", "g0.action_mask", "rows", "req_obs", "req_mask", "w0.actions", "w0.logp"]),
                "reply": "w0", "doorbell": list(names)}
        sock.send_multipart([ident, *encode(Message("hello", meta={
            "role": "server", "arena": "connect4", "options": "{}", "agents": ["greedy"], "shm": json.dumps(spec)}))])
        for _ in range(300):
            _, beat = _recv(sock, "heartbeat")
            if beat.meta.get("ready"):
                break
        assert beat.meta["doorbell"] is True, "it opened the doorbells we named"
        req = doorbell.open_fifo(f"{owner.path}/{names[0]}", write=True)
        rows = np.flatnonzero(game.active.reshape(-1))
        owner.arrays["rows"][:rows.size] = rows
        row_bytes = game.obs[0, 0].nbytes           # interleaved rows: gathered as the server would
        owner.arrays["req_obs"][:rows.size * row_bytes] = \
            game.obs.reshape(-1, *game.obs.shape[2:])[rows].reshape(-1).view(np.uint8)
        owner.arrays["req_mask"][:rows.size] = game.action_mask.reshape(-1, 7)[rows]
        acts = [Message("act", seq=s, sender="server", meta={"agent": "greedy", "seed": 0, "group": 0,
                                                             "shm": [0, int(rows.size)]}) for s in (7, 8)]
        assert doorbell.write(req, [doorbell.frame(encode(m)[0]) for m in acts]) == 2
        replies = []
        while len(replies) < 2:
            replies += [decode([raw]) for raw in _bell_frames(rep)]
        assert [(r.type, r.seq, r.meta["shm"]) for r in replies] == [("actions", 7, True), ("actions", 8, True)]
        assert (owner.arrays["w0.actions"][:rows.size] == 3).all()
        # garbage on the doorbell: counted, the doorbell closed (it says so), and the socket still serves
        os.write(req, struct.pack("<I", 5) + b"\xc1junk")
        for _ in range(300):
            _, beat = _recv(sock, "heartbeat")
            if beat.meta.get("doorbell") is False:
                break
        assert beat.meta["doorbell"] is False
        assert _bell_frames(rep) == [] and rep.closed, "it closed its end of the reply doorbell"
        sock.send_multipart([ident, *encode(Message("act", seq=9, sender="server", meta={
            "agent": "greedy", "seed": 0, "group": 0, "shm": [0, int(rows.size)]}))])
        _, reply = _recv(sock, "actions")
        assert reply.seq == 9
    finally:
        sock.send_multipart([ident, *encode(Message("bye"))])
        worker.wait(timeout=30)
        sock.close(0)
        for fd in (req, rep.fd):
            if fd >= 0:
                os.close(fd)
        owner.close()
    assert "dropped a bad message" in worker.stderr.read()


def test_a_server_drops_a_doorbell_that_carries_garbage_and_plays_on(tmp_path):
    """A fake worker that speaks the protocol, then writes garbage into its reply doorbell."""
    bind = f"ipc://{tmp_path}/server"
    server = subprocess.Popen(cli("serve", "connect4", "--bind", bind, "--matches", "4", "--agents", "random",
                                  "--steps", "6", "--transport", "shm", "--json", "--no-progress"),
                              env=ENV, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(bind)
    fds = []
    try:
        sock.send_multipart(encode(Message("hello", sender="fake", meta={"role": "worker", "agents": ["random"],
                                                                         "shm": True})))
        assert sock.poll(60_000)
        hello = decode(sock.recv_multipart())
        spec = json.loads(hello.meta["shm"])
        arrays = shm.attach(spec)
        folder = os.path.join(shm.ROOT, spec["dir"])
        req = doorbell.Reader(doorbell.open_fifo(f"{folder}/{spec['doorbell'][0]}", write=False))
        rep = doorbell.open_fifo(f"{folder}/{spec['doorbell'][1]}", write=True)
        fds += [req.fd, rep]
        beat = {"agents": ["random"], "ready": True, "shm": True, "doorbell": True}
        sock.send_multipart(encode(Message("heartbeat", sender="fake", meta=beat)))
        act = decode([_bell_frames(req)[0]])
        assert act.type == "act" and act.meta["shm"][1] > 0, "the first request came by the doorbell"
        os.write(rep, struct.pack("<I", 3) + b"\xc1\xc1\xc1")          # not msgpack
        assert _bell_frames(req) == [] and req.closed, "the server closed the doorbell"
        answered, deadline = 0, time.monotonic() + 60
        pending = [act]
        while server.poll() is None and time.monotonic() < deadline:
            for m in pending:       # from now on by the socket: actions written into our reply arrays
                off, n = m.meta["shm"]
                rows = arrays["rows"][off:off + n]
                mask = arrays["g0.action_mask"].reshape(-1, 7)[rows]
                arrays[f"{spec['reply']}.actions"][off:off + n] = np.argmax(mask, axis=1)
                sock.send_multipart(encode(Message("actions", seq=m.seq, sender="fake", meta={"shm": True})))
                answered += 1
            pending = []
            if sock.poll(100):
                m = decode(sock.recv_multipart())
                if m.type == "act":
                    pending.append(m)
            beat["doorbell"] = False
            sock.send_multipart(encode(Message("heartbeat", sender="fake", meta=beat)))
        out, err = server.communicate(timeout=60)
    finally:
        sock.close(0)
        for fd in fds:
            os.close(fd)
        if server.poll() is None:
            server.kill()
    assert server.returncode == 0, err
    summary = json.loads(out.splitlines()[-1])
    assert summary["steps"] == 6 and answered >= 6
    assert summary["server"]["bad_messages"] == 1 and summary["server"]["doorbell_requests"] == 1
