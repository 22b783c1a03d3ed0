"""The spectator's part of the ``arena`` command line.

    arena watch [--connect ENDPOINT]                 a window onto a running server's matches
    arena replay FILE [--match K]                    play a recorded match in a window
    arena replay FILE --frames DIR | --gif FILE      ... or draw it to PNG files / an animated GIF
    arena replay FILE --list | --verify              list the matches / replay all, compare outcomes
    arena replay FILE --arena SPEC | --trust         ... a custom arena: the code named here (a file never
                                                     chooses code to run), or the file's, trusted
    arena run ARENA ... --watch                      watch one of the matches being played
    arena run ARENA ... --record DIR                 record every counted match to DIR

``server.cli`` adds these with ``add_parsers(sub)``, ``add_run_flags(run_parser)`` and
``add_server_flags(parser)``; ``arena run`` attaches the hooks of ``server.spectator.hooks``. pygame is
needed only to draw; without it the commands that draw say how to install it (exit status 2).
"""
from __future__ import annotations

import argparse
import os
import sys

from .common import UsageError, positive_float

#: ``server.spectator.publisher.default_endpoint`` of arena serve's default ``--bind`` (port + 2);
#: spelled out so that importing this module (from ``server.cli``) loads neither zmq nor pygame
DEFAULT_CONNECT = "tcp://127.0.0.1:5557"


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
    w.add_argument("--wait", type=positive_float, default=30.0, metavar="SECONDS",
                   help="give up when no server answers in this time (default 30)")

    r = sub.add_parser("replay", help="play a recorded match (arena run --record) in a window or to files")
    r.add_argument("file", help="a recording written by 'arena run ... --record DIR'")
    r.add_argument("--match", type=_index, default=0, metavar="K", help="which recorded match (default 0)")
    r.add_argument("--frames", metavar="DIR", help="draw the match to DIR/frame_00000.png ... instead of a window")
    r.add_argument("--gif", metavar="FILE", help="draw the match to an animated GIF instead of a window")
    r.add_argument("--fps", type=positive_float, default=8.0, help="frames per second of --gif (default 8)")
    r.add_argument("--size", type=_size, metavar="WxH", help="picture size in pixels (default: fits the board)")
    r.add_argument("--list", action="store_true", help="list the recorded matches and their outcomes")
    r.add_argument("--verify", action="store_true",
                   help="replay every recorded match and check it ends exactly as recorded")
    r.add_argument("--arena", metavar="SPEC",
                   help="the arena to replay with (module:Class or path/to/file.py:Class): a recording of a custom "
                        "arena replays only with the code you name here (or with --trust)")
    r.add_argument("--trust", action="store_true",
                   help="build the arena the file names even when it is not in the registry (runs that code)")


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


# -- arena watch ------------------------------------------------------------------------------------------------
def cmd_watch(args) -> int:
    from server.net.endpoints import EndpointError, is_loopback
    from server.spectator.render import SpectatorUnavailable, require_pygame
    from server.spectator.watch import watch

    try:
        if not is_loopback(args.connect) and not args.keys:
            raise UsageError(f"arena watch: connecting to {args.connect} (not loopback) needs --keys DIR")
    except EndpointError as exc:
        raise UsageError(f"arena watch: {exc}") from None
    try:
        require_pygame()
        print(f"arena watch: waiting for a server at {args.connect} ...", file=sys.stderr)
        status = watch(args.connect, args.keys, start=args.match, wait_seconds=args.wait)
    except SpectatorUnavailable as exc:
        raise UsageError(f"arena watch: {exc}") from None
    except KeyboardInterrupt:
        return 0
    if status == 1:
        print(f"arena watch: no server answered at {args.connect} in {args.wait:g} s "
              f"(arena serve / launch print their spectator endpoint)", file=sys.stderr)
    return status


# -- arena replay -----------------------------------------------------------------------------------------------
def cmd_replay(args) -> int:
    from server.spectator.replay import ReplayError, load, verify
    from server.spectator.render import SpectatorUnavailable

    try:
        recording = load(args.file, arena=args.arena, trust=args.trust)
        if args.verify or args.frames or args.gif or not args.list:   # it will be played: may it?
            recording.check_arena()
    except ReplayError as exc:
        raise UsageError(f"arena replay: {exc}") from None
    agents = ", ".join(recording.agents)
    print(f"{args.file}: {recording.arena}, {len(recording)} recorded matches, agents {agents}, "
          f"seed {recording.header.get('seed')}")
    from server.spectator.export import match_line

    if args.list:
        for i in range(len(recording)):
            print("  " + match_line(recording, i))
    if args.verify:
        try:
            problems = verify(recording)
        except ReplayError as exc:
            raise UsageError(f"arena replay: {exc}") from None
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
        raise UsageError(f"arena replay: {args.file} holds no matches")
    if not -len(recording) <= args.match < len(recording):
        raise UsageError(f"arena replay: --match {args.match} out of range: the file holds {len(recording)} "
                     f"matches (0..{len(recording) - 1})")
    print(match_line(recording, args.match))
    try:
        if args.frames or args.gif:
            from server.spectator.export import export_match
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
        raise UsageError(f"arena replay: {exc}") from None
    except ReplayError as exc:
        raise UsageError(f"arena replay: {exc}") from None
    except KeyboardInterrupt:
        pass
    return 0
