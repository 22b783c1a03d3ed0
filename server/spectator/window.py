"""The spectator window: keys, pace and the status lines around ``render``.

Keys (the same in ``arena run --watch``, ``arena watch`` and ``arena replay``):

==================== ==============================================================================
key                  does
==================== ==============================================================================
n, Right, PageDown   next match (slot; in a replay: the next recorded match)
p, Left, PageUp      previous match
f, Enter             follow: jump to the slot whose match just ended and watch the next one there
                     from its first move (in a replay: jump to the final position)
space                pause / go on
+, Up / -, Down      faster / slower (frames per second; the fastest shows frames as they come)
q, Escape            quit the window (``--watch``: the run goes on without it)
==================== ==============================================================================

The status lines name the arena, the match, the agents and their colours, the step, the state (to
move; alive and hit points), the result once a match ends (its final position is held a moment), the
score of the two agents so far, the speed and the keys.
"""
from __future__ import annotations

import time
from typing import Callable

import numpy as np

from server.spectator.publisher import SlotView, score_line
from server.spectator.render import (SpectatorUnavailable, default_size, describe_result, render,
                                     require_pygame)

#: frames per second, slowest to fastest; 0 = as fast as frames come
SPEEDS = (1, 2, 4, 8, 15, 30, 60, 120, 0)
DEFAULT_SPEED = 3
#: seconds the final position of a match stays on screen (scaled down at high speeds)
FINAL_HOLD = 1.5
#: at the fastest speed, the most frames drawn per second
MAX_DRAW_FPS = 60
KEY_HELP = "keys: n/p match   f follow   space pause   +/- speed   q quit"


class Window:
    """A pygame window with a pace: ``draw`` a frame, then ``wait`` for the next one while keys are read."""

    def __init__(self, arena: str, size: tuple[int, int] | None = None, title: str = "arena spectator",
                 speed: int = DEFAULT_SPEED):
        pygame = self.pygame = require_pygame()
        self.arena = arena
        try:
            pygame.display.init()
            pygame.font.init()
            self.screen = pygame.display.set_mode(size or (640, 640), pygame.RESIZABLE)
        except pygame.error as exc:
            raise SpectatorUnavailable(f"cannot open a window ({exc}); without a display, "
                                       f"'arena replay FILE --frames DIR' or '--gif FILE' draws to files") from None
        pygame.display.set_caption(title)
        self.speed_index = speed
        self.paused = False
        self.closed = False
        self._sized = size is not None
        self._commands: list[str] = []
        self._last_draw = 0.0

    # -- keys ------------------------------------------------------------------------------------------
    def _read_keys(self) -> None:
        pg = self.pygame
        keymap = {pg.K_n: "next", pg.K_RIGHT: "next", pg.K_PAGEDOWN: "next", pg.K_p: "prev", pg.K_LEFT: "prev",
                  pg.K_PAGEUP: "prev", pg.K_f: "follow", pg.K_RETURN: "follow", pg.K_SPACE: "pause",
                  pg.K_PLUS: "faster", pg.K_EQUALS: "faster", pg.K_KP_PLUS: "faster", pg.K_UP: "faster",
                  pg.K_MINUS: "slower", pg.K_KP_MINUS: "slower", pg.K_DOWN: "slower", pg.K_q: "quit",
                  pg.K_ESCAPE: "quit"}
        for event in pg.event.get():
            if event.type == pg.QUIT:
                self._commands.append("quit")
            elif event.type == pg.KEYDOWN and event.key in keymap:
                self._commands.append(keymap[event.key])

    def commands(self) -> list[str]:
        """Keys pressed since the last call, as commands; pause, speed and quit are applied here."""
        self._read_keys()
        out, self._commands = self._commands, []
        for c in out:
            if c == "pause":
                self.paused = not self.paused
            elif c == "faster":
                self.speed_index = min(self.speed_index + 1, len(SPEEDS) - 1)
            elif c == "slower":
                self.speed_index = max(self.speed_index - 1, 0)
            elif c == "quit":
                self.closed = True
        return out

    @property
    def fps(self) -> int:
        return SPEEDS[self.speed_index]

    def pace_line(self) -> str:
        speed = "fastest" if self.fps == 0 else f"{self.fps} frames/s"
        return f"speed {speed}" + ("   PAUSED" if self.paused else "")

    # -- drawing and pace ------------------------------------------------------------------------------
    def draw(self, snapshot: dict, info: dict) -> None:
        if not self._sized:   # the first frame tells the board's size
            self.screen = self.pygame.display.set_mode(default_size(self.arena, snapshot), self.pygame.RESIZABLE)
            self._sized = True
        render(self.arena, snapshot, self.screen, info)
        self.pygame.display.flip()
        self._last_draw = time.monotonic()

    def due(self) -> bool:
        """At the fastest speed, whether enough time has passed to draw again."""
        return self.fps != 0 or time.monotonic() - self._last_draw >= 1.0 / MAX_DRAW_FPS

    def wait(self, seconds: float | None = None, interrupt: Callable[[list[str]], bool] | None = None) -> list[str]:
        """Wait one frame at the current speed (or ``seconds``) reading keys, and as long as paused;
        returns the commands read. ``interrupt(commands)`` True ends the wait early."""
        got: list[str] = []
        end = time.monotonic() + (seconds if seconds is not None else (1.0 / self.fps if self.fps else 0.0))
        while True:
            cmds = self.commands()
            got += cmds
            if self.closed or (interrupt is not None and cmds and interrupt(cmds)):
                return got
            now = time.monotonic()
            if now >= end and not self.paused:
                return got
            time.sleep(min(0.02, max(end - now, 0.005)))

    def close(self) -> None:
        if not getattr(self, "_shut", False):
            self._shut = True
            self.pygame.display.quit()


def _switching(cmds: list[str]) -> bool:
    return any(c in ("next", "prev", "follow", "quit") for c in cmds)


# -- arena run --watch --------------------------------------------------------------------------------------
class LiveWatch:
    """``arena run --watch``: one slot of the runner's game in a window, after every step
    (``on_step(runner, new_games)``). The run keeps the window's pace; quitting the window lets the
    run go on at full speed."""

    def __init__(self, runner, arena: str, window: Window | None = None, slot: int = 0,
                 log: Callable[[str], None] | None = None):
        self.runner, self.arena = runner, arena
        self.window = window or Window(arena, title=f"arena: {arena} (run)")
        self.view = SlotView(runner.game, slot % runner.game.num_matches)
        self.last_ended = -1
        self.result: str | None = None
        self.log = log or (lambda text: None)
        self.closed = False

    def _select(self, slot: int) -> None:
        game = self.runner.game
        self.view = SlotView(game, slot % game.num_matches)
        self.result = None
        self._draw(game.snapshot(self.view.slot), {})

    def _info(self, extra: dict) -> dict:
        r, s = self.runner, self.view.slot
        agents = [r.names[a] for a in r.team_agent[s]]
        result = None
        if extra.get("ended"):
            result = describe_result(self.arena, extra["winner"], agents, extra["forfeit"])
        elif self.result:
            result = f"(last match here: {self.result})"
        return {"match": f"{s} of {r.game.num_matches}", "agents": agents, "result": result,
                "options": r.game.options,
                "note": f"{score_line(r, s)}   {self.window.pace_line()}\n{KEY_HELP}"}

    def _draw(self, snapshot: dict, extra: dict) -> None:
        self.window.draw(snapshot, self._info(extra))

    def _handle(self, cmds: list[str]) -> bool:
        """Apply slot commands; returns True when the view changed (the frames in hand are stale)."""
        changed = False
        for c in cmds:
            if c == "quit":
                self.close()
                self.log("arena: spectator window closed; the run goes on")
                return True
            if c in ("next", "prev"):
                self._select(self.view.slot + (1 if c == "next" else -1))
                changed = True
            elif c == "follow" and self.last_ended >= 0:
                self._select(self.last_ended)
                changed = True
        return changed

    def on_step(self, runner, new_games: int = 0) -> None:
        if self.closed:
            return
        game = runner.game
        ended = np.flatnonzero(game.step_count == 0)
        if ended.size:
            self.last_ended = int(ended[-1])
        w = self.window
        for snapshot, extra in self.view.advance(game):
            if extra.get("ended"):
                self.result = describe_result(self.arena, extra["winner"],
                                              [runner.names[a] for a in runner.team_agent[self.view.slot]],
                                              extra["forfeit"])
                hold = FINAL_HOLD * min(1.0, 8.0 / w.fps) if w.fps else 0.0
                self._draw(snapshot, extra)
                if self._handle(w.wait(hold, _switching)) or self.closed:
                    return
                continue
            if not w.due():
                if self._handle(w.commands()):
                    return
                continue
            self._draw(snapshot, extra)
            if self._handle(w.wait(None, _switching)):
                return

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.window.close()


# -- arena replay ---------------------------------------------------------------------------------------------
def play_recording(recording, index: int = 0, window: Window | None = None) -> None:
    """Play recorded match ``index`` in a window; n/p move between the file's matches."""
    from server.spectator.replay import replay

    game = recording.new_game()      # first: a recording that may not choose its code opens no window
    window = window or Window(recording.arena, title=f"arena replay: {recording.arena}")
    index %= len(recording)
    try:
        while not window.closed:
            match = recording.match(index)
            frames: list[dict] = []
            replay(match, game, on_frame=lambda snap, t: frames.append(snap))
            result = describe_result(recording.arena, match.winner, match.agents, match.forfeit)
            t, jump = 0, None
            while not window.closed and jump is None:
                last = t == len(frames) - 1
                info = {"match": f"{index} of {len(recording)} (slot {match.slot})", "agents": match.agents,
                        "result": result if last else None, "options": recording.options,
                        "note": f"recorded: {result} in {match.length} steps   {window.pace_line()}\n{KEY_HELP}"}
                window.draw(frames[t], info)
                hold = FINAL_HOLD if last else None
                for c in window.wait(hold, _switching):
                    if c in ("next", "prev"):
                        jump = index + (1 if c == "next" else -1)
                    elif c == "follow":
                        t = len(frames) - 2
                if last and jump is None:
                    jump = index + 1          # on to the next recorded match
                t = min(t + 1, len(frames) - 1)
            if jump is not None:
                index = jump % len(recording)
    finally:
        window.close()
