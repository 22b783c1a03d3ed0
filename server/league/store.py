"""The league's records: members, matches and ratings in one SQLite file, ``DIR/league.db``.

Everything a later run reads is written whole or not at all:

- The database runs in WAL mode with ``synchronous=NORMAL``. In WAL mode a transaction is in the log
  when ``COMMIT`` returns, so a process killed at any moment (``kill -9``) loses at most the transaction
  it was in, never a committed one, and never leaves half of one. NORMAL skips the fsync at each commit
  (it fsyncs at checkpoints): after a power cut or an OS crash the last few commits may be rolled back,
  but the file is still consistent (the SQLite documentation, "WAL mode ... synchronous=NORMAL").
  FULL would make each batch durable across power cuts too, at one fsync per batch; what a power cut can
  lose here is a few batches of ratings and the newest member rows, which the next run plays again.
- ``record`` commits a whole batch of results in one transaction: the matches (each with its caller's
  unique id; an id already present is skipped, so a batch sent twice counts once), the players' new
  openskill ratings and the rating history.
- A snapshot's file exists and is fsynced before the row that names it is committed (``add_snapshot``):
  a crash in between leaves a file that no row names, never a row without its file.

Tables (schema version ``SCHEMA_VERSION``; ``meta`` holds it, the arena and the league's config):

| table          | one row per                    | columns                                                    |
| -------------- | ------------------------------ | ---------------------------------------------------------- |
| meta           | setting                        | key, value                                                 |
| members        | member                         | name, kind, parent, path, sha256, spec (JSON), steps,      |
|                |                                | created_at, active                                         |
| matches        | finished match                 | seq (insertion order), id (unique, the caller's), a, b,    |
|                |                                | score (a's: 1, 0.5, 0), length, created_at                 |
| ratings        | member                         | name, mu, sigma, games (rated games)                       |
| rating_history | player of a rated match        | seq (the match's), name, mu, sigma, wall (time.time())     |

Ratings are openskill's Plackett-Luce (Weng and Lin 2011): each match is two teams of one player, a draw
two equal ranks; a member starts at openskill's default (mu 25, sigma 25/3). The leaderboard orders by the
ordinal ``mu - 3 sigma``, a rating the member exceeds with about 99.9% confidence. A member's matches
against itself (one learner's self-play) are recorded but not rated. ``recompute_ratings`` replays the
matches in order with the same arithmetic, so it equals the stored ratings exactly.

Opening checks before it writes anything: a database whose schema is newer than this code's, or that
belongs to another arena, is refused with a ``LeagueError`` and left byte for byte as it was.
"""
from __future__ import annotations

import hashlib
import json
import math
import operator
import os
import re
import shutil
import sqlite3
import time
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, NamedTuple, Sequence

from openskill.models import PlackettLuce

from agents.checkpoint import fsync_path

from . import LEARNING_KINDS, SNAPSHOT, LeagueError, Member, check_kind
from .payoff import check_score

#: the version of the tables below; a database with a newer one is refused
SCHEMA_VERSION = 1
DB_NAME = "league.db"
#: where ``add_snapshot`` writes snapshot files given as bytes, under the league folder
SNAPSHOTS = "snapshots"
#: see the module docstring: safe against a killed process in WAL mode; a power cut may roll back the last commits
SYNCHRONOUS = "NORMAL"
#: how long a writer waits for another connection's lock before giving up (a reader never blocks it in WAL)
BUSY_TIMEOUT_S = 10.0
#: the ordinal is ``mu - ORDINAL_Z * sigma`` (openskill's default ``ordinal()``)
ORDINAL_Z = 3.0
#: a member name: printable, no whitespace or path separator, not starting with a dot (it may name a file)
_NAME = re.compile(r"^[^\s/\\.][^\s/\\]{0,127}$")
_MAX_MATCH_ID = 200

_SCHEMA = (
    """CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)""",
    """CREATE TABLE members (
        name TEXT PRIMARY KEY,
        kind TEXT NOT NULL CHECK (kind IN ('main', 'main_exploiter', 'league_exploiter', 'snapshot', 'fixed')),
        parent TEXT REFERENCES members(name),
        path TEXT,
        sha256 TEXT,
        spec TEXT NOT NULL DEFAULT '{}',
        steps INTEGER NOT NULL DEFAULT 0,
        created_at REAL NOT NULL,
        active INTEGER NOT NULL DEFAULT 1)""",
    # seq is SQLite's autoincrement key (never reused), so it is the order results were recorded in
    """CREATE TABLE matches (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        a TEXT NOT NULL REFERENCES members(name),
        b TEXT NOT NULL REFERENCES members(name),
        score REAL NOT NULL CHECK (score IN (0.0, 0.5, 1.0)),
        length INTEGER NOT NULL,
        created_at REAL NOT NULL)""",
    """CREATE TABLE ratings (
        name TEXT PRIMARY KEY REFERENCES members(name),
        mu REAL NOT NULL,
        sigma REAL NOT NULL,
        games INTEGER NOT NULL DEFAULT 0)""",
    """CREATE TABLE rating_history (
        seq INTEGER NOT NULL,
        name TEXT NOT NULL,
        mu REAL NOT NULL,
        sigma REAL NOT NULL,
        wall REAL NOT NULL,
        PRIMARY KEY (seq, name))""",
    """CREATE INDEX rating_history_by_name ON rating_history (name, seq)""",
)

#: one result as ``record`` takes it: (match id, a, b, a's score 1/0.5/0, length in steps)
Result = tuple[str, str, str, float, int]


class MatchRecord(NamedTuple):
    """One recorded match."""

    seq: int
    id: str
    a: str
    b: str
    score: float
    length: int
    created_at: float


class Standing(NamedTuple):
    """One row of the leaderboard."""

    name: str
    kind: str
    mu: float
    sigma: float
    ordinal: float
    games: int
    active: bool


class HistoryRow(NamedTuple):
    """A player's rating after the match ``seq`` (for ratings.png)."""

    seq: int
    name: str
    mu: float
    sigma: float
    wall: float


# -- ratings -----------------------------------------------------------------------------------------
_MODEL = PlackettLuce()
#: a new member's rating: openskill's default
DEFAULT_RATING = (float(_MODEL.rating().mu), float(_MODEL.rating().sigma))


def ordinal(mu: float, sigma: float) -> float:
    """The leaderboard's key: ``mu - 3 sigma``."""
    return mu - ORDINAL_Z * sigma


#: openskill's PlackettLuce constants (its defaults: beta = 25/6, kappa = 1e-4, tau = 25/300)
_BETA2, _KAPPA, _TAU2 = float(_MODEL.beta) ** 2, float(_MODEL.kappa), float(_MODEL.tau) ** 2


def rate(a: tuple[float, float], b: tuple[float, float], score: float) -> tuple[tuple[float, float], tuple[float, float]]:
    """The new ``(mu, sigma)`` of ``a`` and ``b`` after a match that ``a`` scored ``score`` in (1, 0.5, 0):
    openskill's Plackett-Luce (Weng and Lin 2011, algorithm 4, with openskill's defaults: tau added to
    each sigma first, gamma = sigma / c) for two teams of one player, a draw as equal ranks.

    Written out for this case because a league rates thousands of matches a second: ``_MODEL.rate`` costs
    about 230 us a match here (rating objects with uuids, deep copies), this about 3 us.
    ``tests/league/test_store.py`` checks it against ``PlackettLuce.rate`` on random ratings (equal within
    1e-12)."""
    (mu_a, s_a), (mu_b, s_b) = a, b
    va, vb = s_a * s_a + _TAU2, s_b * s_b + _TAU2
    c2 = va + vb + 2.0 * _BETA2
    c = math.sqrt(c2)
    ea, eb = math.exp(mu_a / c), math.exp(mu_b / c)
    pa, pb = ea / (ea + eb), eb / (ea + eb)
    if score == 1.0:          # a ranked first: a's sum over itself; b's over a (and itself, which adds 0)
        oa, ob = 1.0 - pa, -pb
        da, db = pa * (1.0 - pa), pb * (1.0 - pb)
    elif score == 0.0:
        oa, ob = -pa, 1.0 - pb
        da, db = pa * (1.0 - pa), pb * (1.0 - pb)
    else:                     # tied: each sums over both, halved (two teams share the rank)
        oa, ob = ((1.0 - pa) - pa) / 2.0, ((1.0 - pb) - pb) / 2.0
        da, db = pa * (1.0 - pa), pb * (1.0 - pb)
    out = []
    for mu, v, omega, delta in ((mu_a, va, oa, da), (mu_b, vb, ob, db)):
        sd = math.sqrt(v)
        delta = delta * v / c2 * (sd / c)
        out.append((mu + v / c * omega, sd * math.sqrt(max(1.0 - delta, _KAPPA))))
    return out[0], out[1]


# -- files ---------------------------------------------------------------------------------------------
def content_sha256(path: str | os.PathLike) -> str:
    """sha256 of a file's bytes; of a folder: of the lines ``RELPATH NUL SHA256`` of its files, sorted."""
    path = Path(path)
    if path.is_file():
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        return h.hexdigest()
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file())
        lines = "".join(f"{p.relative_to(path).as_posix()}\0{content_sha256(p)}\n" for p in files)
        return hashlib.sha256(lines.encode()).hexdigest()
    raise LeagueError(f"{path} does not exist")


_fsync = fsync_path


def _fsync_tree(path: Path) -> None:
    """Make a file or folder and its entry in its parent durable (fsync every file and folder)."""
    if path.is_dir():
        for root, _dirs, files in os.walk(path):
            for name in files:
                _fsync(Path(root) / name)
            _fsync(Path(root), directory=True)
    else:
        _fsync(path)
    _fsync(path.parent, directory=True)


def _write_atomic(path: Path, data: bytes) -> None:
    """``data`` into ``path``: a temporary file in the same folder, fsynced, renamed, the folder fsynced."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync(path.parent, directory=True)


def _check_name(name: Any, what: str = "member name") -> str:
    if not isinstance(name, str) or not _NAME.match(name) or not name.isprintable():
        raise LeagueError(f"bad {what} {name!r}: 1 to 128 printable characters, no spaces or slashes, "
                          f"not starting with a dot")
    return name


def _db_path(path: str | os.PathLike) -> Path:
    path = Path(path)
    return path if path.suffix == ".db" and not path.is_dir() else path / DB_NAME


def _peek(db: Path, arena: str) -> bool:
    """Check an existing database without writing to it; True when it holds no table yet (its creation
    was interrupted before the first commit)."""
    wal = db.with_name(db.name + "-wal")
    # with no log beside it the file is the whole database: read it as immutable, creating no -wal/-shm
    uri = db.resolve().as_uri() + ("?mode=ro" if wal.exists() else "?mode=ro&immutable=1")
    try:
        conn = sqlite3.connect(uri, uri=True)
        try:
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            meta = dict(conn.execute("SELECT key, value FROM meta")) if "meta" in tables else None
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        raise LeagueError(f"{db} is not a readable league database ({exc})") from None
    if not tables:
        return True
    if meta is None or "schema_version" not in meta:
        raise LeagueError(f"{db} is not a league database (it has no league meta table)")
    try:
        version = int(meta["schema_version"])
    except ValueError:
        raise LeagueError(f"{db}: bad schema_version {meta['schema_version']!r}") from None
    if version > SCHEMA_VERSION:
        raise LeagueError(f"{db} was written by a newer arena (league schema {version}; this version reads "
                          f"up to {SCHEMA_VERSION}); upgrade arena to open it. Nothing was changed.")
    if version < SCHEMA_VERSION:
        raise LeagueError(f"{db} has league schema {version}, which this version cannot migrate "
                          f"(it reads {SCHEMA_VERSION})")
    if meta.get("arena") != arena:
        raise LeagueError(f"{db} is the league of arena {meta.get('arena')!r}, not {arena!r}; "
                          f"choose another folder for a {arena} league. Nothing was changed.")
    return False


def arena_of(path: str | os.PathLike) -> str:
    """The arena of the league at ``path`` (folder or ``.db``), read without writing; ``LeagueError`` when
    there is no league there."""
    db = _db_path(path)
    if not db.exists():
        raise LeagueError(f"no league at {db}")
    wal = db.with_name(db.name + "-wal")
    uri = db.resolve().as_uri() + ("?mode=ro" if wal.exists() else "?mode=ro&immutable=1")
    try:
        conn = sqlite3.connect(uri, uri=True)
        try:
            row = conn.execute("SELECT value FROM meta WHERE key = 'arena'").fetchone()
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        raise LeagueError(f"{db} is not a readable league database ({exc})") from None
    if row is None:
        raise LeagueError(f"{db} is not a league database")
    return str(row[0])


class LeagueStore:
    """The league's SQLite records (see the module docstring). Open with ``LeagueStore.open``.

    One process writes (the league); others may read at the same time (WAL readers never block).
    """

    def __init__(self, conn: sqlite3.Connection, db: Path, arena: str):
        self._db = conn
        self.path = db
        self.folder = db.parent
        self.arena = arena

    # -- opening ---------------------------------------------------------------------------------------
    @classmethod
    def open(cls, path: str | os.PathLike, arena: str, create: bool = False) -> "LeagueStore":
        """The league at ``path`` (a folder, which holds ``league.db``, or a ``.db`` file) for ``arena``.

        ``create``: make a new league when there is none. An existing one is checked before anything is
        written: a newer schema or another arena raises ``LeagueError`` and leaves the file unchanged.
        """
        db = _db_path(path)
        fresh = _peek(db, arena) if db.exists() else True
        if fresh and not create:
            raise LeagueError(f"no league at {db}" + (" (the file holds no table)" if db.exists() else ""))
        db.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(db, isolation_level=None, timeout=BUSY_TIMEOUT_S)
        try:
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise LeagueError(f"{db}: SQLite cannot use WAL mode here (journal_mode is {mode}); "
                                  f"put the league on a local file system")
            conn.execute(f"PRAGMA synchronous={SYNCHRONOUS}")
            conn.execute("PRAGMA foreign_keys=ON")
            store = cls(conn, db, arena)
            if fresh:
                store._create()
        except BaseException:
            conn.close()
            raise
        return store

    def _create(self) -> None:
        with self._transaction() as db:
            if db.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table'").fetchone()[0]:
                raise LeagueError(f"{self.path} was created by another process meanwhile; open it again")
            for statement in _SCHEMA:
                db.execute(statement)
            db.executemany("INSERT INTO meta (key, value) VALUES (?, ?)",
                           [("schema_version", str(SCHEMA_VERSION)), ("arena", self.arena),
                            ("created_at", repr(time.time())), ("config", "{}")])

    def _transaction(self) -> "_Transaction":
        return _Transaction(self._db)

    def close(self) -> None:
        """Close the database (committed work is already safe; this only releases the file)."""
        self._db.close()

    def __enter__(self) -> "LeagueStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def integrity_ok(self) -> bool:
        """SQLite's own check of the file (``PRAGMA integrity_check``)."""
        return [tuple(r) for r in self._db.execute("PRAGMA integrity_check")] == [("ok",)]

    # -- the league's config -----------------------------------------------------------------------------
    def config(self) -> dict:
        """The league's settings as the run that created it stored them (``set_config``)."""
        return json.loads(self._db.execute("SELECT value FROM meta WHERE key = 'config'").fetchone()[0])

    def set_config(self, config: Mapping[str, Any]) -> None:
        """Store the league's settings (JSON-compatible), so that a resumed run uses the same."""
        text = _json(config, "the league config")
        with self._transaction() as db:
            db.execute("UPDATE meta SET value = ? WHERE key = 'config'", (text,))

    # -- members ---------------------------------------------------------------------------------------
    def add_member(self, name: str, kind: str, *, spec: Mapping[str, Any] | None = None,
                   path: str | os.PathLike | None = None, steps: int = 0) -> Member:
        """A new learning or fixed member (snapshots come from ``add_snapshot``).

        ``spec`` says how to build it (JSON-compatible); ``path`` is its file or folder if it has one (a
        custom agent's file, a main agent's starting checkpoint): its sha256 is kept, and ``verify_file``
        refuses the member once the content changes.
        """
        check_kind(kind)
        if kind == SNAPSHOT:
            raise LeagueError("snapshots join with add_snapshot (they need a parent and a file)")
        _check_name(name)
        sha = stored = None
        if path is not None:
            path = Path(path)
            if not path.exists():
                raise LeagueError(f"member {name!r}: {path} does not exist")
            sha, stored = content_sha256(path), self._relative(path)
        return self._insert(name, kind, None, stored, sha, spec, steps)

    def add_snapshot(self, parent: str, name: str, src: bytes | str | os.PathLike, steps: int, *,
                     spec: Mapping[str, Any] | None = None) -> Member:
        """Freeze ``parent`` (a learning member) as the snapshot ``name``, taken at ``steps`` of its steps.

        ``src`` is either the snapshot's bytes, which are written to ``DIR/snapshots/NAME`` (a temporary
        file in that folder, fsynced and renamed, the folder fsynced), or the path of a file or folder
        already written, typically a checkpoint that ``agents.checkpoint.write`` made in
        ``DIR/snapshots/NAME`` (itself written to a temporary folder and renamed): it is fsynced here, file
        by file. Either way the file is durable before the row naming it is committed; its sha256
        (``content_sha256``) is kept.
        """
        owner = self.member(parent)
        if owner.kind not in LEARNING_KINDS:
            raise LeagueError(f"{parent!r} is a {owner.kind} member; only learning members are snapshotted")
        _check_name(name, "snapshot name")
        if self.has_member(name):
            raise LeagueError(f"the league already has a member named {name!r}")
        if isinstance(src, (bytes, bytearray, memoryview)):
            target = self.folder / SNAPSHOTS / name
            target.parent.mkdir(parents=True, exist_ok=True)
            _write_atomic(target, bytes(src))     # a leftover of a crash before its row is replaced whole
            sha = hashlib.sha256(src).hexdigest()
        else:
            target = Path(src)
            if not target.exists():
                raise LeagueError(f"snapshot {name!r}: {target} does not exist")
            _fsync_tree(target)
            sha = content_sha256(target)
        return self._insert(name, SNAPSHOT, parent, self._relative(target), sha, spec, steps)

    def _insert(self, name: str, kind: str, parent: str | None, path: str | None, sha: str | None,
                spec: Mapping[str, Any] | None, steps: int) -> Member:
        spec_text = _json(spec or {}, f"member {name!r}'s spec")
        if int(steps) < 0:
            raise LeagueError(f"member {name!r}: steps must be >= 0, got {steps}")
        with self._transaction() as db:
            if db.execute("SELECT 1 FROM members WHERE name = ?", (name,)).fetchone():
                raise LeagueError(f"the league already has a member named {name!r}")
            db.execute("INSERT INTO members (name, kind, parent, path, sha256, spec, steps, created_at, active) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1)",
                       (name, kind, parent, path, sha, spec_text, int(steps), time.time()))
            db.execute("INSERT INTO ratings (name, mu, sigma, games) VALUES (?, ?, ?, 0)", (name, *DEFAULT_RATING))
        return self.member(name)

    def _relative(self, path: Path) -> str:
        """``path`` relative to the league folder when inside it (the folder may move), else absolute."""
        path = Path(path).resolve()
        try:
            return path.relative_to(self.folder.resolve()).as_posix()
        except ValueError:
            return str(path)

    def _member(self, row: sqlite3.Row | tuple) -> Member:
        name, kind, parent, path, sha, spec, steps, created_at, active = row
        if path is not None and not Path(path).is_absolute():
            path = str(self.folder / path)
        return Member(name=name, kind=kind, parent=parent, path=path, sha256=sha, spec=json.loads(spec),
                      steps=int(steps), created_at=float(created_at), active=bool(active))

    _MEMBER_COLUMNS = "name, kind, parent, path, sha256, spec, steps, created_at, active"

    def has_member(self, name: str) -> bool:
        return self._db.execute("SELECT 1 FROM members WHERE name = ?", (name,)).fetchone() is not None

    def member(self, name: str) -> Member:
        """The member ``name``; ``LeagueError`` if there is none."""
        row = self._db.execute(f"SELECT {self._MEMBER_COLUMNS} FROM members WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise LeagueError(f"the league has no member named {name!r}")
        return self._member(row)

    def members(self, active_only: bool = False) -> list[Member]:
        """Every member (or only the active ones), in the order they joined."""
        where = " WHERE active = 1" if active_only else ""
        rows = self._db.execute(f"SELECT {self._MEMBER_COLUMNS} FROM members{where} ORDER BY rowid")
        return [self._member(row) for row in rows]

    def set_steps(self, steps: Mapping[str, int]) -> None:
        """Set learning members' step counts (``{name: steps}``), in one transaction."""
        with self._transaction() as db:
            self._set_steps(db, steps)

    def _set_steps(self, db: sqlite3.Connection, steps: Mapping[str, int]) -> None:
        for name, count in steps.items():
            if int(count) < 0:
                raise LeagueError(f"member {name!r}: steps must be >= 0, got {count}")
            kind = db.execute("SELECT kind FROM members WHERE name = ?", (name,)).fetchone()
            if kind is None:
                raise LeagueError(f"the league has no member named {name!r}")
            if kind[0] not in LEARNING_KINDS:
                raise LeagueError(f"{name!r} is a {kind[0]} member; its steps are fixed")
            db.execute("UPDATE members SET steps = ? WHERE name = ?", (int(count), name))

    def set_active(self, name: str, active: bool) -> None:
        """Take a member out of matchmaking (``False``) or back in; its records stay."""
        with self._transaction() as db:
            if db.execute("UPDATE members SET active = ? WHERE name = ?", (int(bool(active)), name)).rowcount != 1:
                raise LeagueError(f"the league has no member named {name!r}")

    def remove_file(self, name: str) -> None:
        """Retire snapshot ``name`` and mark its file removed (committed first, then the file goes: a crash
        between the two leaves a file nobody reads, never a row whose file is missing)."""
        m = self.member(name)
        if m.kind != SNAPSHOT:
            raise LeagueError(f"{name!r} is a {m.kind} member; only snapshots' files are removed")
        with self._transaction() as db:
            db.execute("UPDATE members SET active = 0, spec = ? WHERE name = ?",
                       (_json({**m.spec, "removed": True}, "spec"), name))
        if m.path is not None and Path(m.path).is_dir():
            shutil.rmtree(m.path, ignore_errors=True)
        elif m.path is not None:
            Path(m.path).unlink(missing_ok=True)

    def verify_file(self, name: str) -> None:
        """Check that member ``name``'s file (if it has one) still has the content it joined with;
        ``LeagueError`` if it is missing or changed. A snapshot whose file was removed on purpose
        (``remove_file``) passes."""
        m = self.member(name)
        if m.path is None or m.spec.get("removed"):
            return
        if not Path(m.path).exists():
            raise LeagueError(f"member {name!r}: its file {m.path} is missing")
        now = content_sha256(m.path)
        if now != m.sha256:
            raise LeagueError(f"member {name!r}: {m.path} changed since it joined the league (sha256 "
                              f"{now[:12]}…, recorded {str(m.sha256)[:12]}…); restore it or add it under "
                              f"a new name")

    # -- matches and ratings ---------------------------------------------------------------------------
    def record(self, results: Iterable[Sequence[Any]], steps: Mapping[str, int] | None = None) -> int:
        """Record a batch of results ``(match_id, a, b, score, length)`` in one transaction; returns how
        many were new.

        ``score`` is ``a``'s: 1 win, 0.5 draw, 0 loss. A ``match_id`` already recorded (in an earlier
        batch or earlier in this one) is skipped. Each new match updates both players' ratings; the rating
        history gets one row per player the batch rated, after its last match (a league records thousands of
        matches a second: a row per match would be most of the file). ``steps`` (``{learner: steps}``) are stored in the same
        transaction. The whole batch is checked first: an unknown member or a bad score raises
        ``LeagueError`` and records nothing.
        """
        batch = [self._checked(r) for r in results]
        known = {row[0] for row in self._db.execute("SELECT name FROM members")}
        unknown = sorted({n for _, a, b, _, _ in batch for n in (a, b)} - known)
        if unknown:
            raise LeagueError(f"results name members the league does not have: {', '.join(map(repr, unknown))}")
        now = time.time()
        new = 0
        with self._transaction() as db:
            ratings: dict[str, list] = {}            # name -> [mu, sigma, games], this batch's working copy
            ids = [r[0] for r in batch]
            seen: set[str] = set()
            for i in range(0, len(ids), 500):        # ids recorded before: skipped (a re-sent batch)
                chunk = ids[i:i + 500]
                seen.update(row[0] for row in db.execute(
                    f"SELECT id FROM matches WHERE id IN ({','.join('?' * len(chunk))})", chunk))
            fresh = []
            for r in batch:
                if r[0] not in seen:
                    seen.add(r[0])
                    fresh.append(r)
            db.executemany("INSERT INTO matches (id, a, b, score, length, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                           [(*r, now) for r in fresh])       # seq follows this order: the order rated below
            new = len(fresh)
            last_seq = db.execute("SELECT max(seq) FROM matches").fetchone()[0] or 0
            for match_id, a, b, score, length in fresh:
                if a == b:
                    continue
                for name in (a, b):
                    if name not in ratings:
                        ratings[name] = list(db.execute("SELECT mu, sigma, games FROM ratings WHERE name = ?",
                                                        (name,)).fetchone())
                ra, rb = rate(tuple(ratings[a][:2]), tuple(ratings[b][:2]), score)
                for name, (mu, sigma) in ((a, ra), (b, rb)):
                    ratings[name][:] = [mu, sigma, ratings[name][2] + 1]
            history = [(last_seq, name, r[0], r[1], now) for name, r in ratings.items()]
            db.executemany("UPDATE ratings SET mu = ?, sigma = ?, games = ? WHERE name = ?",
                           [(*r, name) for name, r in ratings.items()])
            db.executemany("INSERT INTO rating_history (seq, name, mu, sigma, wall) VALUES (?, ?, ?, ?, ?)", history)
            if steps:
                self._set_steps(db, steps)
        return new

    @staticmethod
    def _checked(result: Sequence[Any]) -> tuple[str, str, str, float, int]:
        try:
            match_id, a, b, score, length = result
        except (TypeError, ValueError):
            raise LeagueError(f"a result is (match_id, a, b, score, length), got {result!r}") from None
        if not isinstance(match_id, str) or not 0 < len(match_id) <= _MAX_MATCH_ID:
            raise LeagueError(f"a match id is a non-empty string of at most {_MAX_MATCH_ID} characters, "
                              f"got {match_id!r}")
        if not isinstance(a, str) or not isinstance(b, str):
            raise LeagueError(f"match {match_id}: players are member names, got {a!r} and {b!r}")
        try:
            steps = -1 if isinstance(length, bool) else operator.index(length)
        except TypeError:
            steps = -1
        if steps < 0:
            raise LeagueError(f"match {match_id}: length must be a count of steps >= 0, got {length!r}")
        return match_id, a, b, check_score(score), steps

    def matches(self) -> Iterator[MatchRecord]:
        """Every recorded match in the order it was recorded (what ``Payoff.from_matches`` replays)."""
        cur = self._db.execute("SELECT seq, id, a, b, score, length, created_at FROM matches ORDER BY seq")
        while rows := cur.fetchmany(4096):
            for row in rows:
                yield MatchRecord(*row)

    def match_count(self) -> int:
        return self._db.execute("SELECT count(*) FROM matches").fetchone()[0]

    def ratings(self) -> dict[str, tuple[float, float]]:
        """Every member's stored ``(mu, sigma)``."""
        return {name: (mu, sigma) for name, mu, sigma in self._db.execute("SELECT name, mu, sigma FROM ratings")}

    def recompute_ratings(self) -> dict[str, tuple[float, float]]:
        """The ratings rebuilt from the matches alone: every member from the default rating, every match
        replayed in ``seq`` order with the arithmetic of ``record``. Equal to ``ratings()`` exactly."""
        ratings = {m.name: DEFAULT_RATING for m in self.members()}
        for m in self.matches():
            if m.a != m.b:
                ratings[m.a], ratings[m.b] = rate(ratings[m.a], ratings[m.b], m.score)
        return ratings

    def leaderboard(self) -> list[Standing]:
        """Every member, best first by the ordinal ``mu - 3 sigma`` (ties by name)."""
        rows = self._db.execute("SELECT m.name, m.kind, r.mu, r.sigma, r.games, m.active "
                                "FROM members m JOIN ratings r ON r.name = m.name")
        table = [Standing(name, kind, mu, sigma, ordinal(mu, sigma), games, bool(active))
                 for name, kind, mu, sigma, games, active in rows]
        return sorted(table, key=lambda s: (-s.ordinal, s.name))

    def rating_history(self, name: str | None = None) -> list[HistoryRow]:
        """Ratings after each recorded batch (at its last match's ``seq``), in match order (one member's,
        or everyone's)."""
        if name is None:
            rows = self._db.execute("SELECT seq, name, mu, sigma, wall FROM rating_history ORDER BY seq, name")
        else:
            rows = self._db.execute("SELECT seq, name, mu, sigma, wall FROM rating_history WHERE name = ? "
                                    "ORDER BY seq", (name,))
        return [HistoryRow(*row) for row in rows]


def _json(obj: Any, what: str) -> str:
    try:
        return json.dumps(obj, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise LeagueError(f"{what} must be JSON-compatible ({exc})") from None


class _Transaction:
    """``with _Transaction(conn) as db:`` runs the block in one ``BEGIN IMMEDIATE`` transaction:
    committed when the block ends, rolled back if it raises."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.conn.execute("COMMIT")
        elif self.conn.in_transaction:           # SQLite may have rolled back already (a full disk, say)
            self.conn.execute("ROLLBACK")
