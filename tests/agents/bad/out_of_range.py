"""Returns 99 in the first row."""
import numpy as np


class Bot:
    def __init__(self, game=None, seed=0):
        pass

    def act(self, obs, mask):
        out = np.argmax(mask, axis=1)
        out[0] = 99
        return out
