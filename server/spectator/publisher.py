"""Frames of live matches for spectators: ``FramePublisher`` (the server's side) and ``SlotView``.

The game server calls ``publisher.publish(group, game, step)`` once per group step. Spectators (``arena
watch``) connect a SUB socket to the publisher's XPUB socket and subscribe to topics; every message is
one ZeroMQ frame, the topic first (``pack`` / ``unpack`` below say why and how):

==================== =====================================================================
topic                what comes
==================== =====================================================================
``hello/``           a ``hello`` message: ``{"role": "spectate", "arena", "groups": [slots per
                     group], "agents": [names], "options": JSON}``, at once and every second
``f/G/S/``           ``frame`` messages with every step of group ``G``, slot ``S``
==================== =====================================================================

A ``frame`` message carries ``k`` consecutive positions of one slot (``game.snapshot(S)`` after each
step, a match's final position included): each snapshot array stacked along a new first axis of
length ``k``, each snapshot scalar in meta as ``snap.NAME`` (a list of ``k``), and per position
``ended``, ``winner``, ``forfeit`` (lists of ``k``: True / the winning team or -1 / True on a
match's final position); then ``arena``, ``group``, ``slot``, ``agents`` (one name per team),
``score`` (the pair's games so far) and ``last_ended`` (``[G, S]`` of a slot whose match just ended,
for "follow"). ``frames_of(message)`` unpacks it. Positions are sent in batches (every
``FLUSH_INTERVAL`` seconds, at ``MAX_BATCH`` positions, and at once when a match ends): right after
a big batched step every bit of Python work is slow (its caches are cold), so per step the publisher
only notes the watched slot's action row, and makes positions and messages a batch at a time.

Cost: with nobody watching, ``publish`` reads a clock (and the XPUB socket's subscriptions every
``POLL_INTERVAL``); frames go out with ``zmq.NOBLOCK`` under a small ``SNDHWM`` (frames beyond it are
dropped for that spectator, never queued without bound), so a slow, stalled or absent spectator never
holds the server up. ``arena watch`` subscribes only while it takes a match (see ``watch``).
``bench/spectator.py`` measures the cost.

Positions, final ones included, come from a ``SlotView``: it plays the watched slot again on a
one-match copy from ``match_rng`` and the actions the game was stepped with (see its docstring).
"""
from __future__ import annotations

import json
import time
from typing import Any

import msgpack
import numpy as np
import zmq

from server.net.protocol import MAX_FRAMES, MAX_MESSAGE_BYTES, Message, ProtocolError, decode, encode
from server.spectator.replay import one_thread

#: messages queued per spectator before more are dropped (a few: each holds up to MAX_BATCH positions)
SNDHWM = 8
#: seconds a watched slot's positions wait to be sent together (the latency a spectator sees)
FLUSH_INTERVAL = 0.05
#: the most positions in one ``frame`` message
MAX_BATCH = 32
#: seconds between two ``hello`` messages while someone listens for them
HELLO_INTERVAL = 1.0
HELLO_TOPIC = b"hello/"
#: the largest message a spectator may send: a subscription is a few bytes, but the socket's cap
#: applies to the CURVE handshake too (a few hundred bytes)
MAX_SUBSCRIPTION_BYTES = 4096
#: seconds between two reads of the spectators' (un)subscriptions by ``publish`` (the delay before a
#: new spectator's first frame; shorter reads the socket more often for nothing)
POLL_INTERVAL = 0.02


def frame_topic(group: int, slot: int) -> bytes:
    return f"f/{int(group)}/{int(slot)}/".encode()


def parse_topic(topic: bytes) -> tuple[int, int] | None:
    """``(group, slot)`` of a frame topic, else None."""
    parts = topic.split(b"/")
    if len(parts) != 4 or parts[0] != b"f" or parts[3] != b"" or not (parts[1].isdigit() and parts[2].isdigit()):
        return None
    return int(parts[1]), int(parts[2])


def default_endpoint(bind: str) -> str:
    """Beside a server's ROUTER endpoint: port + 2 (the stats PUB has + 1), or ``PATH.spectate``."""
    from server.net.endpoints import stats_endpoint

    return stats_endpoint(stats_endpoint(bind)) if bind.startswith("tcp://") else bind + ".spectate"


# -- one watched slot ---------------------------------------------------------------------------------
class SlotView:
    """Follows slot ``slot`` of a live batched game: ``record(game)`` after every step (cheap), then
    ``frames()`` whenever positions are wanted; ``advance(game)`` does both.

    ``frames()`` returns ``[(snapshot, extra)]``, one per position in order: after each step, and when
    a match ended, first its final position with ``extra = {"ended": True, "winner": team or -1,
    "forfeit": bool}``. An auto-resetting game never shows a match's final position (the slot
    restarts in the step that ends it), so the view plays the slot again on a one-match copy without
    auto-reset, from the match's ``match_rng`` and the actions the game was stepped with, as a replay
    does; ``record`` only keeps the step's action row, and the copy is stepped in ``frames()``, in one
    warm loop (after a big batched step, any work is slow: caches are cold). The copy is checked
    against the game at every step (step count, the ending step and its winner) and dropped at the
    first disagreement. A match joined midway (no known start), or an arena whose game cannot be made
    without auto-reset, is shown from the game's own snapshots, without its final position.
    """

    def __init__(self, game, slot: int):
        if not 0 <= slot < game.num_matches:
            raise IndexError(f"slot {slot} out of range [0, {game.num_matches})")
        self.slot = int(slot)
        try:
            self._copy = type(game)(num_matches=1, auto_reset=False, **game.options)
        except Exception:        # an arena without auto_reset=False: live snapshots only
            self._copy = None
        self._queue: list[tuple] = []
        self._following = False     # record() queues action rows: the queue starts the copy on this match
        self._copy_live = False     # frames() has the copy at the match the next queued rows belong to
        self.ended = False          # a match ended since the last frames(): its final position waits
        if self._copy is not None and game.step_count[self.slot] == 0:
            self._queue.append(("start", game.match_rng[self.slot].copy()))
            self._following = True
        else:
            self._queue.append(("snap", game.snapshot(self.slot)))

    def __len__(self) -> int:
        """Steps recorded and not yet turned into positions by ``frames()``."""
        return len(self._queue)

    def record(self, game) -> None:
        s = self.slot
        restarted, natural = game.step_count[s] == 0, bool(game.episode_done[s])
        end = None
        if restarted or natural:
            end = {"ended": True, "winner": int(game.episode_winner[s]) if natural else -1, "forfeit": not natural}
            self.ended = True
        if self._following:
            expect = int(game.episode_length[s]) if natural else (None if end else int(game.step_count[s]))
            self._queue.append(("step", game.actions[s].copy(), expect, end))
        elif not (restarted and self._copy is not None):
            self._queue.append(("snap", game.snapshot(s)))
        if restarted and self._copy is not None:
            self._queue.append(("start", game.match_rng[s].copy()))
            self._following = True
        elif end is not None:
            self._following = False

    def frames(self) -> list[tuple[dict, dict]]:
        out: list[tuple[dict, dict]] = []
        copy = self._copy
        queue, self._queue = self._queue, []
        self.ended = False
        with one_thread():
            for item in queue:
                if item[0] == "snap":
                    out.append((item[1], {}))
                elif item[0] == "start":
                    copy.rng_states[0] = item[1]
                    copy.reset_matches([0])
                    self._copy_live = True
                    out.append((copy.snapshot(0), {}))
                elif self._copy_live:        # ("step", actions, expected step count, end or None)
                    _, actions, expect, end = item
                    copy.step(actions[None])
                    agrees = expect is None or int(copy.step_count[0]) == expect
                    if end is not None and not end["forfeit"]:
                        agrees = agrees and bool(copy.episode_done[0]) and int(copy.episode_winner[0]) == end["winner"]
                    if not agrees:           # should not happen: the copy disagrees with the game
                        self._copy_live = self._following = False
                        continue
                    out.append((copy.snapshot(0), end or {}))
                    if end is not None:
                        self._copy_live = False
        return out

    def advance(self, game) -> list[tuple[dict, dict]]:
        """``record(game)`` then ``frames()``: the positions of this step (two when a match ended)."""
        self.record(game)
        return self.frames()


# -- the publisher --------------------------------------------------------------------------------------
class FramePublisher:
    """An XPUB socket that sends ``frame`` messages for the slots spectators subscribed to.

    ``runners`` are the server's ``MatchRunner`` per group (for the seating and the score); ``publish``
    is called after each step of group ``group``. Never blocks.
    """

    def __init__(self, endpoint: str, arena: str, runners: list, ctx: zmq.Context | None = None,
                 keys_dir: str | None = None, sndhwm: int = SNDHWM):
        from server.net.endpoints import bind, is_loopback

        if not keys_dir and not is_loopback(endpoint):     # before any work (bind says it again)
            raise ValueError(f"binding spectators to {endpoint} (not loopback) needs CURVE keys (--keys DIR)")
        self.arena, self.runners = arena, list(runners)
        self.sizes = [r.game.num_matches for r in self.runners]
        self.ctx = ctx or zmq.Context.instance()
        self.sock = self.ctx.socket(zmq.XPUB)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.SNDHWM, int(sndhwm))
        self.sock.setsockopt(zmq.XPUB_VERBOSE, 1)     # every subscribe to hello/ is seen, so each gets one
        self.sock.setsockopt(zmq.MAXMSGSIZE, MAX_SUBSCRIPTION_BYTES)
        self.endpoint = bind(self.sock, endpoint, keys_dir, "spectators (--spectate-bind)")
        self.views: list[dict[int, SlotView]] = [{} for _ in self.runners]
        self._flush_by: dict[tuple[int, int], float] = {}   # (group, slot) -> when its positions go out
        self._watched = False
        self._hello_wanted = False
        self._next_hello = 0.0
        self._next_poll = 0.0
        self._last_ended: list[int] = [-1, -1]
        self.messages_sent = 0      # frame and hello messages handed to the socket (it may drop some)
        self.positions_sent = 0     # positions in those frame messages
        self.bad_subscriptions = 0

    @property
    def watched(self) -> bool:
        """Whether any spectator listens (as of the last ``poll``)."""
        return self._watched

    def poll(self) -> None:
        """Read pending (un)subscriptions; cheap when there are none. ``publish`` calls it."""
        sock = self.sock
        while sock.getsockopt(zmq.EVENTS) & zmq.POLLIN:
            try:
                msg = sock.recv(zmq.NOBLOCK)
            except zmq.Again:
                break
            if not msg or msg[0] not in (0, 1):
                self.bad_subscriptions += 1
                continue
            on, topic = msg[0] == 1, msg[1:]
            if topic == HELLO_TOPIC:
                self._hello_wanted = on
                if on:
                    self._send_hello()
                continue
            where = parse_topic(topic)
            if where is None or not (0 <= where[0] < len(self.sizes) and 0 <= where[1] < self.sizes[where[0]]):
                self.bad_subscriptions += 1
                continue
            g, s = where
            if on and s not in self.views[g]:
                self.views[g][s] = SlotView(self.runners[g].game, s)
            elif not on:
                self.views[g].pop(s, None)
                self._flush_by.pop((g, s), None)
        self._watched = self._hello_wanted or any(self.views)

    def _send_hello(self) -> None:
        names = self.runners[0].names if self.runners else []
        options = self.runners[0].game.options if self.runners else {}
        msg = Message("hello", sender="server", meta={"role": "spectate", "arena": self.arena, "groups": self.sizes,
                                                      "agents": list(names), "options": json.dumps(options)})
        self._send(HELLO_TOPIC, msg)
        self._next_hello = time.monotonic() + HELLO_INTERVAL

    def _send(self, topic: bytes, msg: Message) -> None:
        try:
            self.sock.send(pack(topic, msg), flags=zmq.NOBLOCK)
            self.messages_sent += 1
            self.positions_sent += msg.meta.get("frames", 0)
        except zmq.Again:      # a full queue drops (XPUB does so silently; this is belt and braces)
            pass

    def publish(self, group: int, game, step: int) -> None:
        """Send this group step's frames to whoever watches its slots. Never blocks; with nobody
        watching it is one clock read (and the socket's subscriptions every ``POLL_INTERVAL``)."""
        now = time.monotonic()
        if now >= self._next_poll:
            self._next_poll = now + POLL_INTERVAL
            self.poll()
        if not self._watched:
            return
        if self._hello_wanted and now >= self._next_hello:
            self._send_hello()
        ended = np.flatnonzero(game.step_count == 0)
        if ended.size:
            self._last_ended = [int(group), int(ended[-1])]
        views = self.views[group]
        if not views:
            return
        runner = self.runners[group]
        for slot, view in list(views.items()):
            view.record(game)
            deadline = self._flush_by.setdefault((group, slot), now + FLUSH_INTERVAL)
            if len(view) < MAX_BATCH and now < deadline and not view.ended:
                continue
            del self._flush_by[(group, slot)]
            seated = [runner.names[a] for a in runner.team_agent[slot]]
            meta = {"arena": self.arena, "group": int(group), "slot": int(slot), "agents": seated,
                    "score": score_line(runner, slot, self.runners), "last_ended": self._last_ended,
                    "server_step": int(step)}
            for run in _same_shapes(view.frames()):
                self._send(frame_topic(group, slot), frame_message(run, meta))

    def close(self) -> None:
        self.sock.close(0)


def score_line(runner, slot: int, runners: list | None = None) -> str:
    """The games so far between the two agents of ``slot``: ``'greedy 12 - 3 random, 2 draws'``
    (over all ``runners``, e.g. every group of a server)."""
    seated = runner.team_agent[slot]
    if len(seated) != 2 or seated[0] == seated[1]:
        return ""
    i, j = (int(x) for x in seated)
    won_i = won_j = draws = 0
    for r in runners or [runner]:
        for (a, b), (w0, w1, d) in r.pairings.items():
            if (a, b) == (i, j):
                won_i, won_j, draws = won_i + w0, won_j + w1, draws + d
            elif (a, b) == (j, i):
                won_i, won_j, draws = won_i + w1, won_j + w0, draws + d
    return f"{runner.names[i]} {won_i} - {won_j} {runner.names[j]}, {draws} draws"


# -- frames on the wire -----------------------------------------------------------------------------------
_EXTRA = (("ended", bool, False), ("winner", int, -1), ("forfeit", bool, False))


def _layout(snapshot: dict) -> tuple:
    return tuple((k, v.shape, v.dtype.str) if isinstance(v, np.ndarray) else (k,) for k, v in snapshot.items())


def _same_shapes(frames: list) -> list[list]:
    """Consecutive runs of frames whose snapshots have the same keys, shapes and dtypes."""
    runs: list[list] = []
    last = None
    for frame in frames:
        layout = _layout(frame[0])
        if runs and layout == last:
            runs[-1].append(frame)
        else:
            runs.append([frame])
            last = layout
    return runs


def frame_message(frames: list[tuple[dict, dict]], meta: dict) -> Message:
    """One ``frame`` message holding ``frames`` (``[(snapshot, extra)]``, same layout): the snapshot
    arrays stacked on a new first axis, scalars and ``extra`` fields as lists in meta."""
    first = frames[0][0]
    arrays = {k: np.stack([f[0][k] for f in frames]) for k, v in first.items() if isinstance(v, np.ndarray)}
    out = dict(meta, frames=len(frames))
    for k, v in first.items():
        if not isinstance(v, np.ndarray):
            out[f"snap.{k}"] = [x.item() if isinstance(x, np.generic) else x for x in (f[0][k] for f in frames)]
    for name, kind, default in _EXTRA:
        out[name] = [kind(f[1].get(name, default)) for f in frames]
    return Message("frame", sender="server", arrays=arrays, meta=out)


def frames_of(msg: Message) -> list[tuple[dict, dict]]:
    """``[(snapshot, extra)]`` from a ``frame`` message, validated (arrays are read-only views)."""
    if msg.type != "frame":
        raise ProtocolError(f"expected a frame message, got {msg.type!r}")
    k = msg.meta.get("frames")
    if type(k) is not int or not 1 <= k <= 4 * MAX_BATCH:
        raise ProtocolError("a frame message must say how many positions it holds (1..128)")
    for name, arr in msg.arrays.items():
        if arr.ndim < 1 or arr.shape[0] != k:
            raise ProtocolError(f"frame array {name!r} does not hold {k} positions")
    lists = {name: v for name, v in msg.meta.items() if name.startswith("snap.") or name in dict.fromkeys(
        e[0] for e in _EXTRA)}
    for name, v in lists.items():
        if not isinstance(v, list) or len(v) != k:
            raise ProtocolError(f"frame meta {name!r} must be a list of {k} values")
    for name, kind, _ in _EXTRA:
        if name in lists and not all(type(x) is kind for x in lists[name]):
            raise ProtocolError(f"frame meta {name!r} must hold {kind.__name__} values")
    out = []
    for i in range(k):
        snap: dict[str, Any] = {name: arr[i] for name, arr in msg.arrays.items()}
        snap.update({name[5:]: v[i] for name, v in lists.items() if name.startswith("snap.")})
        extra = {name: lists[name][i] if name in lists else default for name, _, default in _EXTRA}
        out.append((snap, extra))
    return out


# A spectator message is ONE ZeroMQ frame: the topic, a NUL byte, then the protocol's frames (header and
# arrays, as ``server.net.protocol.encode`` makes them) as a msgpack list of byte strings. Not a multipart
# message: libzmq 4.3 aborts the process when a subscriber leaves while a multipart message to it is
# half sent, which a stalled spectator makes likely (zeromq/libzmq#3442; reproduced with pyzmq 27).
def pack(topic: bytes, msg: Message) -> bytes:
    return topic + b"\0" + msgpack.packb([bytes(f) for f in encode(msg)], use_bin_type=True)


def unpack(blob) -> tuple[bytes, Message]:
    """The topic and the validated message of one received spectator frame (``ProtocolError`` if bad)."""
    blob = bytes(getattr(blob, "bytes", blob))
    if len(blob) > MAX_MESSAGE_BYTES:
        raise ProtocolError(f"spectator message of {len(blob)} bytes exceeds the cap of {MAX_MESSAGE_BYTES}")
    topic, sep, body = blob.partition(b"\0")
    if not sep or len(topic) > 64:
        raise ProtocolError("a spectator message starts with a topic and a NUL byte")
    try:
        frames = msgpack.unpackb(body, raw=False, strict_map_key=True, max_array_len=MAX_FRAMES)
    except Exception as exc:   # msgpack raises several types for garbage; all mean the same here
        raise ProtocolError(f"spectator message body is not valid msgpack: {type(exc).__name__}") from None
    if not isinstance(frames, list) or not all(isinstance(f, bytes) for f in frames):
        raise ProtocolError("a spectator message body must be a list of byte strings")
    return topic, decode(frames)
