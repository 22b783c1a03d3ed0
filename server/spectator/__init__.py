"""server.spectator: beside play, a pygame window onto a live match or a recorded one (an optional extra).

In: frames a game server publishes, or a replay file. Out: pictures (window, PNG, GIF) and verdicts.

========================= ==================================================================
module                    what
========================= ==================================================================
``render``                pure drawing: ``render(arena, snapshot, surface, info)``; no game code
``window``                the window: keys, pace (speed, pause), the on-screen status lines
``publisher``             ``FramePublisher`` (the server side, ZeroMQ XPUB) and ``SlotView``
``watch``                 ``arena watch --connect``: a SUB client of the publisher
``replay``                recordings: ``Recorder``, ``load``, ``replay``, ``verify``
``hooks``                 ``arena run --record`` / ``--watch`` on a ``MatchRunner``
``export``                a recorded match drawn to PNG frames or a GIF, headless
``gif``                   animated GIFs (LZW by a numba kernel)
========================= ==================================================================

pygame (the ``spectator`` extra, ``pip install 'arena[spectator]'``) is imported only when a surface is
drawn or a window opened: this package and ``publisher`` import without it, and ``require_pygame()``
says how to install it.
"""
from .render import SpectatorUnavailable, require_pygame

__all__ = ["SpectatorUnavailable", "require_pygame"]
