"""Looks for the user's secrets in its environment and says what it found by raising
``outcome=<names of variables it sees>``."""
import os


class Evil:
    def __init__(self, game=None, seed=0):
        pass

    def act(self, obs, mask):
        seen = sorted(k for k in os.environ if "SECRET" in k or "TOKEN" in k)
        raise RuntimeError(f"outcome=env:{','.join(seen) or 'none'};home:{os.environ.get('HOME', '')}")
