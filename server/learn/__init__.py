"""server.learn: learning from play.

In: segments of play from the game server (``server.play.feed``). Out: versioned parameters for the policy
workers, checkpoints, curves, summaries. PPO with V-trace (``ppo``), the training config and presets
(``config``), the learner process (``learner``), pairwise gossip averaging (``gossip``), a run's checkpoints
read back whole (``checkpoints``), evaluation, and ``run``: ``arena train`` as a function a notebook calls.
"""
