"""Computes for ever inside act (from its second call): a parent killed now finds it busy."""
import numpy as np


class Evil:
    def __init__(self, game=None, seed=0):
        self.calls = 0

    def act(self, obs, mask):
        self.calls += 1
        while self.calls >= 2:
            pass
        return np.argmax(mask, axis=1)
