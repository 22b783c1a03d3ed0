"""Recording finished matches and playing them back, bit for bit, from their seed and actions alone.

A match is fully determined by the RNG state it started from (``game.match_rng``, see
``simcore.game``) and the actions played in it, so that is all a recording keeps; no video, no states.
``arena run ... --record DIR`` attaches a ``Recorder`` to the ``MatchRunner``; it records every game
the results table counts and writes one file when the run ends.

The file is a NumPy ``.npz`` (a zip of ``.npy`` arrays, loaded with ``allow_pickle=False``; nothing
is ever unpickled) holding M matches::

    header      uint8    UTF-8 JSON: format, version, arena, options (all of them, defaults included),
                         agents (names), seed, num_agents, num_teams, num_actions, stat_names
    actions     (sum T, A) int8 (int16/int32 for more actions): every match's actions, one after another;
                (sum T, A, K) float32 for continuous actions (header ``action_shape`` [K])
    offsets     (M + 1,) int64: match i's actions are rows offsets[i]:offsets[i + 1]
    match_rng   (M,) uint64: the RNG state match i started from
    slot        (M,) int32: the batch slot it was played in
    team_agent  (M, num_teams) int16: which agent (index into header.agents) played each team
    winner      (M,) int8: the recorded winning team, -1 a draw
    length      (M,) int32: steps played
    forfeit     (M,) bool: ended by a forfeit (the outcome is the runner's, not the rules')
    stats       (M, num_teams, K) float32: the arena's per-team episode statistics (0 for forfeits)

``load`` validates all of it (a foreign or damaged file is one ``ReplayError`` saying what is wrong).

A file is data and never chooses code to run: the arena its header names is built only when it is in
the registry (built-in arenas and installed entry points). A recording of a custom arena
(``module:Class`` or ``path/to/file.py:Class``) replays only when the user names the code on the
command line, ``arena replay FILE --arena SPEC`` (``load(path, arena=SPEC)``), or says they trust the
file, ``--trust``; otherwise ``Recording.new_game`` raises ``ReplayError`` naming both ways.

Replaying match i: ``game = spec.game(num_matches=1, auto_reset=False, **options)``,
``game.rng_states[0] = match_rng[i]``, ``game.reset_matches([0])``, then step the recorded actions;
``verify`` checks every match's winner, length and statistics against the recording. A forfeited
match is replayed move by move but its outcome is the recorded one (the rules did not decide it).
"""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

FORMAT = "arena-replay"
VERSION = 1
SUFFIX = ".npz"
ARRAYS = {  # name -> (allowed dtypes, ndim)
    "header": (("uint8",), 1),
    "actions": (("int8", "int16", "int32", "float32"), (2, 3)),
    "offsets": (("int64",), 1),
    "match_rng": (("uint64",), 1),
    "slot": (("int32",), 1),
    "team_agent": (("int16",), 2),
    "winner": (("int8",), 1),
    "length": (("int32",), 1),
    "forfeit": (("bool",), 1),
    "stats": (("float32",), 3),
}
#: the largest header accepted (JSON bytes)
MAX_HEADER_BYTES = 1 << 20


class ReplayError(ValueError):
    """A file that is not a valid recording, or a match that does not replay as recorded."""


def action_dtype(num_actions: int, continuous: bool = False) -> np.dtype:
    if continuous:
        return np.dtype(np.float32)
    return np.dtype(np.int8 if num_actions <= 127 else np.int16 if num_actions <= 32767 else np.int32)


# -- one match and a file of them -------------------------------------------------------------------
@dataclass
class MatchRecord:
    """One recorded match: everything needed to play it again."""

    arena: str
    options: dict
    agents: list[str]          # one name per team
    slot: int
    match_rng: int
    actions: np.ndarray        # (T, A)
    winner: int
    length: int
    forfeit: bool
    stats: np.ndarray          # (num_teams, K)


@dataclass
class Recording:
    """A file's worth of recorded matches (see the module docstring for the arrays)."""

    header: dict
    arrays: dict[str, np.ndarray]
    #: the arena to build, named by the user (``--arena``); None: the header's, if the registry has it
    arena_spec: str | None = None
    #: build the header's arena even when it is not in the registry (``--trust``)
    trust: bool = False

    @property
    def arena(self) -> str:
        return self.header["arena"]

    def check_arena(self) -> None:
        """Raise ``ReplayError`` when this recording's arena may not be built (before any work)."""
        _allowed(self.arena_spec or self.arena, self.trust or self.arena_spec is not None)

    def new_game(self):
        """A one-match game to replay this recording on (see the module docstring for which code)."""
        game = new_game(self.arena_spec or self.arena, self.options, trust=self.trust or self.arena_spec is not None)
        h = self.header
        if (game.num_agents, game.num_teams, game.num_actions) != (h["num_agents"], h["num_teams"], h["num_actions"]):
            raise ReplayError(f"cannot replay: the recording has {h['num_agents']} agents, {h['num_teams']} teams and "
                              f"{h['num_actions']} actions, the arena {game.num_agents}, {game.num_teams} and "
                              f"{game.num_actions}")
        return game

    @property
    def options(self) -> dict:
        return self.header["options"]

    @property
    def agents(self) -> list[str]:
        return self.header["agents"]

    def __len__(self) -> int:
        return int(self.arrays["slot"].shape[0])

    def match(self, i: int) -> MatchRecord:
        if not -len(self) <= i < len(self):
            raise IndexError(f"match {i} out of range: the recording holds {len(self)} matches (0..{len(self) - 1})")
        i %= len(self)
        a = self.arrays
        lo, hi = int(a["offsets"][i]), int(a["offsets"][i + 1])
        return MatchRecord(self.arena, dict(self.options), [self.agents[k] for k in a["team_agent"][i]],
                           int(a["slot"][i]), int(a["match_rng"][i]), a["actions"][lo:hi], int(a["winner"][i]),
                           int(a["length"][i]), bool(a["forfeit"][i]), a["stats"][i])

    def __iter__(self) -> Iterator[MatchRecord]:
        return (self.match(i) for i in range(len(self)))

    def save(self, path: str | Path) -> Path:
        """Write atomically (a temporary file in the same folder, fsynced, renamed)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        blob = json.dumps(self.header, sort_keys=True).encode()
        fd, tmp = tempfile.mkstemp(prefix=".recording-", suffix=SUFFIX, dir=path.parent)
        umask = os.umask(0)
        os.umask(umask)
        try:
            os.chmod(tmp, 0o666 & ~umask)     # as an ordinary file (mkstemp makes it private)
            with os.fdopen(fd, "wb") as fh:
                np.savez_compressed(fh, header=np.frombuffer(blob, dtype=np.uint8), **self.arrays)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        return path


def load(path: str | Path, arena: str | None = None, trust: bool = False) -> Recording:
    """Read and validate a recording; any problem is a ``ReplayError`` naming the file and the fault.
    ``arena``: the arena spec to replay with (the user's choice of code); ``trust``: build the arena the
    header names even outside the registry."""
    path = Path(path)

    def bad(why: str) -> ReplayError:
        return ReplayError(f"{path}: not a valid arena recording: {why}")

    if not path.is_file():
        raise ReplayError(f"{path}: no such file")
    try:
        z = np.load(path, allow_pickle=False)
        if not isinstance(z, np.lib.npyio.NpzFile):
            raise bad("a single .npy array, not an .npz recording")
        with z:
            names = set(z.files)
            if names != set(ARRAYS):
                missing, extra = sorted(set(ARRAYS) - names), sorted(names - set(ARRAYS))
                raise bad(f"arrays missing {missing}" + (f", unexpected {extra}" if extra else ""))
            arrays = {name: z[name] for name in ARRAYS}
    except ReplayError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise bad(f"{type(exc).__name__}: {exc}") from None
    for name, (dtypes, ndim) in ARRAYS.items():
        arr = arrays[name]
        if arr.dtype.name not in dtypes or arr.ndim not in (ndim if isinstance(ndim, tuple) else (ndim,)):
            raise bad(f"array {name!r} is {arr.dtype}{list(arr.shape)}, expected {ndim}-d {'/'.join(dtypes)}")
    raw = arrays.pop("header")
    if raw.size > MAX_HEADER_BYTES:
        raise bad(f"header of {raw.size} bytes")
    try:
        header = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise bad(f"header is not JSON ({exc})") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise bad(f"header format is not {FORMAT!r}")
    if header.get("version") != VERSION:
        raise bad(f"format version {header.get('version')!r}, this arena reads version {VERSION}")
    _check_header(header, bad)
    _check_arrays(header, arrays, bad)
    return Recording(header, arrays, arena_spec=arena, trust=trust)


def _check_header(h: dict, bad: Callable[[str], ReplayError]) -> None:
    types = {"arena": str, "options": dict, "agents": list, "num_agents": int, "num_teams": int,
             "num_actions": int, "stat_names": list}
    for key, kind in types.items():
        if not isinstance(h.get(key), kind) or isinstance(h.get(key), bool):
            raise bad(f"header field {key!r} must be a {kind.__name__}")
    if not h["agents"] or not all(isinstance(a, str) for a in h["agents"]):
        raise bad("header field 'agents' must name at least one agent")
    if not all(isinstance(s, str) for s in h["stat_names"]):
        raise bad("header field 'stat_names' must be strings")
    if h["num_agents"] < 1 or h["num_teams"] < 1 or h["num_actions"] < 1:
        raise bad("num_agents, num_teams and num_actions must be positive")


def _check_arrays(h: dict, a: dict[str, np.ndarray], bad: Callable[[str], ReplayError]) -> None:
    m = a["slot"].shape[0]
    for name in ("match_rng", "winner", "length", "forfeit"):
        if a[name].shape != (m,):
            raise bad(f"array {name!r} has shape {a[name].shape}, expected ({m},)")
    if a["offsets"].shape != (m + 1,):
        raise bad(f"array 'offsets' has shape {a['offsets'].shape}, expected ({m + 1},)")
    if a["team_agent"].shape != (m, h["num_teams"]):
        raise bad(f"array 'team_agent' has shape {a['team_agent'].shape}, expected ({m}, {h['num_teams']})")
    if a["stats"].shape != (m, h["num_teams"], len(h["stat_names"])):
        raise bad(f"array 'stats' has shape {a['stats'].shape}")
    if a["actions"].shape[1] != h["num_agents"]:
        raise bad(f"actions have {a['actions'].shape[1]} columns for {h['num_agents']} agents")
    shape = h.get("action_shape", [])
    if not isinstance(shape, list) or len(shape) > 1 or not all(isinstance(d, int) and 0 < d <= 1024 for d in shape) \
            or tuple(a["actions"].shape[2:]) != tuple(shape) or (a["actions"].dtype == np.float32) != bool(shape):
        raise bad(f"actions of shape {a['actions'].shape} and dtype {a['actions'].dtype} do not fit action_shape {shape}")
    off = a["offsets"]
    if off[0] != 0 or off[-1] != a["actions"].shape[0] or (np.diff(off) < 0).any():
        raise bad("offsets do not index the actions")
    if not np.array_equal(np.diff(off), a["length"]):
        raise bad("match lengths do not match their action counts")
    if m and (a["team_agent"].min() < 0 or a["team_agent"].max() >= len(h["agents"])):
        raise bad("team_agent names an agent the header does not list")
    if m and (a["winner"].min() < -1 or a["winner"].max() >= h["num_teams"]):
        raise bad("a winner is not a team")


# -- recording a run ---------------------------------------------------------------------------------
class Recorder:
    """Records every game a ``MatchRunner`` counts: attach after ``runner.reset`` and call
    ``on_step(runner, new_games)`` after every step (``MatchRunner.play``'s ``on_step``).

    Per step it copies the actions the game was stepped with (``game.actions``) into a per-slot
    buffer (``(N, T, A)``, grown when a match runs longer) and notes the RNG state of each match that
    starts; a match that is counted is cut out of the buffer. Matches already running when the
    recorder is attached are not recorded (their start is unknown).
    """

    def __init__(self, runner, arena: str | None = None, seed: int | None = None):
        game = runner.game
        n, a = game.num_matches, game.num_agents
        self.runner = runner
        self.header = {
            "format": FORMAT, "version": VERSION, "arena": arena or game.name,
            "options": _jsonable(dict(game.options)),      # all of them, defaults included
            "agents": list(runner.names), "seed": seed, "num_agents": a, "num_teams": game.num_teams,
            "num_actions": game.num_actions, "stat_names": list(game.stat_names),
            "action_shape": list(game.action_shape),
            "recorded": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        horizon = int(game.options.get("max_steps", 63)) + 1     # a first guess; grown when exceeded
        self._buf = np.zeros((n, horizon, a) + tuple(game.action_shape),
                             dtype=action_dtype(game.num_actions, game.continuous_actions))
        self._pos = np.zeros(n, dtype=np.int64)
        self._rows = np.arange(n)
        self._start_rng = game.match_rng.copy()
        self._known = game.step_count == 0       # slots whose current match we saw start
        # one tuple per recorded match, appended whole (an interrupted run still saves what it has)
        self._matches: list[tuple] = []

    def on_step(self, runner, new_games: int = 0) -> None:
        game = self.runner.game
        if self._pos.max() >= self._buf.shape[1]:
            grown = np.zeros((self._buf.shape[0], 2 * self._buf.shape[1]) + self._buf.shape[2:], self._buf.dtype)
            grown[:, : self._buf.shape[1]] = self._buf
            self._buf = grown
        self._buf[self._rows, self._pos] = game.actions
        self._pos += 1
        if new_games:
            if self.runner.last_counted[0].size != new_games:
                raise RuntimeError("the runner's last counted games are not this step's: call on_step after every step")
            self._take(*self.runner.last_counted)
        # a match ended (by the rules or a forfeit) where a new one starts or, without auto-reset, where
        # the episode is done
        ended = np.flatnonzero((game.step_count == 0) | game.episode_done)
        if ended.size:
            self._pos[ended] = 0
            self._start_rng[ended] = game.match_rng[ended]
            self._known[ended] = True

    def _take(self, slots: np.ndarray, winner: np.ndarray, length: np.ndarray, forfeit: np.ndarray) -> None:
        game = self.runner.game
        keep = self._known[slots] & (self._pos[slots] == length)
        for s, w, n, f in zip(slots[keep], winner[keep], length[keep], forfeit[keep]):
            stats = np.zeros_like(game.episode_stats[s]) if f else game.episode_stats[s].copy()
            self._matches.append((self._buf[s, :n].copy(), self._start_rng[s], s, self.runner.team_agent[s].copy(),
                                  w, n, f, stats))

    def __len__(self) -> int:
        return len(self._matches)

    def recording(self) -> Recording:
        game = self.runner.game
        m, t, k = len(self), game.num_teams, len(game.stat_names)
        cols = list(zip(*self._matches)) if m else [[]] * 8
        actions, rng, slot, team_agent, winner, length, forfeit, stats = cols
        lengths = np.asarray(length, dtype=np.int64)
        arrays = {
            "actions": np.concatenate(actions) if m else np.zeros((0,) + self._buf.shape[2:], self._buf.dtype),
            "offsets": np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
            "match_rng": np.asarray(rng, dtype=np.uint64).reshape(m),
            "slot": np.asarray(slot, dtype=np.int32).reshape(m),
            "team_agent": np.asarray(team_agent, dtype=np.int16).reshape(m, t),
            "winner": np.asarray(winner, dtype=np.int8).reshape(m),
            "length": lengths.astype(np.int32).reshape(m),
            "forfeit": np.asarray(forfeit, dtype=np.bool_).reshape(m),
            "stats": np.asarray(stats, dtype=np.float32).reshape(m, t, k),
        }
        return Recording(dict(self.header), arrays)

    def save(self, path: str | Path) -> Path:
        return self.recording().save(path)


def _jsonable(options: dict) -> dict:
    out = {}
    for k, v in options.items():
        if isinstance(v, np.generic):
            v = v.item()
        if not isinstance(v, (str, int, float, bool, type(None))):
            raise ValueError(f"option {k}={v!r} cannot be recorded (not a plain value)")
        out[str(k)] = v
    return out


# -- replaying ---------------------------------------------------------------------------------------
@dataclass
class Outcome:
    winner: int
    length: int
    stats: np.ndarray
    final: dict            # the final snapshot


def _allowed(arena: str, trust: bool) -> None:
    import arenas

    if not trust and arena not in arenas.names():
        raise ReplayError(f"the recording names arena {arena!r}, which is not in the registry "
                          f"({', '.join(arenas.names())}); a file does not choose code to run: name the arena "
                          f"yourself with --arena SPEC, or pass --trust if you trust this file")


def new_game(arena: str, options: dict, trust: bool = False):
    """A one-match game of ``arena`` without auto-reset, for replays. Without ``trust`` only a registry
    arena (built-in or installed entry point) is built: a name that would import code is refused."""
    import arenas

    _allowed(arena, trust)
    try:
        spec = arenas.get(arena)
    except arenas.UnknownArena as exc:
        raise ReplayError(f"cannot replay: {exc}") from None
    try:
        return spec.game(num_matches=1, auto_reset=False, **options)
    except (TypeError, ValueError) as exc:
        raise ReplayError(f"cannot replay {arena!r} with options {options}: {exc}") from None


@contextlib.contextmanager
def one_thread():
    """Run numba's parallel kernels on the calling thread only, for one-match games: waking the
    other threads (asleep between steps) costs far more than the work, up to milliseconds a step on a
    busy machine. ``numba.set_num_threads`` is per calling thread, so nothing else is affected."""
    import numba

    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        yield
    finally:
        numba.set_num_threads(threads)


def replay(match: MatchRecord, game=None, on_frame: Callable[[dict, int], Any] | None = None) -> Outcome:
    """Play ``match`` again on a one-match game (made when not given); ``on_frame(snapshot, t)`` sees
    the start position (``t`` 0) and the position after each step. Returns what the rules decided
    (for a forfeit: the recorded outcome)."""
    game = game if game is not None else new_game(match.arena, match.options)
    with one_thread():
        return _replay(match, game, on_frame)


def _replay(match: MatchRecord, game, on_frame) -> Outcome:
    game.rng_states[0] = np.uint64(match.match_rng)
    game.reset_matches([0])
    if on_frame is not None:
        on_frame(game.snapshot(0), 0)
    row = np.zeros_like(game.actions[:1])
    winner, length, stats = None, None, np.zeros_like(game.episode_stats[0])
    for t, actions in enumerate(match.actions, start=1):
        row[0] = actions
        game.step(row)
        if game.episode_done[0] and winner is None:
            winner, length, stats = int(game.episode_winner[0]), int(game.episode_length[0]), game.episode_stats[0].copy()
        if on_frame is not None:
            on_frame(game.snapshot(0), t)
    if match.forfeit:
        return Outcome(match.winner, match.length, np.asarray(match.stats), game.snapshot(0))
    if winner is None:
        winner, length = -2, len(match.actions)   # never ended: reported as a mismatch by verify
    return Outcome(winner, length, stats, game.snapshot(0))


def verify(recording: Recording) -> list[str]:
    """Replay every match; returns one line per match whose outcome differs (empty: all identical)."""
    problems = []
    game = recording.new_game() if len(recording) else None
    for i, match in enumerate(recording):
        got = replay(match, game)
        if (got.winner, got.length) != (match.winner, match.length) or not np.array_equal(got.stats, match.stats):
            problems.append(f"match {i} (slot {match.slot}): recorded winner {match.winner} in {match.length} "
                            f"steps, replayed winner {got.winner} in {got.length} steps")
    return problems
