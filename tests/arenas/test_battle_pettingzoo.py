"""Battle as a PettingZoo Parallel env."""
from __future__ import annotations

import numpy as np
import pytest
from pettingzoo.test import parallel_api_test

import arenas
from arenas.battle.pettingzoo_env import BattleParallelEnv, parallel_env


@pytest.mark.filterwarnings("error::UserWarning")  # parallel_api_test reports API problems as warnings
@pytest.mark.parametrize("options", [dict(), dict(team_size=2, map_size=8, view=3, obs_dtype="float32")])
def test_parallel_api(options):
    parallel_api_test(parallel_env(**options), num_cycles=1000)


def test_registry_gives_the_parallel_env():
    env = arenas.make_pettingzoo("battle", team_size=3)
    assert isinstance(env, BattleParallelEnv)
    assert env.possible_agents == ["red_0", "red_1", "red_2", "blue_0", "blue_1", "blue_2"]


def test_reset_spaces_and_masks():
    env = parallel_env(team_size=2, view=5)
    obs, infos = env.reset(seed=0)
    assert env.agents == env.possible_agents and set(obs) == set(env.agents)
    for agent in env.agents:
        assert obs[agent] in env.observation_space(agent)
        assert obs[agent].shape == (5, 5, 4)
        assert infos[agent]["action_mask"].tolist() == [1] * 9
        assert env.action_space(agent).n == 9
    assert obs["red_0"][2, 2, 1] == 1 and obs["blue_1"][2, 2, 1] == 1
    state = env.state()
    assert state.shape == (32, 32) and (state == 1).sum() == 2 and (state == 2).sum() == 2
    again, _ = env.reset(seed=0)
    for agent in env.agents:
        np.testing.assert_array_equal(again[agent], obs[agent])


def test_dead_agents_leave_and_match_ends():
    env = parallel_env(team_size=1, map_size=8, walls=False, max_hp=2)
    env.reset(seed=0)
    game = env.game
    # put red next to blue; red kills blue with one hit
    game.grid[0] = game.wall_grid
    game.pos[0] = [(3, 3), (3, 4)]
    for i, (r, c) in enumerate(game.pos[0]):
        game.grid[0, r + game.pad, c + game.pad] = 2 + i
    obs, rewards, terms, truncs, infos = env.step({"red_0": 8, "blue_0": 0})
    assert terms == {"red_0": True, "blue_0": True} and truncs == {"red_0": False, "blue_0": False}
    assert rewards["red_0"] == pytest.approx(0.2 + 1.0) and rewards["blue_0"] == 0.0
    assert obs["blue_0"].max() == 0 and obs["red_0"][3, 3, 1] == 1
    assert env.agents == []
    assert game.episode_winner[0] == 0


def test_a_dead_agent_is_gone_while_the_match_goes_on():
    env = parallel_env(team_size=2, map_size=8, walls=False, max_hp=2)
    env.reset(seed=1)
    game = env.game
    game.grid[0] = game.wall_grid
    game.pos[0] = [(3, 3), (0, 0), (3, 4), (7, 7)]
    for i, (r, c) in enumerate(game.pos[0]):
        game.grid[0, r + game.pad, c + game.pad] = 2 + i
    _, _, terms, _, _ = env.step({a: (8 if a == "red_0" else 0) for a in env.agents})
    assert terms["blue_0"] and not terms["blue_1"] and not terms["red_0"]
    assert env.agents == ["red_0", "red_1", "blue_1"]
    obs, rewards, terms, truncs, infos = env.step({a: 0 for a in env.agents})
    assert set(obs) == set(rewards) == set(terms) == set(infos) == {"red_0", "red_1", "blue_1"}
    with pytest.raises(ValueError, match="unknown agent"):
        env.step({"green_0": 1})


def test_truncation_ends_every_agent():
    env = parallel_env(team_size=2, max_steps=5)
    env.reset(seed=0)
    for _ in range(4):
        _, _, terms, truncs, _ = env.step({a: 0 for a in env.agents})
        assert not any(truncs.values())
    _, _, terms, truncs, _ = env.step({a: 0 for a in env.agents})
    assert all(truncs.values()) and len(truncs) == 4 and env.agents == []
