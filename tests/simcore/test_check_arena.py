"""check_arena must catch a broken arena with a message that says what to fix."""
import gymnasium
import numpy as np
import pytest

from simcore import BatchedGame, check_arena


class Race(BatchedGame):
    """A toy game for the check itself: two seats each add 1 or 2; first to 10 wins."""

    name = "race"
    stat_names = ("total",)

    def __init__(self, num_matches=1, replace_buffers=False, forget_reset=False):
        self._allocate(num_matches, 2, np.array([0, 1]), gymnasium.spaces.Box(0, 12, (2,), np.float32), 2)
        self.score = np.zeros((num_matches, 2), np.int64)
        self.replace_buffers, self.forget_reset = replace_buffers, forget_reset

    def _reset_all(self):
        self.score[:] = 0
        self._write()

    def _write(self):
        self.obs[:, :, 0] = self.score
        self.obs[:, :, 1] = self.score[:, ::-1]
        self.action_mask[:] = 1
        self.active[:] = True

    def _step(self):
        if self.replace_buffers:
            self.rewards = np.zeros_like(self.rewards)
        self.score += self.actions + 1
        self.step_count += 1
        won = self.score >= 10
        done = won.any(axis=1)
        self.rewards[:] = np.where(won, 1.0, 0.0)
        self.terminations[:] = done[:, None]
        self.episode_done[:] = done
        both = won.all(axis=1)
        self.episode_winner[:] = np.where(both, -1, np.argmax(won, axis=1))
        self.episode_length[:] = np.where(done, self.step_count, 0)
        self.episode_stats[:, :, 0] = self.score
        if not self.forget_reset:
            self.score[done] = 0
            self.step_count[done] = 0
        self._write()


def test_a_correct_game_passes():
    check_arena(Race(8), steps=50)


def test_replaced_buffers_are_caught():
    with pytest.raises(AssertionError, match="buffers were replaced"):
        check_arena(Race(8, replace_buffers=True), steps=50)


def test_missing_auto_reset_is_caught():
    with pytest.raises(AssertionError, match="auto-reset"):
        check_arena(Race(8, forget_reset=True), steps=50)
