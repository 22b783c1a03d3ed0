"""Hooks on a ``MatchRunner`` for ``arena run``: ``--record DIR`` (a ``Recorder``) and ``--watch`` (a window).

Each hook takes ``on_step(runner, new_games)`` and ``close()``; ``attach(args, runner, arena)`` builds the
ones asked for. A hook that cannot start (pygame missing, a folder that cannot be made) raises ``HookError``.
"""
from __future__ import annotations

import sys
from pathlib import Path


class HookError(ValueError):
    """A hook cannot start: one line for the user."""


class RecordHook:
    """``--record DIR``: a ``Recorder`` on the runner; ``close()`` writes the file and says where."""

    def __init__(self, runner, directory: str, arena: str, seed: int, out=sys.stderr):
        from .replay import Recorder

        self.directory = Path(directory)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise HookError(f"arena run: cannot create --record directory {directory!r}: {exc}") from None
        self.recorder = Recorder(runner, arena=arena, seed=seed)   # options: all of the game's, defaults included
        self.arena, self.seed, self.out = arena, seed, out
        self.path: Path | None = None

    def on_step(self, runner, new_games: int = 0) -> None:
        self.recorder.on_step(runner, new_games)

    def close(self) -> Path | None:
        if self.path is not None:
            return self.path
        from .replay import SUFFIX

        stem = f"{Path(self.arena).name.replace(':', '-')}-seed{self.seed}"
        path = self.directory / f"{stem}{SUFFIX}"
        k = 2
        while path.exists():
            path = self.directory / f"{stem}-{k}{SUFFIX}"
            k += 1
        self.path = self.recorder.save(path)
        print(f"arena: recorded {len(self.recorder)} matches to {self.path} ({self.path.stat().st_size / 1024:.0f} KB); "
              f"play one: arena replay {self.path} --match 0", file=self.out)
        return self.path


def attach_watch(runner, arena: str, slot: int = 0):
    """``--watch``: a ``LiveWatch`` window on ``slot``; a usage error when pygame or a display is missing."""
    from .render import SpectatorUnavailable

    try:
        from .window import LiveWatch
        return LiveWatch(runner, arena, slot=slot, log=lambda text: print(text, file=sys.stderr))
    except SpectatorUnavailable as exc:
        raise HookError(f"arena run --watch: {exc}") from None


def attach_recorder(runner, directory: str, arena: str, seed: int) -> RecordHook:
    """``--record DIR``: call after ``runner.reset(seed)``, before the first step."""
    return RecordHook(runner, directory, arena, seed)


def attach(args, runner, arena: str) -> list:
    """The hooks ``arena run`` asked for with ``--watch`` / ``--record`` (each: ``on_step``, ``close``)."""
    hooks = []
    if getattr(args, "record", None):
        hooks.append(attach_recorder(runner, args.record, arena, args.seed))
    if getattr(args, "watch", False):
        hooks.append(attach_watch(runner, arena, getattr(args, "watch_match", 0)))
    return hooks
