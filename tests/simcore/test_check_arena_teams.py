"""The contract's per-team observation spaces and continuous actions, and check_arena on them."""
import gymnasium
import numpy as np
import pytest

from simcore import BatchedGame, check_arena
from simcore.check import random_actions, uniform_in_box


class Drift(BatchedGame):
    """A toy game: two seats push a shared point with float actions; seat 0 sees 3 numbers, seat 1 two."""

    name = "drift"
    stat_names = ("distance",)

    def __init__(self, num_matches=1, dirty_padding=False, int_actions=False):
        def box(n):
            return gymnasium.spaces.Box(-10, 10, (n,), np.float32)

        self._allocate(num_matches, 2, np.array([0, 1]), box(3), 0, team_observation_spaces=(box(3), box(2)),
                       action_space=gymnasium.spaces.Box(-1, 1, (2,), np.float32))
        if int_actions:
            self.actions = np.zeros((num_matches, 2), np.int64)
        self.point = np.zeros((num_matches, 2))
        self.dirty_padding = dirty_padding
        self.action_mask[:] = 1

    def _reset_all(self):
        self.point[:] = 0
        self._write()

    def _write(self):
        self.obs[:, 0, :2] = self.point
        self.obs[:, 0, 2] = self.step_count
        self.obs[:, 1, :2] = -self.point
        self.obs[:, 1, 2] = 1.0 if self.dirty_padding else 0.0
        self.active[:] = True

    def _step(self):
        self.point += 0.1 * self.actions.reshape(self.num_matches, 2, -1).sum(axis=1)[:, :2]
        self.step_count += 1
        done = self.step_count >= 5
        self.rewards[:] = 0
        self.truncations[:] = done[:, None]
        self.episode_done[:] = done
        self.episode_winner[:] = np.where(self.point[:, 0] > 0, 0, 1)
        self.episode_length[:] = np.where(done, self.step_count, 0)
        self.episode_stats[:, :, 0] = np.linalg.norm(self.point, axis=1)[:, None]
        self.point[done] = 0
        self.step_count[done] = 0
        self._write()


def test_a_correct_game_passes_and_exposes_the_spaces():
    game = Drift(8)
    check_arena(game, steps=30)
    assert game.continuous_actions and game.num_actions == 2 and game.action_shape == (2,)
    assert game.actions.shape == (8, 2, 2) and game.actions.dtype == np.float32
    assert [s.shape for s in game.team_observation_spaces] == [(3,), (2,)]
    assert game.team_obs_index(1) == (slice(0, 2),)


def test_nonzero_padding_is_caught():
    with pytest.raises(AssertionError, match="zero beyond its observation space"):
        check_arena(Drift(8, dirty_padding=True), steps=30)


def test_an_integer_buffer_for_a_box_is_caught():
    with pytest.raises(AssertionError, match="actions must be float32"):
        check_arena(Drift(8, int_actions=True), steps=30)


def test_bad_team_spaces_are_refused_at_allocation():
    game = BatchedGame()
    box = gymnasium.spaces.Box(0, 1, (3,), np.float32)
    with pytest.raises(ValueError, match="one space per team"):
        game._allocate(2, 2, np.array([0, 1]), box, 4, team_observation_spaces=(box,))
    with pytest.raises(ValueError, match="fit inside"):
        game._allocate(2, 2, np.array([0, 1]), box, 4,
                       team_observation_spaces=(box, gymnasium.spaces.Box(0, 1, (4,), np.float32)))
    with pytest.raises(ValueError, match="1-D gymnasium Box"):
        game._allocate(2, 2, np.array([0, 1]), box, 4, action_space=gymnasium.spaces.Discrete(3))


def test_random_actions_fit_the_space():
    game = Drift(4)
    out = random_actions(game, np.random.default_rng(0))
    assert out.shape == game.actions.shape and out.dtype == np.float32 and (np.abs(out) <= 1).all()
    unbounded = gymnasium.spaces.Box(-np.inf, np.inf, (3,), np.float32)
    assert (np.abs(uniform_in_box(unbounded, np.random.default_rng(0).random((5, 3)))) <= 1).all()
