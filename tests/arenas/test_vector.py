"""The Gymnasium-style vector view: one row per (match, seat), views of the game's own buffers."""
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode

import arenas


@pytest.mark.parametrize("name, per_match", [("battle", 16), ("connect4", 2)])
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
