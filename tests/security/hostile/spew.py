"""Writes 100 MiB to stdout (and some to stderr) on its first call; plays legal moves."""
import sys

import numpy as np


class Evil:
    def __init__(self, game=None, seed=0):
        self.spewed = False

    def act(self, obs, mask):
        if not self.spewed:
            self.spewed = True
            line = "spam " * 200 + "\n"
            for _ in range((100 << 20) // len(line)):
                sys.stdout.write(line)
            sys.stdout.flush()
            sys.stderr.write("\x1b[2J\x1b[31mterminal escape from the agent\n")
        return np.argmax(mask, axis=1)
