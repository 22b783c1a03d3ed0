"""server: processes and the wire (game server loop, workers, league), and the ``arena`` CLI."""
