"""``Connect4``: the batched game class; it owns the buffers and calls the kernels of ``nb``."""
from __future__ import annotations

import gymnasium
import numpy as np

from simcore.game import BatchedGame

from . import nb as k

#: below this many matches the kernels run on the calling thread: waking threads would cost more than
#: the work (one match-step is well under a microsecond), and the one-match PettingZoo adapter stays quick
SERIAL_BELOW = 256


class Connect4(BatchedGame):
    """Connect four, ``num_matches`` at once; the rules of PettingZoo's ``connect_four_v3``."""

    name = "connect4"
    stat_names = ()
    turn_based = True

    def __init__(self, num_matches: int = 1, *, auto_reset: bool = True, **game_options):
        if game_options:
            raise ValueError(f"connect4 takes no game options; got {', '.join(sorted(game_options))}")
        obs_space = gymnasium.spaces.Box(0, 1, (k.ROWS, k.COLS, 2), np.int8)
        self._allocate(num_matches, 2, np.array([0, 1]), obs_space, k.COLS)
        self.auto_reset = bool(auto_reset)
        self.options = {}
        n = self.num_matches
        self.board = np.zeros((n, k.ROWS, k.COLS), dtype=np.int8)
        self.heights = np.zeros((n, k.COLS), dtype=np.int8)
        self.to_move = np.zeros(n, dtype=np.int8)
        self.over = np.zeros(n, dtype=np.bool_)
        serial = n < SERIAL_BELOW
        self._reset_kernel = k.reset_all_serial_nb if serial else k.reset_all_nb
        self._step_kernel = k.step_serial_nb if serial else k.step_nb
        self._reset_all()

    def _reset_all(self) -> None:
        self.match_rng[:] = self.rng_states   # connect4 draws no random numbers; kept for the contract
        self._reset_kernel(self.board, self.heights, self.to_move, self.over, self.obs, self.action_mask,
                       self.active, self.step_count)

    def _step(self) -> None:
        self._step_kernel(self.actions, self.auto_reset, self.board, self.heights, self.to_move, self.over,
                          self.obs, self.action_mask, self.active, self.rewards, self.terminations,
                          self.episode_done, self.episode_winner, self.episode_length, self.step_count)

    def _reset_some(self, which: np.ndarray) -> None:
        self.match_rng[which] = self.rng_states[which]
        k.reset_some_nb(which, self.board, self.heights, self.to_move, self.over, self.obs, self.action_mask,
                        self.active, self.step_count, self.rewards, self.terminations)

    def snapshot(self, match: int) -> dict:
        """``board`` (6, 7) int8 (0 empty, 1 ``player_0``, 2 ``player_1``, row 0 on top), ``to_move``, ``step``."""
        if not 0 <= match < self.num_matches:
            raise IndexError(f"match {match} out of range [0, {self.num_matches})")
        return {"board": self.board[match].copy(), "to_move": int(self.to_move[match]),
                "step": int(self.step_count[match])}
