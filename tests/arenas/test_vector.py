"""The Gymnasium-style vector view: one row per (match, seat), views of the game's own buffers."""
import numpy as np
import pytest
from gymnasium import spaces
from gymnasium.vector import AutoresetMode

import arenas


@pytest.mark.parametrize("name, per_match", [("battle", 16), ("connect4", 2), ("tag", 4)])
def test_vector_api(name, per_match):
    env = arenas.make_vector(name, num_envs=per_match * 8, seed=3)
    assert env.num_envs == per_match * 8 and env.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP
    obs, infos = env.reset(seed=3)
    assert obs.shape == (env.num_envs,) + env.single_observation_space.shape
    assert env.observation_space.shape == obs.shape and obs.dtype == env.single_observation_space.dtype
    assert infos["action_mask"].shape == (env.num_envs, env.single_action_space.n)
    rng = np.random.default_rng(0)
    ended = 0
    for _ in range(250):
        mask = infos["action_mask"].astype(bool)
        actions = np.array([rng.choice(np.flatnonzero(m)) if m.any() else 0 for m in mask])
        assert env.action_space.contains(actions)
        obs, rewards, terms, truncs, infos = env.step(actions)
        assert rewards.shape == terms.shape == truncs.shape == (env.num_envs,)
        assert env.single_observation_space.contains(obs[0])
        ended += int((terms | truncs).sum())
    assert ended > 0, "matches end and restart under the vector view"


def test_vector_rows_are_views_of_the_batched_game():
    env = arenas.make_vector("battle", num_envs=32, seed=0)
    obs, _ = env.reset(seed=0)
    assert np.shares_memory(obs, env.game.obs), "no copies: the rows are the game's buffer"
    assert (obs.reshape(env.game.obs.shape) == env.game.obs).all()


def test_num_envs_must_fill_whole_matches():
    with pytest.raises(ValueError, match="multiple of battle's 16 agents per match"):
        arenas.make_vector("battle", num_envs=20)


def test_same_seed_same_rollout():
    def roll():
        env = arenas.make_vector("battle", num_envs=64, seed=5, team_size=2, map_size=12)
        env.reset(seed=5)
        acts = np.random.default_rng(1).integers(0, 9, size=(40, 64))
        return [env.step(a)[1].copy() for a in acts]
    assert all((a == b).all() for a, b in zip(roll(), roll()))


# -- continuous actions and per-team observations (tag) ------------------------------------------------
def test_a_box_action_space_is_batched_and_actions_are_vectors_per_row():
    env = arenas.make_vector("tag", num_envs=4 * 8, seed=3, continuous_actions=True)
    assert isinstance(env.single_action_space, spaces.Box) and env.single_action_space.shape == (5,)
    assert isinstance(env.action_space, spaces.Box)
    assert env.action_space.shape == (32, 5) and env.action_space.dtype == np.float32
    assert (env.action_space.low == 0).all() and (env.action_space.high == 1).all()
    obs, infos = env.reset(seed=3)
    assert obs.shape == (32, 16) and infos["action_mask"].shape == (32, 5)
    for t in range(25):
        actions = env.action_space.sample()
        assert env.action_space.contains(actions)
        obs, rewards, terms, truncs, infos = env.step(actions)
        np.testing.assert_array_equal(env.game.actions.reshape(32, 5), actions)
        assert rewards.shape == terms.shape == truncs.shape == (32,)
    assert truncs.all() and not terms.any(), "every tag match is truncated after max_cycles (25) steps"
    assert env.game.step_count.tolist() == [0] * 8, "and restarted in the same step"


def test_a_seeded_box_action_space_samples_the_same_actions():
    a = arenas.make_vector("tag", num_envs=8, seed=9, continuous_actions=True).action_space.sample()
    b = arenas.make_vector("tag", num_envs=8, seed=9, continuous_actions=True).action_space.sample()
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("continuous", [False, True])
def test_row_m_times_a_plus_s_is_seat_s_of_match_m(continuous):
    from arenas.tag.game import Tag

    env = arenas.make_vector("tag", num_envs=4 * 6, seed=2, continuous_actions=continuous)
    env.reset(seed=2)
    game = Tag(num_matches=6, continuous_actions=continuous)
    game.reset(seed=2)
    rng = np.random.default_rng(0)
    for _ in range(30):
        if continuous:           # values outside the Box too: the game clips them
            actions = rng.uniform(-0.5, 1.5, size=(24, 5)).astype(np.float32)
        else:
            actions = rng.integers(0, 5, size=24)
        obs, rewards, _, truncs, _ = env.step(actions)
        game.step(actions.reshape(game.actions.shape))
        np.testing.assert_array_equal(obs, game.obs.reshape(24, 16))
        np.testing.assert_array_equal(rewards, game.rewards.reshape(-1))
        np.testing.assert_array_equal(truncs, game.truncations.reshape(-1))


def test_per_team_rows_are_padded_to_the_single_observation_space():
    env = arenas.make_vector("tag", num_envs=4 * 5, seed=1)
    obs, _ = env.reset(seed=1)
    for _ in range(3):
        obs, *_ = env.step(np.random.default_rng(0).integers(0, 5, size=20))
    g = env.game
    team = g.seat_team[np.arange(env.num_envs) % g.num_agents]
    assert env.single_observation_space.shape == (16,) and env.observation_space.shape == (20, 16)
    assert (obs[team == 1, 14:] == 0).all(), "a good agent's row is zero beyond its 14 numbers"
    assert (obs[team == 0, 14:] != 0).any(), "an adversary sees 16"
    for r in range(env.num_envs):
        part = obs[r][g.team_obs_index(int(team[r]))]
        assert g.team_observation_spaces[int(team[r])].contains(part)
