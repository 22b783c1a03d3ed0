"""The spectator's part of the ``arena`` command line.

    arena watch [--connect ENDPOINT]                 a window onto a running server's matches
    arena replay FILE [--match K]                    play a recorded match in a window
    arena replay FILE --frames DIR | --gif FILE      ... or draw it to PNG files / an animated GIF
    arena replay FILE --list | --verify              list the matches / replay all, compare outcomes
    arena run ARENA ... --watch                      watch one of the matches being played
    arena run ARENA ... --record DIR                 record every counted match to DIR

``server.cli`` adds these with ``add_parsers(sub)``, ``add_run_flags(run_parser)`` and
``add_server_flags(parser)``, and calls ``attach(args, runner, arena)`` in ``arena run`` for hooks
that take ``on_step(runner, new_games)`` and ``close()``. pygame is needed only to draw; without it
the commands that draw say how to install it (exit status 2).
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

#: ``server.spectator.publisher.default_endpoint`` of arena serve's default ``--bind`` (port + 2);
#: spelled out so that importing this module (from ``server.cli``) loads neither zmq nor pygame
DEFAULT_CONNECT = "tcp://127.0.0.1:5557"


EXIT_USAGE = 2


class SpectatorUsageError(Exception):
    """A mistake in what the user asked for (or pygame missing): one line on stderr, exit status 2.

    ``cmd_watch`` and ``cmd_replay`` print it themselves; ``arena run`` turns one from ``attach`` into
    its own ``UsageError``. (Not ``server.cli.UsageError`` itself: under ``python -m server.cli`` that
    module runs as ``__main__``, and a class imported from ``server.cli`` would be another class.)"""


def _usage(message: str) -> SpectatorUsageError:
    return SpectatorUsageError(message)


def _one_line(command):
    """Run a command; a ``SpectatorUsageError`` becomes one line on stderr and exit status 2."""
    def run(args) -> int:
        try:
            return command(args)
        except SpectatorUsageError as exc:
            print(str(exc), file=sys.stderr)
            return EXIT_USAGE
    run.__name__, run.__doc__ = command.__name__, command.__doc__
    return run


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _size(text: str) -> tuple[int, int]:
    w, sep, h = text.lower().partition("x")
    if not (sep and w.isdigit() and h.isdigit() and 160 <= int(w) <= 8192 and 120 <= int(h) <= 8192):
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT in pixels (at least 160x120), got {text!r}")
    return int(w), int(h)


def _index(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a match number, got {text!r}") from None


def add_parsers(sub) -> None:
    """Add ``watch`` and ``replay`` to the ``arena`` sub-commands."""
    w = sub.add_parser("watch", help="a window onto a running server's matches (arena serve / launch)")
    w.add_argument("--connect", default=DEFAULT_CONNECT, metavar="ENDPOINT",
                   help=f"the server's spectator endpoint, printed by arena serve / launch (default {DEFAULT_CONNECT})")
    w.add_argument("--keys", metavar="DIR", help="CURVE keys made by 'arena keys DIR' (servers not on loopback)")
    w.add_argument("--match", type=_index, default=0, metavar="K", help="the match slot to start with (default 0)")
    w.add_argument("--wait", type=_positive_float, default=30.0, metavar="SECONDS",
                   help="give up when no server answers in this time (default 30)")

    r = sub.add_parser("replay", help="play a recorded match (arena run --record) in a window or to files")
    r.add_argument("file", help="a recording written by 'arena run ... --record DIR'")
    r.add_argument("--match", type=_index, default=0, metavar="K", help="which recorded match (default 0)")
    r.add_argument("--frames", metavar="DIR", help="draw the match to DIR/frame_00000.png ... instead of a window")
    r.add_argument("--gif", metavar="FILE", help="draw the match to an animated GIF instead of a window")
    r.add_argument("--fps", type=_positive_float, default=8.0, help="frames per second of --gif (default 8)")
    r.add_argument("--size", type=_size, metavar="WxH", help="picture size in pixels (default: fits the board)")
    r.add_argument("--list", action="store_true", help="list the recorded matches and their outcomes")
    r.add_argument("--verify", action="store_true",
                   help="replay every recorded match and check it ends exactly as recorded")


def add_run_flags(parser) -> None:
    """``--watch`` and ``--record`` for ``arena run``."""
    parser.add_argument("--watch", action="store_true", help="watch one of the matches in a window (pygame)")
    parser.add_argument("--watch-match", type=_index, default=0, metavar="K", help="the slot --watch starts on")
    parser.add_argument("--record", metavar="DIR",
                        help="record every counted match to DIR (seeds and actions; 'arena replay' plays them)")


def add_server_flags(parser) -> None:
    """``--spectate-bind`` for ``arena serve`` / ``arena launch``."""
    parser.add_argument("--spectate-bind", metavar="ENDPOINT",
                        help="XPUB endpoint for spectators ('arena watch --connect'); default: the --bind port + 2")


# -- arena run --watch / --record -------------------------------------------------------------------------------
class RecordHook:
    """``--record DIR``: a ``Recorder`` on the runner; ``close()`` writes the file and says where."""

    def __init__(self, runner, directory: str, arena: str, seed: int, out=sys.stderr):
        from server.replay import Recorder

        self.directory = Path(directory)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise _usage(f"arena run: cannot create --record directory {directory!r}: {exc}") from None
        self.recorder = Recorder(runner, arena=arena, seed=seed)   # options: all of the game's, defaults included
        self.arena, self.seed, self.out = arena, seed, out
        self.path: Path | None = None

    def on_step(self, runner, new_games: int = 0) -> None:
        self.recorder.on_step(runner, new_games)

    def close(self) -> Path | None:
        if self.path is not None:
            return self.path
        from server.replay import SUFFIX

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
    from server.spectator.render import SpectatorUnavailable

    try:
        from server.spectator.window import LiveWatch
        return LiveWatch(runner, arena, slot=slot, log=lambda text: print(text, file=sys.stderr))
    except SpectatorUnavailable as exc:
        raise _usage(f"arena run --watch: {exc}") from None


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


# -- arena watch ------------------------------------------------------------------------------------------------
@_one_line
def cmd_watch(args) -> int:
    from server.netutil import EndpointError, is_loopback
    from server.spectator.render import SpectatorUnavailable, require_pygame
    from server.spectator.watch import watch

    try:
        if not is_loopback(args.connect) and not args.keys:
            raise _usage(f"arena watch: connecting to {args.connect} (not loopback) needs --keys DIR")
    except EndpointError as exc:
        raise _usage(f"arena watch: {exc}") from None
    try:
        require_pygame()
        print(f"arena watch: waiting for a server at {args.connect} ...", file=sys.stderr)
        status = watch(args.connect, args.keys, start=args.match, wait_seconds=args.wait)
    except SpectatorUnavailable as exc:
        raise _usage(f"arena watch: {exc}") from None
    except KeyboardInterrupt:
        return 0
    if status == 1:
        print(f"arena watch: no server answered at {args.connect} in {args.wait:g} s "
              f"(arena serve / launch print their spectator endpoint)", file=sys.stderr)
    return status


# -- arena replay -----------------------------------------------------------------------------------------------
def _match_line(recording, i: int) -> str:
    from server.spectator.render import describe_result, team_names

    m = recording.match(i)
    colours = team_names(recording.arena, len(m.agents))
    vs = " vs ".join(f"{a} ({colours[t] if t < len(colours) else t})" for t, a in enumerate(m.agents))
    return f"match {i}: slot {m.slot}, {vs}: {describe_result(recording.arena, m.winner, m.agents, m.forfeit)} " \
           f"in {m.length} steps"


def export_match(recording, index: int, frames_dir: str | None = None, gif: str | None = None,
                 size: tuple[int, int] | None = None, fps: float = 8.0) -> int:
    """Draw recorded match ``index`` to PNG files and/or a GIF, headless; returns the frame count."""
    from server.replay import new_game, replay
    from server.spectator.render import GifWriter, default_size, describe_result, render, require_pygame, \
        save_png, surface_pixels
    from server.spectator.window import FINAL_HOLD

    pygame = require_pygame()
    match = recording.match(index)
    snapshots: list[dict] = []
    replay(match, new_game(recording.arena, recording.options), on_frame=lambda snap, t: snapshots.append(snap))
    size = size or default_size(recording.arena, snapshots[0])
    surface = pygame.Surface(size)
    result = describe_result(recording.arena, match.winner, match.agents, match.forfeit)
    folder = Path(frames_dir) if frames_dir else None
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
    writer = GifWriter(gif, size) if gif else None
    try:
        for t, snap in enumerate(snapshots):
            last = t == len(snapshots) - 1
            info = {"match": f"{index} of {len(recording)} (slot {match.slot})", "agents": match.agents,
                    "result": result if last else None, "options": recording.options,
                    "note": f"recorded: {result} in {match.length} steps"}
            render(recording.arena, snap, surface, info)
            if folder is not None:
                save_png(surface, folder / f"frame_{t:05d}.png")
            if writer is not None:
                writer.add(surface_pixels(surface), 2 * FINAL_HOLD if last else 1.0 / fps)
    finally:
        if writer is not None:
            writer.close()
    return len(snapshots)


@_one_line
def cmd_replay(args) -> int:
    from server.replay import ReplayError, load, verify
    from server.spectator.render import SpectatorUnavailable

    try:
        recording = load(args.file)
    except ReplayError as exc:
        raise _usage(f"arena replay: {exc}") from None
    agents = ", ".join(recording.agents)
    print(f"{args.file}: {recording.arena}, {len(recording)} recorded matches, agents {agents}, "
          f"seed {recording.header.get('seed')}")
    if args.list:
        for i in range(len(recording)):
            print("  " + _match_line(recording, i))
    if args.verify:
        try:
            problems = verify(recording)
        except ReplayError as exc:
            raise _usage(f"arena replay: {exc}") from None
        for p in problems:
            print(f"MISMATCH {p}")
        print(f"replayed {len(recording)} matches: {len(recording) - len(problems)} ended exactly as recorded"
              + (f", {len(problems)} did not" if problems else ""))
        if problems:
            return 1
    if args.list or args.verify:
        if not (args.frames or args.gif):
            return 0
    if len(recording) == 0:
        raise _usage(f"arena replay: {args.file} holds no matches")
    if not -len(recording) <= args.match < len(recording):
        raise _usage(f"arena replay: --match {args.match} out of range: the file holds {len(recording)} "
                     f"matches (0..{len(recording) - 1})")
    print(_match_line(recording, args.match))
    try:
        if args.frames or args.gif:
            n = export_match(recording, args.match, args.frames, args.gif, args.size, args.fps)
            if args.frames:
                print(f"wrote {n} frames to {os.path.join(args.frames, 'frame_00000.png')} ... frame_{n - 1:05d}.png")
            if args.gif:
                print(f"wrote {args.gif} ({n} frames, {os.path.getsize(args.gif) / 1024:.0f} KB)")
            return 0
        from server.spectator.window import Window, play_recording
        play_recording(recording, args.match, Window(recording.arena, size=args.size,
                                                     title=f"arena replay: {args.file}"))
    except SpectatorUnavailable as exc:
        raise _usage(f"arena replay: {exc}") from None
    except ReplayError as exc:
        raise _usage(f"arena replay: {exc}") from None
    except KeyboardInterrupt:
        pass
    return 0
