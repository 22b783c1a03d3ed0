"""A random agent that takes its time (so batches are in flight when a worker is killed) and reseeds
per batch (so a re-sent batch gets the same actions)."""
import time

import numpy as np


class SlowRandom:
    def __init__(self, game=None, seed=0, delay=0.02):
        self.delay = float(delay)
        self.rng = np.random.default_rng(seed)

    def reseed(self, seed):
        self.rng = np.random.default_rng(seed)

    def act(self, obs, mask):
        time.sleep(self.delay)
        u = self.rng.random(len(mask))
        m = mask.astype(bool)
        cum = np.cumsum(m, axis=1)
        return (cum <= (u * cum[:, -1])[:, None]).sum(axis=1)
