"""Segments assembled by the game server (server.play.trajectory) and per-match seating (server.play.seating)."""
import numpy as np
import pytest

import arenas
from agents import make_agent
from server.play.match import MatchRunner
from server.play.seating import OpponentMix
from server.play.trajectory import TrajectoryRecorder

OURS = 0


def play_connect4(rec, game, columns, seats=(0, 1), version=7, owner=None):
    """Drop pieces in ``columns`` (one match), each decision recorded for the seats in ``seats``."""
    owner = np.zeros(2, np.int64) if owner is None else owner
    for col in columns:
        seat = int(np.flatnonzero(game.active[0])[0])
        rows = np.array([seat]) if seat in seats else np.array([], dtype=np.int64)
        rec.decide(rows, np.array([col] * rows.size), np.full(rows.size, -0.5, np.float32), version)
        actions = np.zeros((1, 2), np.int64)
        actions[0, seat] = col
        game.step(actions)
        rec.observe(np.flatnonzero(game.episode_done), owner)


def recorder(game, horizon, chunk=1, learners=1, win_reward=0.0):
    shares = np.arange(game.num_matches) % learners
    return TrajectoryRecorder(game, OURS, horizon, chunk, shares, learners, win_reward=win_reward, capacity=4096)


def test_connect4_credit_reaches_each_seat_after_the_reply():
    game = arenas.make("connect4", num_matches=1, seed=0)
    rec = recorder(game, horizon=2)
    # player_0 stacks column 0, player_1 column 1: player_0 wins on its 4th move (the 7th ply)
    play_connect4(rec, game, [0, 1, 0, 1, 0, 1, 0])
    assert game.episode_done[0] and game.episode_winner[0] == 0
    box = rec.outbox[0]
    assert box.size == 3
    s0 = [i for i in range(3) if box.actions[i, 0] == 0]
    s1 = [i for i in range(3) if box.actions[i, 0] == 1]
    assert len(s0) == 2 and len(s1) == 1
    first0, second0 = s0
    np.testing.assert_array_equal(box.rewards[first0], [0, 0])
    np.testing.assert_array_equal(box.rewards[second0], [0, 1])          # the win, on the winning move
    np.testing.assert_array_equal(box.dones[second0], [False, True])
    assert (box.version[:3] == 7).all() and (box.logp[:3] == -0.5).all() and box.valid[:3].all()
    assert box.obs[first0, 2, :, :, 0].sum() == 2 and box.obs[first0, 2, :, :, 1].sum() == 2
    # seat 1's last move got the loss with done; it stays ours next match, so the stream goes on
    assert rec.ptr[1] == 1 and not rec.open[1]
    assert rec.rewards[1, 0] == -1 and rec.dones[1, 0]


def test_a_stream_whose_seat_changes_hands_is_emitted_at_the_match_end():
    game = arenas.make("connect4", num_matches=1, seed=0)
    rec = recorder(game, horizon=4)
    # seat 1 will be someone else's next match: its unfinished stream goes out, cut short and done
    play_connect4(rec, game, [0, 1, 0, 1, 0, 1, 0], owner=np.array([OURS, 5]))
    box = rec.outbox[0]
    seat1 = [i for i in range(box.size) if box.actions[i, 0] == 1]
    assert len(seat1) == 1
    i = seat1[0]
    np.testing.assert_array_equal(box.valid[i], [True, True, True, False])
    np.testing.assert_array_equal(box.rewards[i], [0, 0, -1, 0])
    np.testing.assert_array_equal(box.dones[i], [False, False, True, False])
    np.testing.assert_array_equal(box.version[i], [7, 7, 7, -1])
    assert rec.ptr[1] == 0


def test_the_win_bonus_reaches_both_teams_seats():
    game = arenas.make("connect4", num_matches=1, seed=0)
    rec = recorder(game, horizon=4, win_reward=0.5)
    play_connect4(rec, game, [0, 1, 0, 1, 0, 1, 0], owner=np.array([5, 5]))   # both emitted at the end
    box = rec.outbox[0]
    by_seat = {int(box.actions[i, 0]): i for i in range(box.size)}
    assert box.rewards[by_seat[0]].sum() == pytest.approx(1 + 0.5)     # win +1 from the game, +0.5 bonus
    assert box.rewards[by_seat[1]].sum() == pytest.approx(-1 - 0.5)


def test_rows_record_the_version_that_produced_them_across_a_swap():
    game = arenas.make("connect4", num_matches=1, seed=0)
    rec = recorder(game, horizon=4)
    play_connect4(rec, game, [0, 1], version=3)
    play_connect4(rec, game, [0, 1, 0, 1, 0], version=4, owner=np.array([5, 5]))
    box = rec.outbox[0]
    for i in range(box.size):
        v = box.version[i][box.valid[i]]
        assert list(v) == sorted(v) and set(v) <= {3, 4}
        assert v[0] == 3


def test_segments_go_to_the_learner_that_owns_the_slot():
    game = arenas.make("connect4", num_matches=4, seed=0)
    rec = recorder(game, horizon=2, learners=2)
    rng = np.random.default_rng(0)
    for _ in range(40):
        rows = np.flatnonzero(game.active.reshape(-1))
        mask = game.action_mask.reshape(-1, 7)[rows]
        acts = np.array([rng.choice(np.flatnonzero(m)) for m in mask])
        rec.decide(rows, acts, np.zeros(rows.size, np.float32), 1)
        actions = np.zeros((4, 2), np.int64)
        actions.reshape(-1)[rows] = acts
        game.step(actions)
        rec.observe(np.flatnonzero(game.episode_done), np.zeros(8, np.int64))
    assert rec.outbox[0].size > 0 and rec.outbox[1].size > 0
    # learner 0 owns slots 0 and 2: its boards are theirs (checked through the first observation of each
    # segment being a legal position of those slots is impractical; check the routing table instead)
    np.testing.assert_array_equal(rec.row_share, [0, 0, 1, 1, 0, 0, 1, 1])


def test_every_reward_lands_in_exactly_one_decision_in_battle():
    game = arenas.make("battle", num_matches=8, seed=0, team_size=4, map_size=16)
    rec = recorder(game, horizon=8, learners=2)
    opp = make_agent("random", game, seed=1)
    received = 0.0
    n, a = game.num_matches, game.num_agents
    owner = np.zeros(n * a, np.int64)
    for _ in range(120):
        rows = np.flatnonzero(game.active.reshape(-1))
        acts = opp.act(game.obs.reshape((n * a,) + game.obs_shape)[rows], game.action_mask.reshape(n * a, -1)[rows])
        was_open = rec.open.copy()
        rec.decide(rows, acts, np.zeros(rows.size, np.float32), 0)
        actions = np.zeros((n, a), np.int64)
        actions.reshape(-1)[rows] = acts
        game.step(actions)
        received += float(game.rewards.reshape(-1)[rec.open | was_open].sum())
        rec.observe(np.flatnonzero(game.episode_done), owner)
    in_boxes = sum(float(b.rewards[:b.size].sum()) for b in rec.outbox)
    open_rows = np.arange(n * a)
    in_streams = float(sum(rec.rewards[r, :rec.ptr[r]].sum() for r in open_rows))
    assert in_boxes + in_streams == pytest.approx(received, rel=1e-5, abs=1e-4)
    assert rec.lost == 0


def test_the_opponent_mix_reseats_each_slot_per_match_with_the_learner_alternating():
    game = arenas.make("connect4", num_matches=64, seed=0)
    agents = [make_agent("random", game, seed=i) for i in range(4)]
    names = ["L0", "L1", "random", "greedy"]
    shares = np.arange(64) % 2
    mix = OpponentMix([0, 1], {"self": 0.5, "random": 0.25, "greedy": 0.25}, {n: i for i, n in enumerate(names)},
                      shares, seed=0)
    runner = MatchRunner(game, agents, names)
    runner.reseat(np.arange(64), mix.initial())
    runner.seating = mix
    runner.reset(0)
    runner.stop_rule(games=2000)
    seen = []
    while not runner.done:
        runner.account(runner.step())
        seen.append(runner.team_agent.copy())
    seen = np.stack(seen)
    learner = np.array([0, 1])[shares]                      # every match of slot m has its share's learner
    assert ((seen == learner[None, :, None]).any(axis=2)).all()
    opp = np.where(seen[:, :, 0] == learner[None], seen[:, :, 1], seen[:, :, 0])
    frac = {k: float((opp == i).mean()) for i, k in enumerate(names)}
    assert frac["L0"] + frac["L1"] == pytest.approx(0.5, abs=0.1)
    assert frac["random"] == pytest.approx(0.25, abs=0.08) and frac["greedy"] == pytest.approx(0.25, abs=0.08)
    versus = seen[:, :, 0] != seen[:, :, 1]                 # not self-play: the learner's side alternates
    first = (seen[:, :, 0] == learner[None])[versus]
    assert 0.35 < first.mean() < 0.65


def test_reseated_slots_are_played_by_the_agents_seated_there():
    """The seats an agent is asked for follow ``reseat``: greedy seated against random wins as it should."""
    game = arenas.make("connect4", num_matches=128, seed=0)
    names = ["L0", "greedy"]
    agents = [make_agent("random", game, seed=1), make_agent("greedy", game, seed=2)]
    mix = OpponentMix([0], {"greedy": 1.0}, {n: i for i, n in enumerate(names)}, np.zeros(128, np.int64))
    runner = MatchRunner(game, agents, names)
    runner.reseat(np.arange(128), mix.initial())
    runner.seating = mix
    runner.reset(0)
    runner.stop_rule(games=1000)
    while not runner.done:
        runner.account(runner.step())
    assert runner.totals[1].wins > 0.9 * runner.totals[1].games
