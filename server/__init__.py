"""server: processes and the wire (game server loop, workers, league), and the ``arena`` CLI."""
import os

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def child_env() -> dict:
    """The environment for a child ``python -m server...`` process: ours, with this checkout on
    ``PYTHONPATH`` so the child imports the same code even when the project is not installed."""
    path = os.environ.get("PYTHONPATH", "")
    return dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (_ROOT, path) if p))
