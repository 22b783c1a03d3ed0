"""Returns one action too few."""
import numpy as np


class Bot:
    def __init__(self, game=None, seed=0):
        pass

    def act(self, obs, mask):
        return np.argmax(mask, axis=1)[:-1]
