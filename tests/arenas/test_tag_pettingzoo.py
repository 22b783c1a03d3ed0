"""Tag as a PettingZoo Parallel env: the API test, and the same agents and spaces as mpe2's simple_tag_v3."""
from __future__ import annotations

import gymnasium
import numpy as np
import pytest
from pettingzoo.test import parallel_api_test

import arenas
from arenas.tag.pettingzoo_env import TagParallelEnv, parallel_env


@pytest.mark.filterwarnings("error::UserWarning")  # parallel_api_test reports API problems as warnings
@pytest.mark.parametrize("options", [dict(), dict(continuous_actions=True),
                                     dict(num_good=2, num_adversaries=2, num_obstacles=0, max_cycles=7)])
def test_parallel_api(options):
    parallel_api_test(parallel_env(**options), num_cycles=100)


def test_registry_gives_the_parallel_env():
    env = arenas.make_pettingzoo("tag", num_adversaries=2, num_good=2)
    assert isinstance(env, TagParallelEnv)
    assert env.possible_agents == ["adversary_0", "adversary_1", "agent_0", "agent_1"]


@pytest.mark.parametrize("continuous", [False, True])
def test_agents_and_spaces_are_mpe2s(continuous):
    from mpe2 import simple_tag_v3

    theirs = simple_tag_v3.parallel_env(continuous_actions=continuous)
    ours = parallel_env(continuous_actions=continuous)
    assert ours.possible_agents == theirs.possible_agents
    for agent in ours.possible_agents:
        assert ours.observation_space(agent) == theirs.observation_space(agent), agent
        assert ours.action_space(agent) == theirs.action_space(agent), agent
    assert ours.state_space == theirs.state_space
    theirs.close()


def test_episode_truncates_every_agent_and_obs_have_team_shapes():
    env = parallel_env(max_cycles=4)
    obs, _ = env.reset(seed=0)
    assert {a: o.shape for a, o in obs.items()} == {"adversary_0": (16,), "adversary_1": (16,),
                                                    "adversary_2": (16,), "agent_0": (14,)}
    assert all(o.dtype == np.float32 for o in obs.values())
    for step in range(4):
        obs, rewards, terms, truncs, _ = env.step({a: 2 for a in env.agents})
        assert set(obs) == set(rewards) == set(truncs) == {"adversary_0", "adversary_1", "adversary_2", "agent_0"}
        assert not any(terms.values())
        assert all(truncs.values()) == (step == 3)
    assert env.agents == [] and env.state().shape == (62,)
    again, _ = env.reset(seed=0)
    first, _ = parallel_env(max_cycles=4).reset(seed=0)
    for agent in first:
        np.testing.assert_array_equal(again[agent], first[agent])
    with pytest.raises(ValueError, match="unknown agent"):
        env.step({"prey_0": 1})


def test_continuous_actions_from_the_box():
    env = parallel_env(continuous_actions=True, num_obstacles=0)
    env.reset(seed=1)
    space = env.action_space("agent_0")
    assert isinstance(space, gymnasium.spaces.Box) and space.shape == (5,)
    before = env.game.vel[0, 3].copy()
    env.step({"agent_0": np.array([0, 0, 1, 0, 0], np.float32)})
    assert env.game.vel[0, 3, 0] > before[0]
