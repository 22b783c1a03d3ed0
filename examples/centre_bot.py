"""An agent of your own, for connect4: a random legal column, weighted towards the centre.

Copy this file anywhere and run it against the built-in agents:

    arena run connect4 --matches 4096 --agents ./centre_bot.py:CentreBot,random
    arena run connect4 --agents ./centre_bot.py:CentreBot,greedy --agent-arg CentreBot.sharpness=3

An agent gets a whole batch at once: ``obs`` holds one row per match where it is to move (connect4:
``(B, 6, 7, 2)``, channel 0 its own pieces, channel 1 the opponent's) and ``mask`` the legal columns
``(B, 7)``. It returns one column per row. Keep it vectorised (numpy over the batch, no Python loop
per row) and it plays thousands of matches a second.
"""
import numpy as np

from agents import Agent


class CentreBot(Agent):
    """Samples a legal column with weight ``(4 - distance from the centre) ** sharpness``."""

    def __init__(self, game=None, seed=0, sharpness=1.0):
        super().__init__(game, seed)
        self.sharpness = float(sharpness)
        self.weights = (4.0 - np.abs(np.arange(7) - 3)) ** self.sharpness
        self.rng = np.random.default_rng(seed)

    def reset(self, seed=None):
        super().reset(seed)
        self.rng = np.random.default_rng(self.seed)   # same seed, same games

    def act(self, obs, mask):
        w = mask * self.weights                           # (B, 7): zero where the column is full
        cum = np.cumsum(w, axis=1)
        u = self.rng.random(len(mask)) * cum[:, -1]
        return (cum <= u[:, None]).sum(axis=1)            # the column whose weight interval holds u
