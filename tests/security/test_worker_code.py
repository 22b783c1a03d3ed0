"""A server never chooses the code a worker runs, and never kills it with a bad message.

A fake game server (a ROUTER socket of the test) answers a real ``arena worker``'s hello naming a file
arena, file and module agents whose import would leave a marker file: nothing is imported, the worker
says why in its log. Bad messages (a wrapped shape, garbage, three frames, act requests that do not fit
the game) are dropped and counted and the worker goes on answering. A file agent named on the worker's
own command line runs isolated with a deadline, as under ``arena run``: one that hangs forfeits its
matches, the run completes.
"""
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import msgpack
import numpy as np
import zmq

import arenas
from server.net.protocol import MAGIC, VERSION, Message, decode, encode

ROOT = Path(__file__).resolve().parents[2]


def cli(*args):
    return [sys.executable, "-m", "server.cli", *args]


def evil_code(tmp_path: Path) -> dict:
    """Files and a module whose import writes a marker; what a hostile server would name."""
    marker = tmp_path / "imported"
    body = textwrap.dedent(f"""
        import pathlib
        pathlib.Path({str(marker)!r}).write_text("imported")
        from arenas.connect4 import SPEC as Game
        class Evil:
            def act(self, obs, mask):
                return mask.argmax(axis=1)
    """)
    (tmp_path / "evil.py").write_text(body)
    (tmp_path / "evilmod.py").write_text(body)
    return {"marker": marker, "file_arena": f"{tmp_path / 'evil.py'}:Game", "file_agent": f"{tmp_path / 'evil.py'}:Evil",
            "module_agent": "evilmod:Evil", "module_arena": "evilmod:Game"}


class FakeServer:
    """The test plays the server: a ROUTER the worker connects to."""

    def __init__(self, tmp_path: Path, *worker_args: str):
        self.ctx = zmq.Context.instance()
        self.sock = self.ctx.socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.endpoint = f"ipc://{tmp_path}/fake-server"
        self.sock.bind(self.endpoint)
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(tmp_path)]))   # evilmod importable
        self.worker = subprocess.Popen(cli("worker", "--connect", self.endpoint, "--exit-when-done", *worker_args),
                                       env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                       text=True)
        self.ident, hello = self.recv(("hello",), timeout=60)
        assert hello.meta["role"] == "worker"

    def recv(self, types: tuple[str, ...], timeout: float = 30) -> tuple[bytes, Message]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.sock.poll(200):
                ident, *frames = self.sock.recv_multipart()
                msg = decode(frames)
                if msg.type in types:
                    return ident, msg
            assert self.worker.poll() is None or types == ("bye",), self.stderr()
        raise AssertionError(f"no {types} from the worker in {timeout} s")

    def send(self, frames: list) -> None:
        self.sock.send_multipart([self.ident, *frames])

    def hello(self, arena: str, agents: list[str]) -> None:
        self.send(encode(Message("hello", sender="server", meta={"role": "server", "arena": arena, "options": "{}",
                                                                  "agents": agents})))

    def stderr(self) -> str:
        if self.worker.poll() is None:
            self.worker.kill()
        return self.worker.communicate(timeout=30)[1]

    def close(self) -> None:
        if self.worker.poll() is None:
            self.worker.kill()
            self.worker.communicate(timeout=30)
        self.sock.close(0)


def act_request(seq: int, agent: str, **override) -> list:
    game = arenas.make("connect4", num_matches=4, seed=0)
    obs = game.obs.reshape((-1,) + game.obs_shape)[: 4]
    mask = game.action_mask.reshape(-1, game.action_mask.shape[-1])[: 4].astype(bool)
    arrays = {"obs": obs, "mask": mask}
    arrays.update(override)
    return encode(Message("act", seq=seq, sender="server", arrays={k: v for k, v in arrays.items() if v is not None},
                          meta={"agent": agent, "seed": 1, "group": 0}))


def test_a_server_naming_a_file_arena_is_refused_and_nothing_imported(tmp_path):
    evil = evil_code(tmp_path)
    for arena in (evil["file_arena"], evil["module_arena"]):
        server = FakeServer(tmp_path)
        try:
            server.hello(arena, ["random"])
            _, bye = server.recv(("bye",))
            assert server.worker.wait(timeout=30) == 0
            err = server.stderr()
            assert "not in the registry" in err and "--arena" in err, err
            assert str(tmp_path) not in bye.meta.get("error", ""), "the server learns nothing of the worker's side"
            assert not evil["marker"].exists(), f"the worker imported {arena}"
        finally:
            server.close()


def test_a_server_naming_code_agents_gets_only_registry_agents_served(tmp_path):
    evil = evil_code(tmp_path)
    server = FakeServer(tmp_path)
    try:
        server.hello("connect4", [evil["file_agent"], evil["module_agent"], "random"])
        _, beat = server.recv(("heartbeat",), timeout=60)
        assert beat.meta["agents"] == ["random"], beat.meta
        assert not evil["marker"].exists(), "the worker imported code a server named"
        server.send(act_request(1, evil["file_agent"]))
        _, reply = server.recv(("error",))
        assert reply.seq == 1 and "does not serve" in reply.meta["error"]
        server.send(act_request(2, "random"))
        _, reply = server.recv(("actions",))
        assert reply.seq == 2 and reply.arrays["actions"].shape == (4,)
        server.send(encode(Message("bye", sender="server")))
        assert server.worker.wait(timeout=30) == 0
        err = server.stderr()
        assert "not serving" in err and "--agents" in err, err
        assert not evil["marker"].exists()
    finally:
        server.close()


def test_bad_messages_never_kill_a_worker(tmp_path):
    server = FakeServer(tmp_path)
    try:
        server.hello("connect4", ["random"])
        server.recv(("heartbeat",), timeout=60)
        wrapped = msgpack.packb({"magic": MAGIC, "v": VERSION, "type": "act", "seq": 9, "from": "x", "pv": 0,
                                 "meta": {"agent": "random"}, "arrays": [["obs", "uint8", [2**32, 2**32], 0]]})
        server.send([wrapped, b""])                                            # 1: wrapped shape
        server.send([b"\xc1 garbage"])                                          # 2: garbage
        server.send([encode(Message("heartbeat"))[0], b"x", b"y"])              # 3: three frames
        bad_acts = [act_request(10, "random", obs=None),                        # 4: no obs
                    act_request(11, ["random"]),                                # 5: agent is a list
                    act_request(12, "random", obs=np.zeros((4, 3), np.uint8)),  # 6: obs does not fit
                    act_request(13, "random", mask=np.ones((3, 7), bool)),      # 7: rows disagree
                    act_request(14, "random", extra=np.zeros(2))]               # 8: an array too many
        for frames in bad_acts:
            server.send(frames)
        errors = sorted(server.recv(("error",))[1].seq for _ in bad_acts)
        assert errors == [10, 11, 12, 13, 14], "each unusable request is answered with an error"
        server.send(act_request(20, "random"))
        _, reply = server.recv(("actions",))
        assert reply.seq == 20, "the worker still serves"
        assert server.worker.poll() is None
        server.send(encode(Message("bye", sender="server")))
        assert server.worker.wait(timeout=30) == 0
        err = server.stderr()
        assert "(8 so far)" in err, err
    finally:
        server.close()


def test_a_file_agent_named_on_the_workers_command_line_runs_isolated_with_a_deadline(tmp_path):
    hang = tmp_path / "hang.py"
    hang.write_text(textwrap.dedent("""
        import time
        class Hang:
            def act(self, obs, mask):
                time.sleep(3600)
    """))
    spec = f"{hang}:Hang"
    bind = f"ipc://{tmp_path}/server"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    serve = subprocess.Popen(cli("serve", "connect4", "--bind", bind, "--matches", "4", "--agents", f"{spec},random",
                                 "--steps", "6", "--json", "--no-progress"), env=env, cwd=ROOT,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    worker = subprocess.Popen(cli("worker", "--connect", bind, "--agents", f"{spec},random", "--agent-timeout", "1",
                                  "--exit-when-done"), env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
    try:
        out, err = serve.communicate(timeout=120)
        assert serve.returncode == 0, err
        summary = json.loads(out.strip().splitlines()[-1])
        assert summary["steps"] == 6
        reasons = {f["reason"] for f in summary["forfeits"] if f["agent"] == spec}
        assert any("did not answer within 1 s" in r for r in reasons), summary["forfeits"]
        assert worker.wait(timeout=30) == 0, "the worker outlives its hanging agent and leaves when told"
    finally:
        for p in (serve, worker):
            if p.poll() is None:
                p.kill()
                p.communicate()
