"""Allocates 3 GB (and touches it) on its first call; plays legal moves otherwise."""
import numpy as np


class Evil:
    def __init__(self, game=None, seed=0):
        self.hoard = None

    def act(self, obs, mask):
        if self.hoard is None:
            self.hoard = np.ones(3 << 30, dtype=np.uint8)
        return np.argmax(mask, axis=1)
