import numpy as np
import pytest

import arenas
from agents import make_agent
from server.play.match import MatchRunner, seat_plan


def test_two_agents_swap_sides_every_other_slot():
    plan = seat_plan(6, 2, 2)
    assert plan.tolist() == [[0, 1], [1, 0]] * 3


def test_round_robin_covers_every_ordered_pair():
    plan = seat_plan(12, 3, 2)
    pairs = {tuple(p) for p in plan.tolist()}
    assert pairs == {(0, 1), (1, 0), (0, 2), (2, 0), (1, 2), (2, 1)}
    assert all(a != b for a, b in plan.tolist())


def _runner(n=64, names=("greedy", "random")):
    game = arenas.make("connect4", num_matches=n, seed=0)
    return MatchRunner(game, [make_agent(nm, game) for nm in names], list(names))


def test_default_counts_each_slot_once():
    r = _runner()
    r.reset(1)
    r.play()
    assert r.games == 64 and r.counted.all()
    assert sorted(m for m, _, _ in r.outcomes) == list(range(64))
    g, rnd = r.totals
    assert g.wins == rnd.losses and g.losses == rnd.wins and g.draws == rnd.draws


def test_games_target_is_exact_and_deterministic():
    outs = []
    for _ in range(2):
        r = _runner(16)
        r.reset(9)
        r.play(games=50)
        assert r.games == 50
        outs.append(r.outcomes)
    assert outs[0] == outs[1]


def test_a_wrong_shape_forfeits_every_match_of_that_call():
    class Bad:
        def reset(self, seed=None): pass
        def act(self, obs, mask): return np.zeros(3, dtype=np.int64)
    game = arenas.make("connect4", num_matches=8, seed=0)
    warnings = []
    r = MatchRunner(game, [Bad(), make_agent("random", game)], ["bad", "random"], warn=warnings.append)
    r.reset(0)
    r.play()
    bad, rnd = r.totals
    assert bad.forfeits == bad.losses == 8 and rnd.wins == 8
    assert len(warnings) == 1 and "agent 'bad' in 'connect4' returned shape" in warnings[0]
    # the forfeited slots restarted from an empty board, and only one outcome was counted per slot
    assert sorted(m for m, _, _ in r.outcomes) == list(range(8))


def test_masked_actions_forfeit_only_their_own_matches():
    class Column3:
        def act(self, obs, mask): return np.full(len(mask), 3)
    game = arenas.make("connect4", num_matches=64, seed=0)
    r = MatchRunner(game, [Column3(), make_agent("random", game)], ["col3", "random"], warn=lambda t: None)
    r.reset(0)
    r.play()
    col3 = r.totals[0]
    assert 0 < col3.forfeits < 64, "only the matches where column 3 filled up are forfeited"
    assert r.games == 64
    [(who, reason)] = list(r.forfeit_log)
    assert who == 0 and reason == "chose a masked (illegal) action"
