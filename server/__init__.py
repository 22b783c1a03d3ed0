"""server: processes and the wire, as packages in data-flow order (each imports only from those before it).

    net/        the wire: the one protocol module, endpoints and CURVE keys, child processes
    play/       matches and acting: MatchRunner, the game server, policy workers, isolated agents
    spectator/  beside play: the frame publisher, the pygame window, replays
    learn/      learning: PPO/V-trace, learners, gossip, training configs, evaluation
    league/     the self-play league (reserved)
    bench/      arena bench's measurements (engine, distributed, training, policy inference)
    cli/        the ``arena`` command: argument parsing and wiring only

The order is a contract in ``pyproject.toml`` (``lint-imports`` checks it in CI).
"""
