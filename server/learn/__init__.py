"""server.learn: learning from play.

PPO with V-trace (``ppo``), the training config and presets (``config``), rollout workers and the learner
process (``rollout``, ``learner``), pairwise gossip averaging (``gossip``), evaluation, and ``run`` (``arena
train`` as a function). In: segments of play. Out: versioned parameters, checkpoints, curves, summaries.
"""
