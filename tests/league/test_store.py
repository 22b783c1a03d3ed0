"""The league's SQLite store, on real files: WAL, batches, duplicates, exact rating replay, refusals
that change nothing, snapshot files, and a writer killed with SIGKILL at random moments."""
import hashlib
import os
import random
import select
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from server.league import FIXED, MAIN, MAIN_EXPLOITER, SNAPSHOT, LeagueError
from server.league.payoff import Payoff
from server.league.store import DB_NAME, DEFAULT_RATING, SCHEMA_VERSION, LeagueStore, content_sha256

ROOT = Path(__file__).resolve().parents[2]
HELPER = Path(__file__).with_name("record_loop.py")
ARENA = "connect4"


@pytest.fixture
def store(tmp_path):
    s = LeagueStore.open(tmp_path, ARENA, create=True)
    s.add_member("main", MAIN, spec={"net": "mlp"})
    s.add_member("exploiter", MAIN_EXPLOITER)
    s.add_member("random", FIXED, spec={"agent": "random"})
    s.add_member("greedy", FIXED, spec={"agent": "greedy"})
    yield s
    s.close()


def random_results(n, names, seed, prefix="m"):
    rng = random.Random(seed)
    return [(f"{prefix}{i}", *rng.sample(names, 2), rng.choice((0, 0.5, 1)), rng.randrange(1, 42)) for i in range(n)]


def raw(path: Path, sql: str):
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def snapshot_files(folder: Path) -> dict:
    """The bytes of the database and its -wal/-shm files (absent ones: None)."""
    return {name: (folder / name).read_bytes() if (folder / name).exists() else None
            for name in (DB_NAME, DB_NAME + "-wal", DB_NAME + "-shm")}


def test_wal_mode_and_reopen(store, tmp_path):
    assert raw(tmp_path / DB_NAME, "PRAGMA journal_mode") == [("wal",)]
    assert store._db.execute("PRAGMA synchronous").fetchone() == (1,)         # NORMAL
    assert store.integrity_ok()
    store.set_config({"snapshot_steps": 100_000, "pfsp": "hard"})
    store.record([("a", "main", "random", 1, 30)])
    store.close()
    with LeagueStore.open(tmp_path / DB_NAME, ARENA) as again:                 # the file itself works too
        assert [m.name for m in again.members()] == ["main", "exploiter", "random", "greedy"]
        assert again.member("random").spec == {"agent": "random"}
        assert again.config() == {"snapshot_steps": 100_000, "pfsp": "hard"}
        assert again.match_count() == 1
    with pytest.raises(LeagueError, match="no league"):
        LeagueStore.open(tmp_path / "elsewhere", ARENA)


def test_record_batches_and_skip_duplicates(store, tmp_path):
    batch = [("g1", "main", "random", 1, 10), ("g2", "main", "greedy", 0.5, 20), ("g3", "exploiter", "main", 0, 30)]
    assert store.record(batch) == 3
    # a resent batch counts once; a duplicate inside one batch too
    assert store.record(batch[1:] + [("g4", "greedy", "random", 1, 5), ("g4", "greedy", "random", 1, 5)]) == 1
    assert store.match_count() == 4
    assert [(m.id, m.a, m.b, m.score, m.length) for m in store.matches()] == [
        ("g1", "main", "random", 1.0, 10), ("g2", "main", "greedy", 0.5, 20), ("g3", "exploiter", "main", 0.0, 30),
        ("g4", "greedy", "random", 1.0, 5)]
    assert [m.seq for m in store.matches()] == sorted(m.seq for m in store.matches())
    board = {s.name: s for s in store.leaderboard()}
    assert board["main"].games == 3 and board["random"].games == 2 and board["exploiter"].games == 1
    assert board["main"].mu > DEFAULT_RATING[0] > board["random"].mu        # the winner gains
    # one history row per player rated in a batch, after the batch's last match
    g3, g4 = (m.seq for m in store.matches() if m.id in ("g3", "g4"))
    assert [(h.seq, h.name) for h in store.rating_history()] == [
        (g3, "exploiter"), (g3, "greedy"), (g3, "main"), (g3, "random"), (g4, "greedy"), (g4, "random")]
    assert store.rating_history("main")[-1][2:4] == tuple(store.ratings()["main"])
    # an unknown member, a bad score or a bad length records nothing of the batch
    for bad, message in [(("g5", "main", "nobody", 1, 3), "does not have: 'nobody'"),
                         (("g5", "main", "random", 2, 3), "score"),
                         (("g5", "main", "random", 1, -1), "length")]:
        with pytest.raises(LeagueError, match=message):
            store.record([("g6", "main", "random", 1, 3), bad])
    assert store.match_count() == 4


def test_recompute_equals_stored(store):
    names = ["main", "exploiter", "random", "greedy"]
    results = random_results(400, names, seed=1)
    results += [("self", "main", "main", 1, 9)]            # self-play: recorded, not rated
    for i in range(0, len(results), 37):
        store.record(results[i:i + 37])
    stored = store.ratings()
    assert store.recompute_ratings() == stored                                 # exactly, not approximately
    assert stored["main"] != DEFAULT_RATING
    assert sum(s.games for s in store.leaderboard()) == 2 * 400
    board = store.leaderboard()
    assert [s.ordinal for s in board] == sorted((s.mu - 3 * s.sigma for s in board), reverse=True)
    # the payoff rebuilt from the store equals the one kept along the way
    kept = Payoff()
    for _, a, b, score, _ in results:
        kept.update(a, b, score)
    rebuilt = Payoff.from_matches(store.matches())
    np.testing.assert_array_equal(rebuilt.matrix(names), kept.matrix(names))


def test_newer_schema_is_refused_unchanged(store, tmp_path):
    store.record([("g1", "main", "random", 1, 10)])
    store.close()
    conn = sqlite3.connect(tmp_path / DB_NAME)
    conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),))
    conn.commit()
    conn.close()
    before = snapshot_files(tmp_path)
    with pytest.raises(LeagueError, match="newer arena"):
        LeagueStore.open(tmp_path, ARENA)
    with pytest.raises(LeagueError, match="newer arena"):
        LeagueStore.open(tmp_path, ARENA, create=True)
    assert snapshot_files(tmp_path) == before


def test_newer_schema_with_a_live_log_is_refused_unchanged(store, tmp_path):
    # another process holds the league open, its last commit still in the -wal file
    conn = sqlite3.connect(tmp_path / DB_NAME)
    conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    conn.commit()
    before = snapshot_files(tmp_path)
    assert before[DB_NAME + "-wal"]
    with pytest.raises(LeagueError, match="schema 99"):
        LeagueStore.open(tmp_path, ARENA)
    assert snapshot_files(tmp_path)[DB_NAME] == before[DB_NAME]
    conn.close()


def test_other_arena_and_other_files_are_refused(store, tmp_path):
    store.close()
    before = snapshot_files(tmp_path)
    with pytest.raises(LeagueError, match="league of arena 'connect4', not 'battle'"):
        LeagueStore.open(tmp_path, "battle", create=True)
    assert snapshot_files(tmp_path) == before
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / DB_NAME).write_bytes(b"not a database, " * 100)
    with pytest.raises(LeagueError, match="not a readable league database"):
        LeagueStore.open(junk, ARENA)
    other = tmp_path / "other.db"
    raw(other, "CREATE TABLE t (x)")
    with pytest.raises(LeagueError, match="not a league database"):
        LeagueStore.open(other, ARENA, create=True)
    # an empty file (a creation killed before its first commit) becomes a league with create
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / DB_NAME).touch()
    with pytest.raises(LeagueError, match="no league"):
        LeagueStore.open(empty, ARENA)
    LeagueStore.open(empty, ARENA, create=True).close()


def test_members(store, tmp_path):
    with pytest.raises(LeagueError, match="unknown league member kind 'wizard'"):
        store.add_member("merlin", "wizard")
    with pytest.raises(LeagueError, match="already has a member named 'main'"):
        store.add_member("main", FIXED)
    with pytest.raises(LeagueError, match="add_snapshot"):
        store.add_member("s", SNAPSHOT)
    for bad in ("", ".hidden", "a/b", "two words", "x" * 200):
        with pytest.raises(LeagueError, match="bad member name"):
            store.add_member(bad, FIXED)
    with pytest.raises(LeagueError, match="no member named 'ghost'"):
        store.member("ghost")
    store.set_steps({"main": 1234})
    assert store.member("main").steps == 1234
    with pytest.raises(LeagueError, match="fixed"):
        store.set_steps({"random": 5})
    store.set_active("greedy", False)
    assert [m.name for m in store.members(active_only=True)] == ["main", "exploiter", "random"]
    # a custom agent's file is refused once it changes
    bot = tmp_path / "my_bot.py"
    bot.write_text("class Sniper: ...\n")
    m = store.add_member("sniper", FIXED, spec={"agent": "./my_bot.py:Sniper"}, path=bot)
    assert m.sha256 == hashlib.sha256(bot.read_bytes()).hexdigest() and m.path == str(bot)
    store.verify_file("sniper")
    bot.write_text("class Sniper: pass  # changed\n")
    with pytest.raises(LeagueError, match="changed since it joined"):
        store.verify_file("sniper")
    bot.unlink()
    with pytest.raises(LeagueError, match="missing"):
        store.verify_file("sniper")


def test_snapshots(store, tmp_path):
    s = store.add_snapshot("main", "main@1", b"weights-1", steps=500)
    target = tmp_path / "snapshots" / "main@1"
    assert (s.kind, s.parent, s.steps, s.path) == (SNAPSHOT, "main", 500, str(target))
    assert target.read_bytes() == b"weights-1" and s.sha256 == hashlib.sha256(b"weights-1").hexdigest()
    assert [p.name for p in target.parent.iterdir()] == ["main@1"]          # no temporary file left
    assert store.member("main@1").active and store.ratings()["main@1"] == DEFAULT_RATING
    # a checkpoint folder written by someone else (agents.checkpoint's layout) is fsynced and hashed
    ckpt = tmp_path / "snapshots" / "main@2"
    (ckpt / "ckpt-000001").mkdir(parents=True)
    (ckpt / "ckpt-000001" / "policy.safetensors").write_bytes(b"\x00" * 64)
    (ckpt / "checkpoint.json").write_text('{"latest": "ckpt-000001"}')
    s2 = store.add_snapshot("main", "main@2", ckpt, steps=900)
    assert s2.sha256 == content_sha256(ckpt) and s2.path == str(ckpt)
    assert store.member("main@2").path == str(ckpt)
    assert raw(tmp_path / DB_NAME, "SELECT path FROM members WHERE name = 'main@2'") == [("snapshots/main@2",)]
    store.verify_file("main@2")
    (ckpt / "ckpt-000001" / "policy.safetensors").write_bytes(b"\x01" * 64)
    with pytest.raises(LeagueError, match="changed"):
        store.verify_file("main@2")
    with pytest.raises(LeagueError, match="only learning members"):
        store.add_snapshot("random", "random@1", b"x", steps=0)
    with pytest.raises(LeagueError, match="already has a member"):
        store.add_snapshot("main", "main@1", b"other", steps=600)
    assert target.read_bytes() == b"weights-1"
    with pytest.raises(LeagueError, match="does not exist"):
        store.add_snapshot("main", "main@3", tmp_path / "missing", steps=1)
    assert not store.has_member("main@3")


def wait_for_line(proc: subprocess.Popen, timeout: float) -> str:
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    if not ready:
        proc.kill()
        pytest.fail(f"the recording helper said nothing in {timeout} s: {proc.stderr.read()}")
    return proc.stdout.readline().strip()


def test_kill_9_at_random_moments(store, tmp_path):
    store.close()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    rng = random.Random(20240611)
    count = 0
    for round_ in range(5):
        proc = subprocess.Popen([sys.executable, str(HELPER), str(tmp_path), ARENA, f"r{round_}"], cwd=ROOT, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            line = wait_for_line(proc, 30)
            assert line == "recorded", proc.stderr.read()
            time.sleep(rng.uniform(0.0, 0.3))
            proc.send_signal(signal.SIGKILL)
        finally:
            proc.kill()
            proc.wait()
            proc.stdout.close()
            proc.stderr.close()
        with LeagueStore.open(tmp_path, ARENA) as s:
            assert s.integrity_ok()
            now = s.match_count()
            assert now > count, "the count of matches only grows, and each round committed a batch"
            count = now
            ids = [m.id for m in s.matches()]
            assert len(ids) == len(set(ids)) == now
            assert s.recompute_ratings() == s.ratings()
            rated = {}
            for m in s.matches():
                for name in {m.a, m.b}:
                    rated[name] = rated.get(name, 0) + 1
            assert {r.name: r.games for r in s.leaderboard() if r.games} == rated
            last = {}
            for h in s.rating_history():
                last[h.name] = (h.mu, h.sigma)
            assert last == {n: r for n, r in s.ratings().items() if n in rated}, "history ends at the ratings"
            for m in s.members():
                if m.kind == SNAPSHOT:
                    s.verify_file(m.name)        # every snapshot row has its whole file
            steps = s.member("main").steps
            assert steps % 100 == 0


def test_the_written_out_rating_update_is_openskills_plackett_luce():
    """``store.rate`` spells out PlackettLuce for two one-player teams (for speed): it must agree with
    openskill's own ``rate`` on random ratings, wins, losses and draws."""
    import random

    from openskill.models import PlackettLuce

    from server.league.store import rate

    model, rng = PlackettLuce(), random.Random(3)
    for _ in range(2000):
        a, b = (rng.uniform(-20, 70), rng.uniform(0.05, 12)), (rng.uniform(-20, 70), rng.uniform(0.05, 12))
        score = rng.choice([0.0, 0.5, 1.0])
        ranks = [1, 2] if score == 1.0 else [2, 1] if score == 0.0 else [1, 1]
        (ra,), (rb,) = model.rate([[model.rating(mu=a[0], sigma=a[1])], [model.rating(mu=b[0], sigma=b[1])]],
                                  ranks=ranks)
        (ma, sa), (mb, sb) = rate(a, b, score)
        assert abs(ma - ra.mu) < 1e-12 and abs(sa - ra.sigma) < 1e-12
        assert abs(mb - rb.mu) < 1e-12 and abs(sb - rb.sigma) < 1e-12


def test_a_removed_snapshot_file_is_marked_first_and_passes_the_check(store, tmp_path):
    store.add_snapshot("main", "main-s1", b"weights", 10)
    path = Path(store.member("main-s1").path)
    assert path.exists()
    store.remove_file("main-s1")
    m = store.member("main-s1")
    assert not path.exists() and not m.active and m.spec["removed"] is True
    store.verify_file("main-s1")                       # removed on purpose: not a missing file
    with pytest.raises(LeagueError, match="only snapshots"):
        store.remove_file("random")
