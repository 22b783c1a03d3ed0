"""Pure drawing: one match's state snapshot onto a pygame surface. No game code, no window, no clock.

    render(arena_name, snapshot, surface, info)

``snapshot`` is what ``game.snapshot(m)`` returns (or the same arrays decoded from a ``frame``
message); the renderer reads it and nothing else, so it never touches the game's kernels:

- connect4: ``board`` (6, 7), 0 empty / 1 ``player_0`` / 2 ``player_1``, row 0 on top; ``to_move``;
  ``step``. Pieces red (``player_0``) and yellow; every four in a row found on the board is ringed in
  white.
- battle: ``pos`` (A, 2) ``(row, col)``, ``hp``, ``alive``, ``team``, ``walls`` (S, S), ``last_attack``
  (A,) direction 0 up, 1 down, 2 left, 3 right or -1, ``step``. Walls grey, red and blue agents with a
  hit-point bar along the top of their cell, and a yellow wedge in each attacked cell on the side the
  attack came from.
- tag: ``pos`` (A, 2) and ``vel`` (A, 2) world coordinates, ``landmarks`` (L, 2), ``size`` (A + L,) radii
  (agents, then landmarks), ``team`` (A,) 0 adversary / 1 good, ``step``, ``touches``. A continuous
  square, y upwards, from -``tag_extent`` to +``tag_extent`` on both axes (1.5, or wider when a body
  reaches beyond it); the square |x|, |y| <= 1 outlined (good agents are penalised beyond 0.9). Landmarks
  grey, adversaries red, good agents green, each agent with a line to where its velocity takes it in
  ``VELOCITY_SECONDS``; a good agent touched by an adversary (closer than the sum of their radii) is
  ringed in yellow. ``world_to_pixel`` gives the pixel of a world point for tests.

``info`` (all keys optional) fills the status lines above the board: ``match`` (a label),
``agents`` (one name per team), ``result`` (the outcome, once known), ``note`` (up to two dim lines,
split at ``\n``: score so far, speed, keys), ``options`` (the arena's options; battle reads ``max_hp``,
tag ``max_cycles``).

Drawing is aliasing-free (no antialiased text or shapes), so every pixel has one of the colours below;
``--gif`` relies on it for an exact palette. Layout: ``BAR`` pixels of status lines on top, the board
centred below with square cells; ``cell_center`` gives the pixel centre of a board cell for tests.

Custom arenas can ``register(name, draw, grid_shape)``; an arena without a renderer gets its status
lines and a line naming the snapshot's keys.
"""
from __future__ import annotations

import os
from typing import Any, Callable

import numpy as np

INSTALL_HINT = "pip install 'arena[spectator]'"

BAR = 82          # pixels of status lines (four) above the board
MARGIN = 8
LINE_HEIGHT = 19
MAX_LINES = 4
FONT_SIZE = 20

BACKGROUND = (22, 24, 30)
TEXT = (232, 232, 232)
DIM_TEXT = (150, 152, 162)
# connect4
BOARD = (28, 66, 160)
HOLE = (14, 16, 22)
PIECE = {1: (220, 48, 44), 2: (242, 200, 36)}
WIN_RING = (255, 255, 255)
# battle
FLOOR = (44, 48, 58)
WALL = (132, 134, 144)
TEAM_COLOUR = ((222, 58, 58), (58, 108, 232))
HP_BACK = (12, 12, 12)
HP_FILL = (84, 222, 84)
ATTACK = (255, 232, 56)
# tag (agent colours as mpe2 draws them; its dark grey landmarks lightened to show on the floor)
ADVERSARY = (217, 89, 89)
GOOD_AGENT = (89, 217, 89)
LANDMARK = (124, 126, 136)
BOUNDARY = (84, 88, 102)
TOUCH_RING = ATTACK
VELOCITY = DIM_TEXT
#: the velocity line of a tag agent reaches where it would be after this many seconds (3 steps)
VELOCITY_SECONDS = 0.3
#: half the side of the square shown, in world units, unless a body reaches beyond it
TAG_EXTENT = 1.5
#: the square is laid out as this many cells a side (``board_geometry``; sets the default window size)
TAG_CELLS = 10

TEAM_NAMES = {"connect4": ("red", "yellow"), "battle": ("red", "blue"), "tag": ("adversaries", "good")}


class SpectatorUnavailable(RuntimeError):
    """pygame is missing (or no window can be opened): the message says what to do."""


def require_pygame():
    """The ``pygame`` module, or ``SpectatorUnavailable`` saying how to install it."""
    try:
        os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
        import pygame
    except ImportError:
        raise SpectatorUnavailable(f"the spectator needs pygame, which is not installed: {INSTALL_HINT}") from None
    return pygame


_FONTS: dict[int, Any] = {}


def _font(size: int = FONT_SIZE):
    pygame = require_pygame()
    if not pygame.font.get_init():
        pygame.font.init()
        _FONTS.clear()
    if size not in _FONTS:
        _FONTS[size] = pygame.font.Font(None, size)
    return _FONTS[size]


# -- geometry ----------------------------------------------------------------------------------------
def board_geometry(size: tuple[int, int], rows: int, cols: int) -> tuple[int, int, int]:
    """``(x0, y0, cell)``: the board's top-left pixel and square cell size on a ``size`` surface."""
    w, h = size
    avail_w, avail_h = w - 2 * MARGIN, h - BAR - 2 * MARGIN
    cell = max(1, min(avail_w // cols, avail_h // rows))
    return (w - cell * cols) // 2, BAR + MARGIN + (avail_h - cell * rows) // 2, cell


def grid_shape(arena_name: str, snapshot: dict) -> tuple[int, int]:
    """Rows and columns of the board drawn for ``snapshot``."""
    if arena_name in _GRID:
        return _GRID[arena_name](snapshot)
    return (1, 1)


def cell_center(arena_name: str, snapshot: dict, size: tuple[int, int], row: int, col: int) -> tuple[int, int]:
    """Pixel centre of board cell ``(row, col)`` (row 0 on top) when drawn on a ``size`` surface."""
    rows, cols = grid_shape(arena_name, snapshot)
    x0, y0, cell = board_geometry(size, rows, cols)
    return x0 + col * cell + cell // 2, y0 + row * cell + cell // 2


def default_size(arena_name: str, snapshot: dict) -> tuple[int, int]:
    """A window size that gives the board comfortable cells."""
    rows, cols = grid_shape(arena_name, snapshot)
    cell = max(3, min(80, 640 // max(rows, cols)))
    return max(560, cols * cell + 2 * MARGIN), BAR + rows * cell + 2 * MARGIN


# -- status lines ------------------------------------------------------------------------------------
def team_names(arena_name: str, num_teams: int = 2) -> tuple[str, ...]:
    return TEAM_NAMES.get(arena_name, tuple(f"team {t}" for t in range(num_teams)))


def describe_result(arena_name: str, winner: int, agents=None, forfeit: bool = False) -> str:
    """``'red (greedy) wins'``, ``'draw'``; a forfeit says so."""
    if winner < 0:
        text = "draw"
    else:
        names = team_names(arena_name)
        team = names[winner] if winner < len(names) else f"team {winner}"
        who = f" ({agents[winner]})" if agents is not None and winner < len(agents) else ""
        text = f"{team}{who} wins"
    return text + (" by forfeit" if forfeit and winner >= 0 else " (forfeit)" if forfeit else "")


def status_lines(arena_name: str, snapshot: dict, info: dict) -> list[tuple[str, tuple[int, int, int]]]:
    names = team_names(arena_name)
    agents = info.get("agents")
    head = [arena_name]
    if info.get("match") is not None:
        head.append(f"match {info['match']}")
    if agents:
        head.append(" vs ".join(f"{a} ({names[t] if t < len(names) else t})" for t, a in enumerate(agents)))
    head.append(f"step {int(snapshot.get('step', 0))}")
    state = _STATUS[arena_name](snapshot, info) if arena_name in _STATUS else ""
    if info.get("result"):
        state = f"{state}   {info['result']}" if state else str(info["result"])
    lines = [("   ".join(head), TEXT), (state, TEXT)]
    if info.get("note"):
        lines += [(text, DIM_TEXT) for text in str(info["note"]).split("\n")]
    return lines[:MAX_LINES]


def _draw_status(surface, lines) -> None:
    font = _font()
    for i, (text, colour) in enumerate(lines[:MAX_LINES]):
        if text:
            surface.blit(font.render(text, False, colour), (MARGIN, 4 + i * LINE_HEIGHT))


# -- connect4 ----------------------------------------------------------------------------------------
def winning_cells(board: np.ndarray) -> np.ndarray:
    """``(rows, cols)`` bool: the cells of every four (or more) in a row of one player's pieces."""
    board = np.asarray(board)
    rows, cols = board.shape
    win = np.zeros(board.shape, dtype=bool)
    for dr, dc in ((0, 1), (1, 0), (1, 1), (1, -1)):
        for r in range(rows):
            for c in range(cols):
                r3, c3 = r + 3 * dr, c + 3 * dc
                if not (0 <= r3 < rows and 0 <= c3 < cols):
                    continue
                v = board[r, c]
                if v and all(board[r + k * dr, c + k * dc] == v for k in range(1, 4)):
                    for k in range(4):
                        win[r + k * dr, c + k * dc] = True
    return win


def _connect4_status(snapshot: dict, info: dict) -> str:
    board = np.asarray(snapshot["board"])
    win = winning_cells(board)
    names = TEAM_NAMES["connect4"]
    if win.any() and not info.get("result"):
        winner = int(board[win][0]) - 1
        return describe_result("connect4", winner, info.get("agents"))
    if (board != 0).all() and not info.get("result"):
        return "draw"
    if info.get("result"):
        return ""
    return f"{names[int(snapshot.get('to_move', 0))]} to move"


def _draw_connect4(surface, snapshot: dict, info: dict) -> None:
    pygame = require_pygame()
    board = np.asarray(snapshot["board"])
    rows, cols = board.shape
    x0, y0, cell = board_geometry(surface.get_size(), rows, cols)
    pygame.draw.rect(surface, BOARD, (x0, y0, cell * cols, cell * rows))
    win = winning_cells(board)
    radius = max(1, int(cell * 0.4))
    ring = max(2, cell // 12)
    for r in range(rows):
        for c in range(cols):
            centre = (x0 + c * cell + cell // 2, y0 + r * cell + cell // 2)
            pygame.draw.circle(surface, PIECE.get(int(board[r, c]), HOLE), centre, radius)
            if win[r, c]:
                pygame.draw.circle(surface, WIN_RING, centre, radius, ring)


# -- battle ------------------------------------------------------------------------------------------
def _battle_status(snapshot: dict, info: dict) -> str:
    hp, alive, team = (np.asarray(snapshot[k]) for k in ("hp", "alive", "team"))
    parts = []
    for t, name in enumerate(TEAM_NAMES["battle"]):
        mine = (team == t) & alive
        parts.append(f"{name} {int(mine.sum())} alive, {int(hp[mine].sum())} hp")
    return " - ".join(parts)


def _draw_battle(surface, snapshot: dict, info: dict) -> None:
    pygame = require_pygame()
    walls = np.asarray(snapshot["walls"], dtype=bool)
    pos, hp, alive, team, attack = (np.asarray(snapshot[k]) for k in ("pos", "hp", "alive", "team", "last_attack"))
    rows, cols = walls.shape
    x0, y0, cell = board_geometry(surface.get_size(), rows, cols)
    pygame.draw.rect(surface, FLOOR, (x0, y0, cell * cols, cell * rows))
    for r, c in zip(*np.nonzero(walls)):
        pygame.draw.rect(surface, WALL, (x0 + c * cell, y0 + r * cell, cell, cell))
    max_hp = (info.get("options") or {}).get("max_hp") or max(int(hp.max(initial=0)), 1)
    inset = 1 if cell >= 5 else 0
    bar_h = max(1, cell // 6) if cell >= 6 else 0
    for j in np.flatnonzero(alive):
        r, c = int(pos[j, 0]), int(pos[j, 1])
        x, y = x0 + c * cell, y0 + r * cell
        pygame.draw.rect(surface, TEAM_COLOUR[int(team[j]) % 2], (x + inset, y + inset, cell - 2 * inset, cell - 2 * inset))
        if bar_h:
            width = cell - 2 * inset
            pygame.draw.rect(surface, HP_BACK, (x + inset, y + inset, width, bar_h))
            fill = int(round(width * min(max(int(hp[j]), 0), max_hp) / max_hp))
            if fill:
                pygame.draw.rect(surface, HP_FILL, (x + inset, y + inset, fill, bar_h))
    # attacks: a wedge inside the attacked cell, its base on the edge the attack came through, reaching
    # a third of the way in (the cell's centre, and so its occupant's colour, stays visible)
    if cell >= 4:
        depth, half = max(1, cell // 3), max(1, cell // 4)
        for j in np.flatnonzero(alive & (attack >= 0)):
            d = int(attack[j])
            r, c = int(pos[j, 0]), int(pos[j, 1])
            cx, cy = x0 + c * cell + cell // 2, y0 + r * cell + cell // 2
            if d == 0:      # up: the shared edge is this cell's top
                ey = y0 + r * cell
                pts = [(cx - half, ey), (cx + half, ey), (cx, ey - depth)]
            elif d == 1:    # down
                ey = y0 + (r + 1) * cell
                pts = [(cx - half, ey), (cx + half, ey), (cx, ey + depth)]
            elif d == 2:    # left
                ex = x0 + c * cell
                pts = [(ex, cy - half), (ex, cy + half), (ex - depth, cy)]
            else:           # right
                ex = x0 + (c + 1) * cell
                pts = [(ex, cy - half), (ex, cy + half), (ex + depth, cy)]
            pygame.draw.polygon(surface, ATTACK, pts)


# -- tag ---------------------------------------------------------------------------------------------
def tag_extent(snapshot: dict) -> float:
    """Half the side of the world square drawn: ``TAG_EXTENT``, or the farthest reach of a body
    (``|coordinate| + radius``) rounded up to a multiple of 0.5."""
    bodies = np.concatenate([np.asarray(snapshot["pos"], dtype=np.float64).reshape(-1, 2),
                             np.asarray(snapshot["landmarks"], dtype=np.float64).reshape(-1, 2)])
    reach = np.abs(bodies) + np.asarray(snapshot["size"], dtype=np.float64)[: len(bodies), None]
    far = float(reach[np.isfinite(reach)].max(initial=0.0))
    return max(TAG_EXTENT, float(np.ceil(far * 2.0) / 2.0))


def _tag_frame(snapshot: dict, size: tuple[int, int]) -> tuple[float, float, float, int, int, int]:
    """``(cx, cy, scale, x0, y0, side)``: pixel centre of the world origin, pixels per world unit, and
    the drawn square's top-left pixel and side."""
    x0, y0, cell = board_geometry(size, TAG_CELLS, TAG_CELLS)
    side = cell * TAG_CELLS
    return x0 + side / 2.0, y0 + side / 2.0, side / (2.0 * tag_extent(snapshot)), x0, y0, side


def world_to_pixel(snapshot: dict, size: tuple[int, int], x: float, y: float) -> tuple[int, int]:
    """Pixel of world point ``(x, y)`` of a tag ``snapshot`` drawn on a ``size`` surface (y upwards)."""
    cx, cy, scale, *_ = _tag_frame(snapshot, size)
    return int(round(cx + x * scale)), int(round(cy - y * scale))


def tag_touching(snapshot: dict) -> np.ndarray:
    """``(A,)`` bool: the good agents an adversary touches now (closer than the sum of their radii; the
    contacts that tag's rewards count)."""
    pos, team = np.asarray(snapshot["pos"], dtype=np.float64), np.asarray(snapshot["team"])
    size = np.asarray(snapshot["size"], dtype=np.float64)[: len(team)]
    adv, good = np.flatnonzero(team == 0), np.flatnonzero(team == 1)
    touched = np.zeros(len(team), dtype=bool)
    if adv.size and good.size:
        d = np.sqrt(((pos[adv, None, :] - pos[None, good, :]) ** 2).sum(-1))
        touched[good] = (d < size[adv, None] + size[None, good]).any(axis=0)
    return touched


def _tag_status(snapshot: dict, info: dict) -> str:
    step = int(snapshot.get("step", 0))
    max_cycles = (info.get("options") or {}).get("max_cycles")
    parts = [f"step {step} / {max_cycles}" if max_cycles else f"step {step}",
             f"touches {int(snapshot.get('touches', 0))}"]
    now = int(tag_touching(snapshot).sum())
    if now:
        parts.append(f"{now} good agent{'s' if now > 1 else ''} touched now")
    return " - ".join(parts)


def _draw_tag(surface, snapshot: dict, info: dict) -> None:
    pygame = require_pygame()
    pos, vel, team = (np.asarray(snapshot[k]) for k in ("pos", "vel", "team"))
    landmarks, radii = np.asarray(snapshot["landmarks"]), np.asarray(snapshot["size"], dtype=np.float64)
    a = len(team)
    cx, cy, scale, x0, y0, side = _tag_frame(snapshot, surface.get_size())
    clip = surface.get_clip()
    surface.set_clip(pygame.Rect(x0, y0, side, side))
    pygame.draw.rect(surface, FLOOR, (x0, y0, side, side))

    def px(x: float, y: float) -> tuple[int, int]:
        return int(round(cx + x * scale)), int(round(cy - y * scale))

    def radius(r: float) -> int:
        return max(2, int(round(r * scale)))

    left, top = px(-1.0, 1.0)
    right, bottom = px(1.0, -1.0)
    pygame.draw.rect(surface, BOUNDARY, (left, top, right - left + 1, bottom - top + 1), 1)
    for j in range(len(landmarks)):
        if np.isfinite(landmarks[j]).all():
            pygame.draw.circle(surface, LANDMARK, px(*landmarks[j]), radius(radii[a + j]))
    shown = [j for j in range(a) if np.isfinite(pos[j]).all()]
    for j in shown:                       # velocity lines under the bodies: only the part outside shows
        if np.isfinite(vel[j]).all() and (vel[j] != 0).any():
            tip = pos[j] + vel[j] * VELOCITY_SECONDS
            pygame.draw.line(surface, VELOCITY, px(*pos[j]), px(*tip), 2)
    touched = tag_touching(snapshot)
    ring = max(2, radius(0.012))
    for j in sorted(shown, key=lambda j: int(team[j])):   # good agents on top of the adversaries touching them
        centre, r = px(*pos[j]), radius(radii[j])
        pygame.draw.circle(surface, ADVERSARY if team[j] == 0 else GOOD_AGENT, centre, r)
        if touched[j]:
            pygame.draw.circle(surface, TOUCH_RING, centre, r + ring, ring)
    surface.set_clip(clip)


# -- dispatch ----------------------------------------------------------------------------------------
_DRAW: dict[str, Callable] = {"connect4": _draw_connect4, "battle": _draw_battle, "tag": _draw_tag}
_STATUS: dict[str, Callable] = {"connect4": _connect4_status, "battle": _battle_status, "tag": _tag_status}
_GRID: dict[str, Callable] = {"connect4": lambda s: np.shape(s["board"]),
                              "battle": lambda s: np.shape(s["walls"]),
                              "tag": lambda s: (TAG_CELLS, TAG_CELLS)}


def register(arena_name: str, draw: Callable, grid: Callable[[dict], tuple[int, int]],
             status: Callable[[dict, dict], str] | None = None) -> None:
    """Add a renderer for a custom arena: ``draw(surface, snapshot, info)`` (use ``board_geometry``),
    ``grid(snapshot) -> (rows, cols)`` and optionally ``status(snapshot, info) -> str``."""
    _DRAW[arena_name], _GRID[arena_name] = draw, grid
    if status is not None:
        _STATUS[arena_name] = status


def render(arena_name: str, snapshot: dict, surface, info: dict | None = None) -> None:
    """Draw ``snapshot`` of a match of ``arena_name`` onto ``surface`` (status lines and board)."""
    info = info or {}
    surface.fill(BACKGROUND)
    _draw_status(surface, status_lines(arena_name, snapshot, info))
    draw = _DRAW.get(arena_name)
    if draw is None:
        keys = ", ".join(sorted(snapshot))
        surface.blit(_font().render(f"no renderer for arena {arena_name!r}; snapshot: {keys}", False, DIM_TEXT),
                     (MARGIN, BAR + MARGIN))
        return
    draw(surface, snapshot, info)


# -- export: PNG frames and an animated GIF -----------------------------------------------------------
def surface_pixels(surface) -> np.ndarray:
    """``(height, width, 3)`` uint8 copy of a surface's pixels."""
    pygame = require_pygame()
    return np.ascontiguousarray(pygame.surfarray.array3d(surface).transpose(1, 0, 2))


def save_png(surface, path) -> None:
    require_pygame().image.save(surface, str(path))


def _palette() -> np.ndarray:
    """256 colours: every colour this module draws with, then a 6x6x6 cube for anything else."""
    named = {v for k, v in globals().items() if k.isupper() and isinstance(v, tuple) and len(v) == 3
             and all(isinstance(x, int) for x in v)}
    named |= set(PIECE.values()) | set(TEAM_COLOUR)
    named = sorted(named)
    cube = [(r * 51, g * 51, b * 51) for r in range(6) for g in range(6) for b in range(6)]
    pal = np.zeros((256, 3), dtype=np.uint8)
    pal[: len(named)] = named
    pal[len(named): len(named) + 216] = cube
    return pal, len(named)
