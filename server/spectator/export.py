"""Drawing a recorded match headless: PNG frames and animated GIFs, and one line per recorded match."""
from __future__ import annotations

from pathlib import Path


def match_line(recording, i: int) -> str:
    from .render import describe_result, team_names

    m = recording.match(i)
    colours = team_names(recording.arena, len(m.agents))
    vs = " vs ".join(f"{a} ({colours[t] if t < len(colours) else t})" for t, a in enumerate(m.agents))
    return f"match {i}: slot {m.slot}, {vs}: {describe_result(recording.arena, m.winner, m.agents, m.forfeit)} " \
           f"in {m.length} steps"


def export_match(recording, index: int, frames_dir: str | None = None, gif: str | None = None,
                 size: tuple[int, int] | None = None, fps: float = 8.0) -> int:
    """Draw recorded match ``index`` to PNG files and/or a GIF, headless; returns the frame count."""
    from .replay import replay
    from .gif import GifWriter
    from .render import default_size, describe_result, render, require_pygame, \
        save_png, surface_pixels
    from .window import FINAL_HOLD

    pygame = require_pygame()
    match = recording.match(index)
    snapshots: list[dict] = []
    replay(match, recording.new_game(), on_frame=lambda snap, t: snapshots.append(snap))
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
