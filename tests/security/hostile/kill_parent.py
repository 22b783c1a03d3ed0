"""Tries to kill the ``arena`` process that started it (SIGKILL), then says what happened by raising."""
import os
import signal


class Evil:
    def __init__(self, game=None, seed=0):
        pass

    def act(self, obs, mask):
        try:
            os.kill(os.getppid(), signal.SIGKILL)
            outcome = "sent"
        except OSError as exc:
            outcome = type(exc).__name__
        raise RuntimeError(f"outcome={outcome}")
