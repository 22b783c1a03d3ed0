"""The greedy battle agent: its rules on hand-made windows, and that it beats random play."""
from __future__ import annotations

import numpy as np
import pytest

from agents import make_agent
from agents.greedy_battle import BattleGreedy
from agents.random_agent import RandomAgent
from arenas.battle import Battle

WALL, ALLY, ENEMY, HP = 0, 1, 2, 3
FULL = np.ones(9, dtype=np.int8)


def window(view=7, dtype=np.uint8):
    o = np.zeros((view, view, 4), dtype=dtype)
    c = view // 2
    o[c, c, ALLY] = 1
    o[c, c, HP] = 1
    return o


def put(o, r, c, channel, hp=5):
    o[r, c, channel] = 1
    if channel in (ALLY, ENEMY):
        o[r, c, HP] = hp if o.dtype == np.uint8 else hp / 10


def act(obs_rows, seed=0, masks=None):
    obs = np.stack(obs_rows)
    mask = np.stack(masks) if masks is not None else np.tile(FULL, (len(obs_rows), 1))
    return BattleGreedy(seed=seed).act(obs, mask).tolist()


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_attacks_the_weakest_adjacent_enemy(dtype):
    o = window(dtype=dtype)
    put(o, 2, 3, ENEMY, hp=6)  # up
    put(o, 3, 4, ENEMY, hp=2)  # right
    put(o, 3, 2, ALLY, hp=1)   # an ally on the left is never attacked
    assert act([o]) == [8]
    o2 = window(dtype=dtype)
    put(o2, 4, 3, ENEMY, hp=3)  # down
    put(o2, 3, 2, ENEMY, hp=3)  # left, same hp: the first in up/down/left/right order
    assert act([o2]) == [6]


@pytest.mark.parametrize("view", [3, 5, 7, 9])
def test_moves_towards_the_nearest_enemy_along_the_larger_gap(view):
    c = view // 2
    o = window(view)
    put(o, 0, view - 1, ENEMY)  # up-right, |dy| == |dx|: vertical first
    assert act([o]) == [1]
    if view >= 5:
        o = window(view)
        put(o, c + 1, view - 1, ENEMY)  # down 1, right c: horizontal gap larger
        put(o, 0, 0, ENEMY)             # further away
        assert act([o]) == [4]
        put(o, c, c + 1, WALL)          # blocked: the other axis (down)
        assert act([o]) == [2]


def test_blocked_both_ways_and_no_enemy_give_random_unblocked_moves():
    o = window()
    for r, c in ((2, 3), (4, 3), (3, 2)):  # walls up, down, left: only right is free
        put(o, r, c, WALL)
    assert act([o], seed=1) == [4]
    chase = window()
    put(chase, 0, 5, ENEMY)  # up 3, right 2
    put(chase, 2, 3, WALL)
    put(chase, 3, 4, ALLY)   # up and right blocked: a random free move (down or left)
    picks = act([chase] * 100)
    assert set(picks) == {2, 3}
    boxed = window()
    for r, c in ((2, 3), (4, 3), (3, 2), (3, 4)):
        put(boxed, r, c, ALLY)
    assert act([boxed]) == [0]
    lone = [window() for _ in range(200)]
    a1, a2 = act(lone, seed=7), act(lone, seed=7)
    assert a1 == a2, "same seed, same actions"
    assert set(a1) == {1, 2, 3, 4}
    assert act(lone, seed=8) != a1


def test_dead_rows_stay():
    dead = np.zeros((7, 7, 4), dtype=np.uint8)
    mask = np.zeros(9, dtype=np.int8)
    mask[0] = 1
    assert act([dead], masks=[mask]) == [0]


def test_registry_builds_it_and_it_plays_a_batch():
    game = Battle(num_matches=8, view=5, obs_dtype="float32")
    agent = make_agent("greedy", game, seed=3)
    assert isinstance(agent, BattleGreedy) and agent.name == "greedy"
    out = agent.act(game.obs.reshape(-1, 5, 5, 4), game.action_mask.reshape(-1, 9))
    assert out.shape == (128,) and out.dtype == np.int64 and ((out >= 0) & (out <= 8)).all()
    with pytest.raises(ValueError, match="view"):
        agent.act(np.zeros((2, 6, 6, 4), np.float32), np.ones((2, 9), np.int8))


@pytest.mark.parametrize("greedy_team", [0, 1])
def test_greedy_beats_random(greedy_team):
    n = 128
    game = Battle(num_matches=n, auto_reset=False, map_size=16)
    game.reset(seed=11 + greedy_team)
    greedy, rand = BattleGreedy(game, seed=1), RandomAgent(game, seed=2)
    k = game.team_size
    mine = slice(0, k) if greedy_team == 0 else slice(k, 2 * k)
    theirs = slice(k, 2 * k) if greedy_team == 0 else slice(0, k)
    actions = np.zeros((n, 2 * k), dtype=np.int64)
    winners = np.full(n, -2)
    for _ in range(game.options["max_steps"]):
        for agent, seats in ((greedy, mine), (rand, theirs)):
            obs = game.obs[:, seats].reshape((-1,) + game.obs_shape)
            actions[:, seats] = agent.act(obs, game.action_mask[:, seats].reshape(-1, 9)).reshape(n, k)
        game.step(actions)
        winners[game.episode_done] = game.episode_winner[game.episode_done]
    assert (winners != -2).all()
    assert (winners == greedy_team).mean() > 0.7
