import numpy as np
import pytest

import arenas
from agents import make_agent
from server.match import MatchRunner, seat_plan


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


def test_agent_returning_wrong_shape_is_named():
    class Bad:
        name = "bad"
        def reset(self, seed=None): pass
        def act(self, obs, mask): return np.zeros(3, dtype=np.int64)
    game = arenas.make("connect4", num_matches=8, seed=0)
    r = MatchRunner(game, [Bad(), make_agent("random", game)], ["bad", "random"])
    r.reset(0)
    with pytest.raises(ValueError, match="agent 'bad' returned"):
        r.step()
