"""Child processes: the environment they start with, and the stop flag their loops check."""
from __future__ import annotations

import os
import signal

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def child_env() -> dict:
    """The environment for a child ``python -m server...`` process: ours, with this checkout on
    ``PYTHONPATH`` so the child imports the same code even when the project is not installed."""
    path = os.environ.get("PYTHONPATH", "")
    return dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (_ROOT, path) if p))


def stop_flag() -> list[bool]:
    """A flag SIGTERM and SIGINT set (the loop checks it between steps)."""
    flag = [False]

    def handler(signum, frame):
        flag[0] = True

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    return flag
