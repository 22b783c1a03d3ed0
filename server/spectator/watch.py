"""``arena watch --connect ENDPOINT``: a window onto a running server's matches (``arena serve`` /
``arena launch``), through the server's ``FramePublisher``.

A server plays a match in well under a second, far faster than anyone can watch, so the window
takes whole matches: it subscribes to the watched slot, waits for the next match to start there
(meanwhile showing the newest position it gets), collects that match position by position up to its
final one, unsubscribes, and plays the match at the window's speed; when it is over it takes the
next match starting in that slot. The server works for a spectator only while a match is taken.

``WatchClient`` is the socket side (no pygame): a SUB socket subscribed to ``hello/`` (what the server
plays: arena, groups, agents) and, while taking a match, to its slot (``f/G/S/``). Every message is
validated (``server.net.protocol.decode``, then ``frames_of``); a bad one is dropped and counted.
"""
from __future__ import annotations

import json
import time

import zmq

from server.net.protocol import MAX_MESSAGE_BYTES, ProtocolError
from server.spectator.publisher import HELLO_TOPIC, frame_topic, frames_of, unpack

#: how many messages the SUB socket holds before the publisher drops (the publisher's own HWM is smaller)
RCVHWM = 64
#: the longest match collected (positions); a longer one is played from where the buffer starts
MAX_MATCH_FRAMES = 100_000


class WatchClient:
    def __init__(self, endpoint: str, keys_dir: str | None = None, ctx: zmq.Context | None = None):
        self.ctx = ctx or zmq.Context.instance()
        self.sock = self.ctx.socket(zmq.SUB)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.RCVHWM, RCVHWM)
        self.sock.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE_BYTES)
        if keys_dir:
            from server.net.endpoints import secure_client
            secure_client(self.sock, keys_dir)
        self.sock.connect(endpoint)
        self.sock.setsockopt(zmq.SUBSCRIBE, HELLO_TOPIC)
        self.endpoint = endpoint
        self.hello: dict | None = None
        self.topic: bytes | None = None
        self.where: tuple[int, int] | None = None
        self.bad_messages = 0

    @property
    def sizes(self) -> list[int]:
        return list(self.hello["groups"]) if self.hello else []

    @property
    def total(self) -> int:
        return sum(self.sizes)

    def locate(self, k: int) -> tuple[int, int]:
        """``(group, slot)`` of the ``k``-th match slot counted over all groups (wraps around)."""
        sizes = self.sizes
        k %= max(sum(sizes), 1)
        for g, n in enumerate(sizes):
            if k < n:
                return g, k
            k -= n
        return 0, 0

    def index_of(self, group: int, slot: int) -> int:
        return sum(self.sizes[:group]) + slot

    def select(self, group: int, slot: int) -> None:
        """Subscribe to ``(group, slot)`` (and to nothing else)."""
        topic = frame_topic(group, slot)
        if topic != self.topic:
            self.pause()
            self.sock.setsockopt(zmq.SUBSCRIBE, topic)
            self.topic = topic
        self.where = (group, slot)

    def pause(self) -> None:
        """Unsubscribe from the slot (``where`` is kept): the server stops sending its frames."""
        if self.topic is not None:
            self.sock.setsockopt(zmq.UNSUBSCRIBE, self.topic)
            self.topic = None

    def receive(self, timeout_ms: int = 0) -> list:
        """``(meta, [(snapshot, extra)])`` of the frame messages of the subscribed slot that arrived;
        ``hello`` is absorbed, anything else is counted as bad."""
        out = []
        if timeout_ms and not self.sock.poll(timeout_ms):
            return out
        while True:
            try:
                blob = self.sock.recv(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return out
            try:
                topic, msg = unpack(blob)
                if topic == HELLO_TOPIC and msg.type == "hello" and _valid_hello(msg.meta):
                    self.hello = dict(msg.meta)
                elif msg.type == "frame" and self.topic is not None and topic == self.topic:
                    out.append((msg.meta, frames_of(msg)))
                elif msg.type != "frame":      # frames of a slot just left may still arrive: not bad
                    self.bad_messages += 1
            except ProtocolError:
                self.bad_messages += 1

    def close(self) -> None:
        self.sock.close(0)


def _valid_hello(meta: dict) -> bool:
    groups = meta.get("groups")
    return (isinstance(meta.get("arena"), str) and isinstance(groups, list) and bool(groups)
            and all(type(n) is int and n > 0 for n in groups) and isinstance(meta.get("agents"), list))


class MatchTaker:
    """The take-a-whole-match cycle of one watched slot (no pygame; ``watch`` draws what it says).

    ``feed(meta, frames)`` with what arrived; ``next_frame()`` gives the next position to show, in
    order, ``(snapshot, extra, meta, live)`` (``live``: the match was joined midway, this is just the
    newest position), or None when there is nothing new yet."""

    def __init__(self, client: WatchClient):
        self.client = client
        self.match: list = []            # (snapshot, extra, meta) of the match being taken, from its start
        self.complete = False
        self.pos = 0
        self.live = None

    def restart(self) -> None:
        """Take the next match that starts in the client's slot."""
        self.match, self.complete, self.pos, self.live = [], False, 0, None
        if self.client.where is not None:
            self.client.select(*self.client.where)

    def feed(self, meta: dict, frames: list) -> None:
        for snapshot, extra in frames:
            if self.complete:
                return
            if self.match and snapshot.get("step") != self.match[-1][0].get("step", 0) + 1:
                self.match = []              # positions were lost (dropped while we did not read): start over
            if not self.match:
                if extra["ended"] or snapshot.get("step") != 0:
                    self.live = (snapshot, extra, meta)
                    continue
                self.live = None
            if len(self.match) < MAX_MATCH_FRAMES:
                self.match.append((snapshot, extra, meta))
            if extra["ended"]:
                self.complete = True
                self.client.pause()          # the server stops working for us while we play it

    def next_frame(self):
        if self.pos < len(self.match):
            self.pos += 1
            return (*self.match[self.pos - 1], False)
        if self.complete:                    # played to its end: take the next one
            self.restart()
            return None
        if self.live is not None:
            live, self.live = self.live, None
            return (*live, True)
        return None


def watch(endpoint: str, keys_dir: str | None = None, start: int = 0, window=None,
          wait_seconds: float | None = None) -> int:
    """The ``arena watch`` loop; returns 0 when the window is closed, 1 when no server answered within
    ``wait_seconds``."""
    from server.spectator.render import describe_result
    from server.spectator.window import FINAL_HOLD, KEY_HELP, MAX_DRAW_FPS, Window, _switching

    client = WatchClient(endpoint, keys_dir)
    started = time.monotonic()
    try:
        while client.hello is None:
            client.receive(200)
            if wait_seconds is not None and time.monotonic() - started > wait_seconds:
                return 1
        arena = client.hello["arena"]
        options = json.loads(client.hello.get("options") or "{}")
        window = window or Window(arena, title=f"arena watch: {arena} at {endpoint}")
        client.select(*client.locate(start))
        taker = MatchTaker(client)
        last_ended, result = None, None
        while not window.closed:
            for meta, frames in client.receive(0 if taker.pos < len(taker.match) else 20):
                taker.feed(meta, frames)
                le = meta.get("last_ended")
                if (isinstance(le, list) and len(le) == 2 and all(type(x) is int for x in le)
                        and 0 <= le[0] < len(client.sizes) and 0 <= le[1] < client.sizes[le[0]]):
                    last_ended = le
            shown = taker.next_frame()
            if shown is None:
                cmds = window.commands()
            else:
                snapshot, extra, meta, live = shown
                agents = meta.get("agents") if isinstance(meta.get("agents"), list) else None
                if extra["ended"] and not live:
                    result = describe_result(arena, extra["winner"], agents, extra["forfeit"])
                g, s = client.where
                if live:
                    note_head = "joined a match under way: the next one to start here is taken from its start"
                else:
                    note_head = f"{meta.get('score', '')}   {window.pace_line()}"
                info = {"match": f"{client.index_of(g, s)} of {client.total} (group {g}, slot {s})",
                        "agents": agents, "options": options, "note": f"{note_head}\n{KEY_HELP}",
                        "result": result if extra["ended"] and not live else None}
                try:
                    window.draw(snapshot, info)
                except (KeyError, IndexError, TypeError, ValueError):   # a frame that does not fit the arena
                    client.bad_messages += 1
                    continue
                if live:
                    cmds = window.wait(1.0 / MAX_DRAW_FPS, _switching)
                else:
                    hold = FINAL_HOLD * min(1.0, 8.0 / window.fps) if extra["ended"] and window.fps else None
                    cmds = window.wait(hold, _switching)
            for c in cmds:
                here = client.index_of(*client.where)
                if c in ("next", "prev"):
                    client.where = client.locate(here + (1 if c == "next" else -1))
                elif c == "follow" and last_ended is not None:
                    client.where = tuple(last_ended)
                else:
                    continue
                result = None
                taker.restart()
        return 0
    finally:
        client.close()
        if window is not None:
            window.close()
