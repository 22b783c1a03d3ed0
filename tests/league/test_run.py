"""``arena league`` as real processes: killed with SIGKILL at random moments and resumed, its files, and
bad input refused with one line and nothing changed."""
import hashlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agents.neural import NeuralAgent
from server.league import SNAPSHOT
from server.league.store import LeagueStore

ROOT = Path(__file__).resolve().parents[2]
ENV = dict(os.environ, PYTHONPATH=str(ROOT))
SMALL = ["--set", "num_matches=16", "--set", "batch_segments=32", "--snapshot-steps", "400", "--every", "1",
         "--save-every", "1"]


def cli(*args):
    return [sys.executable, "-m", "server.cli", *args]


def league(folder, *extra, minutes="5", out=subprocess.PIPE):
    return subprocess.Popen(cli("league", "connect4", "--dir", str(folder), "--minutes", minutes, *SMALL, *extra),
                            env=ENV, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)


def tree_digest(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(folder)).encode() + b"\0" + p.read_bytes())
    return h.hexdigest()


def check(folder: Path, before: int) -> int:
    with LeagueStore.open(folder, "connect4") as s:
        assert s.integrity_ok()
        now = s.match_count()
        assert now >= before, "the matches counted only grow"
        ids = [m.id for m in s.matches()]
        assert len(ids) == len(set(ids)) == now, "no match counted twice"
        assert s.recompute_ratings() == s.ratings(), "ratings replayed from the matches equal the stored ones"
        for m in s.members():
            if m.kind == SNAPSHOT:
                s.verify_file(m.name)
                NeuralAgent.load(m.path, device="cpu")          # every recorded snapshot loads
        return now


def test_a_league_killed_ten_times_resumes_each_time_and_finishes(tmp_path):
    folder = tmp_path / "lg"
    rng = random.Random(7)
    count, snapshots = 0, 0
    for round_ in range(10):
        p = league(folder)
        # until the league has played (the first round includes compiling), then a random moment
        deadline = time.monotonic() + 180
        while not (folder / "league.db").exists() or count_matches(folder) <= count:
            assert p.poll() is None, p.stdout.read()
            assert time.monotonic() < deadline, "the league played no match"
            time.sleep(0.2)
        time.sleep(rng.uniform(1.0, 6.0))
        os.killpg(p.pid, signal.SIGKILL)
        p.wait(timeout=30)
        p.stdout.close()
        count = check(folder, count)
        with LeagueStore.open(folder, "connect4") as s:
            snapshots = sum(m.kind == SNAPSHOT for m in s.members())
    assert count > 0 and snapshots > 0, (count, snapshots)
    # and once more, to the end: its files and the top agent's evaluation
    p = league(folder, "--eval-games", "40", minutes="0.3")
    out, _ = p.communicate(timeout=300)
    assert p.returncode == 0, out
    assert check(folder, count) > count
    with LeagueStore.open(folder, "connect4") as s:
        snaps = {m.name for m in s.members() if m.kind == SNAPSHOT}
        played = [m for m in s.matches() if m.a in snaps or m.b in snaps]
        config = s.config()
    assert played, "the workers played the snapshots the league broadcast"
    if any(n.startswith("mx0") for n in snaps):
        assert config["generations"].get("mx0", 0) >= 1, "a main exploiter restarts after its snapshot"
    summary = json.loads((folder / "league.json").read_text())
    assert summary["top"] == "main0" and set(summary["evaluation"]) >= {"random", "greedy", "search:depth=2"}
    assert all(0.0 <= v <= 1.0 for v in summary["evaluation"].values())
    NeuralAgent.load(summary["top_checkpoint"], device="cpu")
    for name in ("leaderboard.csv", "payoff.csv", "payoff.png", "ratings.png"):
        assert (folder / name).stat().st_size > 0, name
    board = subprocess.run(cli("league", "--dir", str(folder), "--leaderboard"), env=ENV, cwd=ROOT,
                           capture_output=True, text=True, timeout=60)
    assert board.returncode == 0 and "main0" in board.stdout and "mx0" in board.stdout


def count_matches(folder: Path) -> int:
    try:
        conn = sqlite3.connect(f"file:{folder / 'league.db'}?mode=ro", uri=True, timeout=5)
        try:
            return conn.execute("SELECT count(*) FROM matches").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.Error:
        return 0


def _refused(args, folder: Path, text: str) -> None:
    before = tree_digest(folder) if folder.exists() else None
    p = subprocess.run(cli("league", *args), env=ENV, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert p.returncode == 2, p.stderr
    assert text in p.stderr and "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert (tree_digest(folder) if folder.exists() else None) == before, "nothing in DIR changed"


@pytest.fixture
def small_league(tmp_path):
    """A league folder with members and one snapshot, made with the store (no run needed)."""
    import arenas

    folder = tmp_path / "lg"
    with LeagueStore.open(folder, "connect4", create=True) as s:
        s.set_config({"arena": "connect4"})
        s.add_member("main0", "main")
        s.add_member("random", "fixed", spec={"agent": "random"})
        agent = NeuralAgent(arenas.make("connect4", num_matches=1), device="cpu")
        path = agent.save(folder / "snapshots" / "main0-s1")
        s.add_snapshot("main0", "main0-s1", path, 100)
        s.record([("m1", "main0", "random", 1.0, 9)])
    return folder


def test_bad_input_is_one_line_exit_2_and_changes_nothing(small_league, tmp_path):
    folder = small_league
    _refused(["battle", "--dir", str(folder)], folder, "is the league of arena 'connect4'")
    # a corrupt snapshot file
    weights = next((folder / "snapshots" / "main0-s1").rglob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[:-7] + b"garbage")
    _refused(["connect4", "--dir", str(folder)], folder, "main0-s1")
    # a database from a newer schema
    db = folder / "league.db"
    conn = sqlite3.connect(db)
    conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    _refused(["connect4", "--dir", str(folder)], folder, "newer")
    # unknown fixed members: nothing is created
    fresh = tmp_path / "fresh"
    _refused(["connect4", "--dir", str(fresh), "--opponents", "random,no_such_agent"], fresh, "no_such_agent")
    assert not fresh.exists()


def _free_port_pair() -> int:
    import socket

    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        with socket.socket() as a, socket.socket() as b:
            try:
                a.bind(("127.0.0.1", port))
                b.bind(("127.0.0.1", port + 1))       # the server's statistics go on the next port
                return port
            except OSError:
                continue
    raise RuntimeError("no free pair of ports")


def _member_state(folder: Path, name: str):
    try:
        conn = sqlite3.connect(f"file:{folder / 'league.db'}?mode=ro", uri=True, timeout=5)
        try:
            active = conn.execute("SELECT active FROM members WHERE name = ?", (name,)).fetchone()
            games = conn.execute("SELECT count(*) FROM matches WHERE a = ? OR b = ?", (name, name)).fetchone()[0]
            total = conn.execute("SELECT count(*) FROM matches").fetchone()[0]
            return (None if active is None else bool(active[0])), games, total
        finally:
            conn.close()
    except sqlite3.Error:
        return None, 0, 0


def _until(what, seconds: float = 180):
    deadline = time.monotonic() + seconds
    while not what():
        assert time.monotonic() < deadline
        time.sleep(0.3)


def test_a_remote_agent_joins_a_running_league_and_leaving_costs_only_its_matches(tmp_path):
    folder, port = tmp_path / "lg", _free_port_pair()
    endpoint = f"tcp://127.0.0.1:{port}"
    log = open(tmp_path / "league.log", "w+")
    p = league(folder, "--bind", endpoint, "--eval-games", "0", minutes="5", out=log)
    try:
        _until(lambda: _member_state(folder, "main0")[1] > 0)
        visitor = subprocess.Popen(cli("worker", "--connect", endpoint, "--agents", "random", "--league-member",
                                       "visitor"), env=ENV, cwd=ROOT, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        _until(lambda: _member_state(folder, "visitor")[1] > 20)          # rated like every member
        assert _member_state(folder, "visitor")[0] is True
        visitor.send_signal(signal.SIGKILL)
        visitor.wait(timeout=30)
        _until(lambda: _member_state(folder, "visitor")[0] is False)      # noticed: out of matchmaking
        _, games, total = _member_state(folder, "visitor")
        _until(lambda: _member_state(folder, "visitor")[2] > total + 100)  # and the league goes on
    finally:
        os.killpg(p.pid, signal.SIGINT)
        p.wait(timeout=300)
    log.seek(0)
    out = log.read()
    assert p.returncode == 0, out
    assert "remote member 'visitor' joined" in out and "'visitor' left" in out, out
    check(folder, 0)
