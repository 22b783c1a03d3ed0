"""Leaves with os._exit on its second call, no cleanup, no exception."""
import os

import numpy as np


class Bot:
    def __init__(self, game=None, seed=0):
        self.calls = 0

    def act(self, obs, mask):
        self.calls += 1
        if self.calls == 2:
            os._exit(3)
        return np.argmax(mask, axis=1)
