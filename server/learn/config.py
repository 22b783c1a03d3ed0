"""What a training run trains and how: ``TrainConfig``, the per-arena presets, and the net it starts from.

``preset(arena)`` is the in-process preset (``PRESETS``) with the distributed changes of ``TRAIN_PRESETS``
applied; ``config_from_dict`` reads back the ``config.json`` a learner writes.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from agents.neural import PolicyNet

from .ppo import PPOConfig

SELF, PAST = "self", "past"


@dataclass
class TrainConfig:
    """What a training run trains and how (``ppo`` holds the update's own hyper-parameters)."""

    arena: str = "connect4"
    """Registry name of the arena."""
    options: dict = field(default_factory=dict)
    """Arena options (``arenas.make(arena, **options)``)."""
    num_matches: int = 1024
    """Match slots per learner (the game server plays ``num_matches * learners`` at once)."""
    horizon: int = 16
    """Decisions of one seat per segment."""
    batch_segments: int = 1024
    """Segments per update (``horizon * batch_segments`` decisions)."""
    opponents: dict = field(default_factory=lambda: {"greedy": 0.5, "random": 0.25, SELF: 0.25})
    """Share of match slots per opponent: ``self``, ``past`` or a built-in agent name."""
    arch: str = "mlp"
    """``PolicyNet`` architecture: ``mlp`` or ``conv``."""
    hidden: int = 256
    """``PolicyNet`` hidden width."""
    channels: int = 32
    """``PolicyNet`` conv channels (``conv`` only)."""
    snapshot_every: int = 10
    """Updates between snapshots into the ``past`` pool (and a fresh ``past`` opponent drawn from it)."""
    pool_size: int = 8
    """Snapshots kept for ``past``."""
    win_reward: float = 0.0
    """Team outcome added at a match's end to the learner seats still deciding (+win / -loss)."""
    seed: int = 0
    """Seeds the game, sampling and the opponents (and the net, unless ``net_seed`` is given)."""
    net_seed: int | None = None
    """Seeds the net's initialisation; learners that gossip should share it (and differ in ``seed``)."""
    ppo: PPOConfig = field(default_factory=PPOConfig)
    """The update's hyper-parameters."""

    def to_dict(self) -> dict:
        return asdict(self)


#: per-arena settings that reach the bars of issue 5 (see ``preset``); anything not named is the default
PRESETS: dict[str, dict] = {
    "connect4": {},
    "battle": {"num_matches": 128, "horizon": 32, "batch_segments": 512, "win_reward": 1.0,
               "ppo": {"lr": 5e-4}},
}


def inprocess_preset(arena: str, **overrides) -> TrainConfig:
    """``TrainConfig`` for ``arena`` from ``PRESETS`` (defaults for an arena without one), with
    ``overrides`` (``ppo`` may be a dict of ``PPOConfig`` fields)."""
    fields = {**PRESETS.get(arena, {}), **overrides}
    ppo = fields.pop("ppo", {})
    ppo = ppo if isinstance(ppo, PPOConfig) else PPOConfig(**{**PRESETS.get(arena, {}).get("ppo", {}), **ppo})
    return TrainConfig(arena=arena, ppo=ppo, **fields)


def policy_net(cfg: TrainConfig, game) -> PolicyNet:
    """A fresh ``PolicyNet`` for ``game`` as ``cfg`` describes it, seeded by ``net_seed`` (else ``seed``)."""
    torch.manual_seed(cfg.seed if cfg.net_seed is None else cfg.net_seed)
    space = game.single_observation_space
    return PolicyNet(space.shape, game.num_actions, arch=cfg.arch, hidden=cfg.hidden, channels=cfg.channels,
                     obs_high=np.asarray(space.high, np.float32))


# -- configuration --------------------------------------------------------------------------------
#: changes to ``PRESETS`` for ``arena train``. The learner does not wait for its own collection, so the
#: update's cost per decision sets the pace: APPO-style fewer passes over each batch (sample-factory's
#: APPO defaults to one epoch) keep the game server and the policy workers busy. Battle's segments arrive
#: in bursts of about ``num_matches * team_size`` (every learner stream of a group fills at the same
#: step), so one update takes one burst.
TRAIN_PRESETS: dict[str, dict] = {
    "connect4": {"ppo": {"update_epochs": 1, "num_minibatches": 2}},
    "battle": {"batch_segments": 1024, "ppo": {"update_epochs": 2, "num_minibatches": 4, "max_lag": 8}},
    # tag: every seat decides every step for 25 steps; a segment is a whole episode of one seat
    "tag": {"num_matches": 128, "horizon": 25, "batch_segments": 512, "ppo": {"update_epochs": 2, "num_minibatches": 4,
                                                                         "max_lag": 8}},
}


def preset(arena: str, **overrides) -> TrainConfig:
    """The in-process preset of ``arena`` with ``TRAIN_PRESETS`` and then ``overrides`` applied."""
    extra = TRAIN_PRESETS.get(arena, {})
    ppo = {**extra.get("ppo", {}), **overrides.pop("ppo", {})}
    return inprocess_preset(arena, **{**extra, **overrides, "ppo": ppo})


def config_from_dict(d: dict) -> TrainConfig:
    d = dict(d)
    ppo = PPOConfig(**d.pop("ppo", {}))
    return TrainConfig(ppo=ppo, **d)


def write_json(path: Path, obj) -> None:
    """Atomically: a temporary file, fsynced, renamed."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as fh:
        json.dump(obj, fh, indent=2)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
