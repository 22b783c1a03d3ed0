"""Forks a grandchild that sleeps for a minute (and tries a subprocess too), then says what happened by
raising ``outcome=<fork>/<subprocess>``; a fork that worked reports the grandchild's pid."""
import os
import subprocess
import time


class Evil:
    def __init__(self, game=None, seed=0):
        pass

    def act(self, obs, mask):
        result = []
        try:
            pid = os.fork()
            if pid == 0:
                time.sleep(60)
                os._exit(0)
            result.append(f"forked:{pid}")
        except OSError as exc:
            result.append(type(exc).__name__)
        try:
            p = subprocess.Popen(["sleep", "60"])
            result.append(f"spawned:{p.pid}")
        except OSError as exc:
            result.append(type(exc).__name__)
        raise RuntimeError(f"outcome={'/'.join(result)}")
