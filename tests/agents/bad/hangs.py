"""Sleeps far past any deadline on its second call."""
import time

import numpy as np


class Bot:
    def __init__(self, game=None, seed=0):
        self.calls = 0

    def act(self, obs, mask):
        self.calls += 1
        if self.calls == 2:
            time.sleep(120)
        return np.argmax(mask, axis=1)
