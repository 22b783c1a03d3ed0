"""The spectator: pixels of known states, frames over a real XPUB/SUB pair, the window's keys, and
``arena replay --frames/--gif`` in a subprocess. pygame runs on SDL's dummy video driver."""
import os
import subprocess
import sys
import time
from argparse import Namespace
from pathlib import Path

os.environ["SDL_VIDEODRIVER"] = "dummy"   # before pygame is imported anywhere: no real window in tests
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

import numpy as np
import pytest

import arenas
from agents import make_agent
from server.play.match import MatchRunner
from server.spectator import render as R

pygame = pytest.importorskip("pygame")
ROOT = Path(__file__).resolve().parents[2]


def _pixel(surface, xy):
    return tuple(surface.get_at(xy))[:3]


def _draw(arena, snapshot, size, info=None):
    surface = pygame.Surface(size)
    R.render(arena, snapshot, surface, info or {})
    return surface


# -- pygame stays optional -------------------------------------------------------------------------------------
def test_without_pygame_the_package_imports_and_says_how_to_install(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "pygame", None)     # import pygame now raises ImportError
    import server.cli
    import server.spectator.publisher  # noqa: F401  (the server side never needs pygame)
    from server.spectator.hooks import HookError, attach

    with pytest.raises(R.SpectatorUnavailable, match=r"pip install 'arena\[spectator\]'"):
        R.require_pygame()
    assert server.cli.main(["watch", "--connect", "tcp://127.0.0.1:1", "--wait", "0.1"]) == 2
    assert "arena watch: the spectator needs pygame" in capsys.readouterr().err
    game = arenas.make("connect4", num_matches=2)
    runner = MatchRunner(game, [make_agent("random", game)] * 2, ["a", "b"])
    with pytest.raises(HookError, match=r"arena run --watch: .*pip install"):
        attach(Namespace(watch=True, watch_match=0, record=None, seed=0), runner, "connect4")


# -- pixels of known states --------------------------------------------------------------------------------------
def test_connect4_pieces_and_the_winning_four():
    board = np.zeros((6, 7), dtype=np.int8)
    board[5, 0:4] = 1          # red's four along the bottom row
    board[4, 0:3] = 2          # yellow's three above it
    board[3, 6] = 2            # a lone yellow piece, floating is fine for a renderer
    snap = {"board": board, "to_move": 1, "step": 7}
    size = (560, 600)
    s = _draw("connect4", snap, size, {"agents": ["greedy", "random"]})
    at = lambda r, c: R.cell_center("connect4", snap, size, r, c)
    assert _pixel(s, at(5, 0)) == R.PIECE[1] and _pixel(s, at(5, 3)) == R.PIECE[1]
    assert _pixel(s, at(4, 1)) == R.PIECE[2] and _pixel(s, at(3, 6)) == R.PIECE[2]
    assert _pixel(s, at(0, 0)) == R.HOLE and _pixel(s, at(5, 4)) == R.HOLE
    _, _, cell = R.board_geometry(size, 6, 7)
    edge = int(cell * 0.4) - 1                     # just inside a piece's rim: where the ring goes
    for c in range(4):
        x, y = at(5, c)
        assert _pixel(s, (x + edge, y)) == R.WIN_RING, f"winning piece (5, {c}) is ringed"
    for r, c in ((4, 0), (3, 6)):
        x, y = at(r, c)
        assert _pixel(s, (x + edge, y)) == R.PIECE[2], f"piece ({r}, {c}) is not part of a four"
    assert R.winning_cells(board).sum() == 4


def test_winning_cells_finds_every_direction():
    for cells in ([(5, 0), (4, 1), (3, 2), (2, 3)], [(2, 0), (3, 1), (4, 2), (5, 3)], [(0, 6), (1, 6), (2, 6), (3, 6)]):
        board = np.zeros((6, 7), dtype=np.int8)
        for r, c in cells:
            board[r, c] = 2
        board[0, 0] = 1
        win = R.winning_cells(board)
        assert sorted(zip(*np.nonzero(win))) == sorted(cells)


def _battle_snapshot():
    walls = np.zeros((8, 8), dtype=bool)
    walls[3, 3] = True
    return {
        "pos": np.array([[1, 1], [5, 6], [6, 2], [0, 7]]),
        "hp": np.array([10, 5, 0, 10]),
        "alive": np.array([True, True, False, True]),
        "team": np.array([0, 0, 1, 1]),
        "walls": walls,
        "last_attack": np.array([3, -1, -1, 1]),      # agent 0 attacks right, agent 3 attacks down
        "step": 12,
    }


def test_battle_walls_teams_hit_points_and_attacks():
    snap = _battle_snapshot()
    size = (400, 480)
    s = _draw("battle", snap, size, {"options": {"max_hp": 10}})
    at = lambda r, c: R.cell_center("battle", snap, size, r, c)
    _, _, cell = R.board_geometry(size, 8, 8)
    assert _pixel(s, at(1, 1)) == R.TEAM_COLOUR[0] and _pixel(s, at(5, 6)) == R.TEAM_COLOUR[0]
    assert _pixel(s, at(0, 7)) == R.TEAM_COLOUR[1]
    assert _pixel(s, at(6, 2)) == R.FLOOR, "a dead agent is not drawn"
    assert _pixel(s, at(3, 3)) == R.WALL and _pixel(s, at(2, 5)) == R.FLOOR
    # hit-point bars along the top of the cell: full for agent 0, half for agent 1
    x, y = at(1, 1)
    top = y - cell // 2 + 1
    assert _pixel(s, (x - cell // 2 + 2, top)) == R.HP_FILL and _pixel(s, (x + cell // 2 - 2, top)) == R.HP_FILL
    x, y = at(5, 6)
    assert _pixel(s, (x - cell // 2 + 2, y - cell // 2 + 1)) == R.HP_FILL
    assert _pixel(s, (x + cell // 2 - 2, y - cell // 2 + 1)) == R.HP_BACK
    # attacks: a wedge in the attacked cell next to the shared edge; the attacked cell's centre stays as it was
    x, y = at(1, 2)
    assert _pixel(s, (x - cell // 2 + 2, y)) == R.ATTACK and _pixel(s, (x, y)) == R.FLOOR
    x, y = at(1, 7)
    assert _pixel(s, (x, y - cell // 2 + 2)) == R.ATTACK


def test_a_live_battle_snapshot_puts_every_agent_in_its_team_colour():
    game = arenas.make("battle", num_matches=2, seed=3)
    rng = np.random.default_rng(0)
    for _ in range(15):
        game.step(rng.integers(0, 9, size=(2, game.num_agents)))
    snap = game.snapshot(1)
    size = R.default_size("battle", snap)
    s = _draw("battle", snap, size, {"options": game.options})
    for j in np.flatnonzero(snap["alive"]):
        xy = R.cell_center("battle", snap, size, *snap["pos"][j])
        assert _pixel(s, xy) == R.TEAM_COLOUR[snap["team"][j]]


def test_status_lines_name_arena_match_agents_step_and_score():
    snap = _battle_snapshot()
    lines = [t for t, _ in R.status_lines("battle", snap, {"match": "3 of 8", "agents": ["greedy", "random"],
                                                           "note": "greedy 2 - 1 random, 0 draws"})]
    assert "battle" in lines[0] and "match 3 of 8" in lines[0] and "greedy (red) vs random (blue)" in lines[0]
    assert "step 12" in lines[0]
    assert lines[1] == "red 2 alive, 15 hp - blue 1 alive, 10 hp"
    assert "greedy 2 - 1 random" in lines[2]


def test_gif_writer_round_trips_exactly(tmp_path):
    rng = np.random.default_rng(0)
    size = (160, 120)
    from server.spectator.gif import GifWriter
    w = GifWriter(tmp_path / "x.gif", size)
    first = rng.integers(0, 256, (120, 160))             # noise: the LZW table fills and starts afresh
    second = first.copy()
    second[30:60, 10:90] = 7                             # only a rectangle changes
    frames = [w.palette[first], w.palette[second], w.palette[second]]   # the third repeats the second
    for rgb in frames:
        w.add(rgb, 0.1)
    w.close()
    got = pygame.image.load_animation(str(tmp_path / "x.gif"))
    assert [d for _, d in got] == [100, 200], "an unchanged frame lengthens the one before"
    for (surface, _), rgb in zip(got, frames):
        assert np.array_equal(pygame.surfarray.array3d(surface).transpose(1, 0, 2), rgb)


# -- frames over real sockets --------------------------------------------------------------------------------------
def _runner(arena, slots, **options):
    game = arenas.get(arena).game(num_matches=slots, **options)
    runner = MatchRunner(game, [make_agent("greedy", game), make_agent("random", game)], ["greedy", "random"])
    runner.reset(2)
    runner.stop_rule(steps=10_000)
    return runner


def _step(runner, publisher, group=0):
    runner.account(runner.step())
    publisher.publish(group, runner.game, runner.steps)


def _frames(client, runner, publisher, until, limit=400):
    got = []
    for _ in range(limit):
        _step(runner, publisher)
        got += client.receive(20)
        if until(got):
            return got
    raise AssertionError(f"no such frames after {limit} steps: {len(got)} frames")


def test_frames_flow_only_for_the_watched_slot_and_a_match_is_taken_whole(tmp_path):
    from server.spectator.publisher import FramePublisher
    from server.spectator.watch import MatchTaker, WatchClient

    runner = _runner("connect4", 16)
    pub = FramePublisher(f"ipc://{tmp_path}/spec", "connect4", [runner])
    client = WatchClient(pub.endpoint)
    try:
        for _ in range(200):                      # the hello says what is played
            pub.publish(0, runner.game, 0)
            client.receive(10)
            if client.hello:
                break
        assert client.hello["arena"] == "connect4" and client.hello["groups"] == [16]
        assert client.hello["agents"] == ["greedy", "random"]
        client.select(*client.locate(3))
        taker = MatchTaker(client)
        for _ in range(400):
            _step(runner, pub)
            for meta, frames in client.receive(20):
                assert meta["slot"] == 3 and meta["agents"] == ["random", "greedy"]
                taker.feed(meta, frames)
            if taker.complete:
                break
        assert taker.complete and list(pub.views[0]) == [3], "the publisher followed the subscribed slot only"
        steps = [snap["step"] for snap, _, _ in taker.match]
        assert steps == list(range(len(steps))), "the whole match, in order, from its first position"
        final, extra, _ = taker.match[-1]
        assert extra["ended"] and not any(e["ended"] for _, e, _ in taker.match[:-1])
        board = final["board"]
        assert (board != 0).sum() == steps[-1], "one piece per move"
        win = R.winning_cells(board)
        if extra["winner"] >= 0:
            assert win.any() and set(board[win]) == {extra["winner"] + 1}, "the final position shows the four"
        else:
            assert (board != 0).all()
        # the taker unsubscribed: the publisher stops following the slot
        for _ in range(50):
            _step(runner, pub)
            time.sleep(0.002)
            if not pub.views[0]:
                break
        assert not pub.views[0]
        # played back in order, then the taker subscribes again for the next match
        shown = [taker.next_frame() for _ in steps]
        assert [s[0]["step"] for s in shown] == steps and not any(s[3] for s in shown)
        assert taker.next_frame() is None and not taker.complete and client.topic is not None, "on to the next match"
    finally:
        client.close()
        pub.close()


def test_frame_messages_are_validated():
    from server.net.protocol import Message, ProtocolError
    from server.spectator.publisher import frame_message, frames_of, pack, unpack

    snap = {"board": np.zeros((6, 7), np.int8), "to_move": 1, "step": 4}
    topic, msg = unpack(pack(b"f/0/1/", frame_message([(snap, {}), (dict(snap, step=5), {"ended": True, "winner": 0})],
                                                      {"slot": 1})))
    assert topic == b"f/0/1/"
    (s0, e0), (s1, e1) = frames_of(msg)
    assert s0["step"] == 4 and s1["step"] == 5 and s1["board"].shape == (6, 7) and s1["to_move"] == 1
    assert e0 == {"ended": False, "winner": -1, "forfeit": False} and e1["ended"] and e1["winner"] == 0
    for bad in ({"frames": 3}, {"winner": ["x", 0]}, {"snap.step": [1]}):
        m = Message("frame", arrays=dict(msg.arrays), meta={**msg.meta, **bad})
        with pytest.raises(ProtocolError):
            frames_of(m)
    for blob in (b"no separator", b"f/0/1/\0not msgpack \xc1", b"f/0/1/\0\x92\x01\x02", b"f/0/1/\0\x91\xc4\x03abc"):
        with pytest.raises(ProtocolError):
            unpack(blob)


def test_spectator_messages_are_single_frames(tmp_path):
    # libzmq 4.3 can abort the publishing process when a subscriber leaves while a multipart message
    # to it is half sent (zeromq/libzmq#3442; reproduced here with pyzmq 27 / libzmq 4.3.5, an XPUB
    # sending 8-part messages to a SUB that never reads and then closes): a stalled spectator that
    # quits must not take the server down, so every spectator message is one frame.
    import zmq
    from server.spectator.publisher import FramePublisher, frame_topic, unpack

    runner = _runner("connect4", 4)
    pub = FramePublisher(f"ipc://{tmp_path}/spec", "connect4", [runner])
    sub = zmq.Context.instance().socket(zmq.SUB)
    sub.connect(pub.endpoint)
    sub.setsockopt(zmq.SUBSCRIBE, frame_topic(0, 1))
    try:
        for _ in range(500):
            _step(runner, pub)
            if sub.poll(10):
                break
        parts = sub.recv_multipart()
        assert len(parts) == 1 and parts[0].startswith(frame_topic(0, 1) + b"\0")
        topic, msg = unpack(parts[0])
        assert topic == frame_topic(0, 1) and msg.type == "frame" and msg.meta["slot"] == 1
    finally:
        sub.close(0)
        pub.close()


def test_nobody_watching_costs_nothing_and_a_stalled_spectator_never_blocks(tmp_path):
    import zmq
    from server.spectator.publisher import FramePublisher, frame_topic

    runner = _runner("battle", 8, team_size=2, map_size=12)
    pub = FramePublisher(f"ipc://{tmp_path}/spec", "battle", [runner])
    stalled = zmq.Context.instance().socket(zmq.SUB)
    stalled.setsockopt(zmq.RCVHWM, 1)
    stalled.connect(pub.endpoint)
    try:
        for _ in range(20):
            pub.publish(0, runner.game, 0)
        assert pub.messages_sent == 0 and not pub.watched
        for s in range(8):                     # watch every slot, then never read
            stalled.setsockopt(zmq.SUBSCRIBE, frame_topic(0, s))
        for _ in range(100):
            pub.publish(0, runner.game, 0)
            if len(pub.views[0]) == 8:
                break
            time.sleep(0.01)
        assert len(pub.views[0]) == 8
        t0 = time.perf_counter()
        for _ in range(300):
            _step(runner, pub)
        assert time.perf_counter() - t0 < 30, "messages beyond the HWM are dropped, never waited for"
        assert pub.positions_sent >= 8 * (300 - 32) and pub.messages_sent < pub.positions_sent / 4, "sent in batches"
    finally:
        stalled.close(0)
        pub.close()


def test_with_keys_only_an_accepted_spectator_sees_anything(tmp_path):
    import zmq
    from server.net.endpoints import make_keys, start_authenticator
    from server.spectator.publisher import FramePublisher
    from server.spectator.watch import WatchClient

    make_keys(tmp_path)
    ctx = zmq.Context()          # a context of its own: the authenticator judges every socket on it
    auth = start_authenticator(ctx, tmp_path)
    runner = _runner("connect4", 4)
    with pytest.raises(ValueError, match="needs CURVE keys"):
        FramePublisher("tcp://0.0.0.0:0", "connect4", [runner], ctx=ctx)
    pub = FramePublisher("tcp://127.0.0.1:0", "connect4", [runner], ctx=ctx, keys_dir=str(tmp_path))
    good = WatchClient(pub.endpoint, keys_dir=str(tmp_path), ctx=ctx)
    stranger = WatchClient(pub.endpoint, ctx=ctx)
    try:
        for client in (good, stranger):
            client.select(0, 1)
        got = {"good": 0, "stranger": 0}
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not (good.hello and got["good"] > 20):
            _step(runner, pub)
            got["good"] += sum(len(f) for _, f in good.receive(5))
            got["stranger"] += sum(len(f) for _, f in stranger.receive(1))
        assert good.hello and got["good"] > 20
        assert stranger.hello is None and got["stranger"] == 0
    finally:
        good.close()
        stranger.close()
        pub.close()
        auth.stop()
        ctx.term()


def test_slot_view_positions_are_the_live_ones_and_end_with_the_final_position():
    from server.spectator.publisher import SlotView

    runner = _runner("battle", 4, team_size=2, map_size=10, max_steps=60)
    game = runner.game
    from_start = SlotView(game, 2)
    assert [e for _, e in from_start.frames()] == [{}], "the first position"
    for _ in range(3):
        runner.account(runner.step())
        from_start.advance(game)
    midway = SlotView(game, 2)            # joined a match under way: no final position for that one
    assert [s["step"] for s, _ in midway.frames()] == [3]
    finals = {"from_start": [], "midway": []}
    for _ in range(400):
        runner.account(runner.step())
        live = game.snapshot(2)
        for name, view in (("from_start", from_start), ("midway", midway)):
            *ended, (now, extra) = view.advance(game)
            assert not extra and all(np.array_equal(now[k], live[k]) for k in live), "the copy shows the live state"
            for snap, e in ended:
                assert e["ended"] and snap["step"] >= 1
                finals[name].append((snap, e, game.episode_length[2]))
    assert len(finals["from_start"]) >= 3 and len(finals["midway"]) == len(finals["from_start"]) - 1
    for snap, extra, length in finals["from_start"]:
        assert snap["step"] == length
        alive = [int(snap["alive"][snap["team"] == t].sum()) for t in (0, 1)]
        if extra["winner"] >= 0 and length < 60:       # won by wiping the other team out
            assert alive[1 - extra["winner"]] == 0 and alive[extra["winner"]] > 0


# -- the window ----------------------------------------------------------------------------------------------------
def _key(key):
    pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=key, mod=0, unicode="", scancode=0))


def test_run_watch_window_keys_switch_follow_and_quit():
    from server.spectator.window import SPEEDS, LiveWatch, Window

    runner = _runner("connect4", 8)
    window = Window("connect4", size=(560, 620), speed=len(SPEEDS) - 1)
    watch = LiveWatch(runner, "connect4", window=window, slot=0)
    for _ in range(3):
        runner.account(runner.step())
        watch.on_step(runner)
    _key(pygame.K_n)
    _key(pygame.K_n)
    runner.account(runner.step())
    watch.on_step(runner)
    assert watch.view.slot == 2
    _key(pygame.K_p)
    runner.account(runner.step())
    watch.on_step(runner)
    assert watch.view.slot == 1
    while watch.last_ended < 0:
        runner.account(runner.step())
        watch.on_step(runner)
    _key(pygame.K_f)
    runner.account(runner.step())
    watch.on_step(runner)
    assert watch.view.slot == watch.last_ended, "follow: the slot whose match just ended"
    screen = window.screen
    xy = R.cell_center("connect4", runner.game.snapshot(watch.view.slot), screen.get_size(), 0, 0)
    assert _pixel(screen, xy) in (R.HOLE, R.PIECE[1], R.PIECE[2]), "the board is on screen"
    _key(pygame.K_q)
    runner.account(runner.step())
    watch.on_step(runner)
    assert watch.closed
    watch.on_step(runner)       # a closed watch is a no-op: the run goes on


def test_replay_window_plays_matches_and_obeys_keys(tmp_path):
    from server.spectator.window import SPEEDS, Window, play_recording

    _, recording = _recording(tmp_path, "connect4")
    window = Window("connect4", size=(560, 620), speed=len(SPEEDS) - 1)
    drawn = []
    draw = window.draw

    def watching(snap, info):
        drawn.append((info["match"].split(" (")[0], int(snap["step"])))
        draw(snap, info)
        if len(drawn) == 2:
            _key(pygame.K_n)         # on to the next recorded match, mid-way through this one
        elif drawn[-1] == ("1 of 6", 2):
            _key(pygame.K_SPACE)     # pause and go on
            _key(pygame.K_SPACE)
            _key(pygame.K_q)

    window.draw = watching
    play_recording(recording, 0, window)
    assert window.closed
    assert drawn[:2] == [("0 of 6", 0), ("0 of 6", 1)] and drawn[2:] == [("1 of 6", t) for t in range(3)], drawn


# -- arena replay in a subprocess ----------------------------------------------------------------------------------
def _arena(*args, timeout=300):
    env = dict(os.environ, PYTHONPATH=str(ROOT), SDL_VIDEODRIVER="dummy")
    return subprocess.run([sys.executable, "-m", "server.cli", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


def _recording(tmp_path, arena, **options):
    from server.spectator.replay import Recorder

    runner = _runner(arena, 6, **options)
    rec = Recorder(runner, seed=2)
    runner.play(games=6, on_step=rec.on_step)
    return rec.save(tmp_path / f"{arena}.npz"), rec.recording()


def test_replay_frames_and_gif_of_connect4(tmp_path):
    from server.spectator.replay import replay

    path, recording = _recording(tmp_path, "connect4")
    k = next(i for i, m in enumerate(recording) if m.winner >= 0)
    match = recording.match(k)
    p = _arena("replay", str(path), "--match", str(k), "--frames", str(tmp_path / "frames"),
               "--gif", str(tmp_path / "m.gif"))
    assert p.returncode == 0, p.stderr
    assert f"match {k}:" in p.stdout and "wins" in p.stdout
    pngs = sorted((tmp_path / "frames").glob("frame_*.png"))
    assert [q.name for q in pngs] == [f"frame_{t:05d}.png" for t in range(match.length + 1)]
    first, last = pygame.image.load(str(pngs[0])), pygame.image.load(str(pngs[-1]))
    size = first.get_size()
    final = replay(match).final
    at = lambda r, c: R.cell_center("connect4", final, size, r, c)
    assert all(_pixel(first, at(r, c)) == R.HOLE for r in range(6) for c in range(7)), "frame 0: the empty board"
    for r in range(6):
        for c in range(7):
            assert _pixel(last, at(r, c)) == R.PIECE.get(int(final["board"][r, c]), R.HOLE)
    win = R.winning_cells(final["board"])
    assert set(final["board"][win]) == {match.winner + 1}
    _, _, cell = R.board_geometry(size, 6, 7)
    r, c = np.argwhere(win)[0]
    x, y = at(r, c)
    assert _pixel(last, (x + int(cell * 0.4) - 1, y)) == R.WIN_RING, "the last frame rings the winning four"
    frames = pygame.image.load_animation(str(tmp_path / "m.gif"))
    assert len(frames) == match.length + 1
    gif_last = pygame.surfarray.array3d(frames[-1][0])
    assert np.array_equal(gif_last, pygame.surfarray.array3d(last)), "the GIF's last frame is the last PNG"


def test_replay_frames_of_battle(tmp_path):
    from server.spectator.replay import replay

    path, recording = _recording(tmp_path, "battle", team_size=3, map_size=12, max_steps=40)
    match = recording.match(0)
    p = _arena("replay", str(path), "--frames", str(tmp_path / "frames"), "--size", "480x560")
    assert p.returncode == 0, p.stderr
    pngs = sorted((tmp_path / "frames").glob("frame_*.png"))
    assert len(pngs) == match.length + 1
    states = []
    replay(match, on_frame=lambda snap, t: states.append(snap))
    for t in (0, len(pngs) // 2, len(pngs) - 1):
        image = pygame.image.load(str(pngs[t]))
        assert image.get_size() == (480, 560)
        snap = states[t]
        for j in np.flatnonzero(snap["alive"]):
            xy = R.cell_center("battle", snap, (480, 560), *snap["pos"][j])
            assert _pixel(image, xy) == R.TEAM_COLOUR[snap["team"][j]], f"frame {t}: agent {j} in its team colour"


def test_run_record_then_replay_verify_and_bad_files(tmp_path):
    p = _arena("run", "connect4", "--matches", "24", "--agents", "greedy,random", "--record", str(tmp_path),
               "--no-progress")
    assert p.returncode == 0, p.stderr
    files = list(tmp_path.glob("connect4-seed0*.npz"))
    assert len(files) == 1 and "recorded 24 matches" in p.stderr
    p = _arena("replay", str(files[0]), "--verify", "--list")
    assert p.returncode == 0, p.stderr
    assert "replayed 24 matches: 24 ended exactly as recorded" in p.stdout
    assert p.stdout.count("  match ") == 24
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a recording")
    p = _arena("replay", str(bad), "--frames", str(tmp_path / "x"))
    assert p.returncode == 2 and "not a valid arena recording" in p.stderr and len(p.stderr.strip().splitlines()) == 1
