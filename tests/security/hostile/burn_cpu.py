"""Starts a thread in its constructor that computes for ever; plays legal moves at once."""
import threading

import numpy as np


def burn():
    x = 0
    while True:
        x = (x * 31 + 7) % 1000003


class Evil:
    def __init__(self, game=None, seed=0):
        threading.Thread(target=burn, daemon=True).start()

    def act(self, obs, mask):
        return np.argmax(mask, axis=1)
