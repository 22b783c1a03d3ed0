"""Returns strings."""
import numpy as np


class Bot:
    def __init__(self, game=None, seed=0):
        pass

    def act(self, obs, mask):
        return np.array(["left"] * len(mask))
