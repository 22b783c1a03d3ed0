"""Returns floats, NaN in every other row."""
import numpy as np


class Bot:
    def __init__(self, game=None, seed=0):
        pass

    def act(self, obs, mask):
        out = np.argmax(mask, axis=1).astype(np.float64)
        out[::2] = np.nan
        return out
