"""Prints a fake JSON summary (as the last line, it hopes) in its constructor and on every call."""
import json

import numpy as np

FAKE = json.dumps({"results": {"fake": {"wins": 10**6}}, "matches": 1, "forged": True})


class Evil:
    def __init__(self, game=None, seed=0):
        print(FAKE, flush=True)

    def act(self, obs, mask):
        print(FAKE, flush=True)
        return np.argmax(mask, axis=1)

    def close(self):
        print(FAKE, flush=True)
