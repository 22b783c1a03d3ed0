"""The connect4 AEC adapter: PettingZoo's API test, and game-by-game agreement with ``connect_four_v3``."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from pettingzoo.classic.connect_four import connect_four as connect_four_v3  # the module behind connect_four_v3
from pettingzoo.test import api_test

import arenas
from arenas.connect4 import SPEC
from arenas.connect4.pettingzoo_env import env as arena_env


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # api_test's advice and the illegal-move notices
        yield


def test_api_test():
    api_test(arena_env(), num_cycles=1000)


def test_same_agents_spaces_and_registry():
    ours, theirs = arenas.make_pettingzoo("connect4"), connect_four_v3.env()
    assert SPEC.pettingzoo is arena_env
    assert ours.metadata["name"] == "connect4_arena_v0"
    assert ours.possible_agents == theirs.possible_agents == ["player_0", "player_1"]
    for agent in theirs.possible_agents:
        assert ours.observation_space(agent) == theirs.observation_space(agent)
        assert ours.action_space(agent) == theirs.action_space(agent)
    arena_env(render_mode=None)
    with pytest.raises(ValueError, match="render_mode"):
        arena_env(render_mode="human")


def _assert_same_state(ours, theirs, where):
    assert ours.agents == theirs.agents, where
    if not theirs.agents:
        return
    assert ours.agent_selection == theirs.agent_selection, where
    for agent in theirs.agents:
        a, b = ours.observe(agent), theirs.observe(agent)
        np.testing.assert_array_equal(a["observation"], b["observation"], err_msg=where)
        np.testing.assert_array_equal(a["action_mask"], b["action_mask"], err_msg=where)
        assert a["observation"].dtype == b["observation"].dtype == np.int8
        assert ours.rewards[agent] == theirs.rewards[agent], where
        assert ours._cumulative_rewards[agent] == theirs._cumulative_rewards[agent], where
        assert ours.terminations[agent] == theirs.terminations[agent], where
        assert ours.truncations[agent] == theirs.truncations[agent], where


def test_random_games_agree_with_connect_four_v3():
    """1000 random games move by move in both envs; every 10th fills one column and plays it once more."""
    rng = np.random.default_rng(0)
    ours, theirs = arena_env(), connect_four_v3.env()
    endings = {"win": 0, "draw": 0, "illegal": 0}
    for game in range(1000):
        ours.reset(seed=game)
        theirs.reset(seed=game)
        fill = int(rng.integers(0, 7)) if game % 10 == 0 else -1  # the column to fill, then overfill
        pieces, final = 0, {}
        for agent in theirs.agent_iter():
            where = f"game {game}, after {pieces} pieces"
            _assert_same_state(ours, theirs, where)
            obs, reward, terminated, truncated, _ = theirs.last()
            mine = ours.last()
            np.testing.assert_array_equal(mine[0]["observation"], obs["observation"], err_msg=where)
            np.testing.assert_array_equal(mine[0]["action_mask"], obs["action_mask"], err_msg=where)
            assert mine[1:4] == (reward, terminated, truncated), where
            if terminated or truncated:
                final[agent] = (reward, truncated)
                action = None
            elif fill >= 0 and pieces >= game % 20 // 10:  # odd tens: one other move first
                action = fill
                pieces += int(obs["action_mask"][fill])
            else:
                action = int(rng.choice(np.flatnonzero(obs["action_mask"])))
                pieces += 1
            theirs.step(action)
            ours.step(action)
        _assert_same_state(ours, theirs, f"game {game}, end")
        assert not ours.agents
        # the same final board and the same last step
        board = np.asarray(theirs.unwrapped.board).reshape(6, 7)
        np.testing.assert_array_equal(ours.unwrapped.game.board[0], board)
        assert ours.unwrapped.game.step_count[0] == pieces == (board != 0).sum()
        rewards = sorted(r for r, _ in final.values())
        if any(t for _, t in final.values()):
            endings["illegal"] += 1
            assert rewards == [-1, 0]
        elif rewards == [0, 0]:
            endings["draw"] += 1
            assert pieces == 42
        else:
            endings["win"] += 1
            assert rewards == [-1, 1]
    assert endings["illegal"] > 50 and endings["win"] > 500 and endings["draw"] > 0, endings


def test_illegal_move_as_connect_four_v3():
    ours, theirs = arena_env(), connect_four_v3.env()
    for e in (ours, theirs):
        e.reset(seed=0)
        for col in (0, 0, 0, 0, 0, 0, 1, 0):  # column 0 is full after six pieces; then player_1 plays it
            e.step(col)
    _assert_same_state(ours, theirs, "after the illegal move")
    assert ours.terminations == ours.truncations == {"player_0": True, "player_1": True}
    assert ours._cumulative_rewards == {"player_0": 0, "player_1": -1}
    with pytest.raises(AssertionError, match="action space"):
        e = arena_env()
        e.reset()
        e.step(7)
