"""Policies shipped with arena: ``ckpt:builtin/NAME`` loads ``NAME.safetensors`` + ``NAME.json`` from here.

They are small trained nets to play against (``arena run connect4 --agents ckpt:builtin/connect4,greedy``)
and the default net of ``arena bench --policy``. Each is the single-file policy form (weights plus
metadata), which every ``ckpt:`` loader reads. A local folder that happens to be called ``builtin/``
is reached as ``ckpt:./builtin/NAME``.

==========  =====================  ==============================================================
name        net                    made by
==========  =====================  ==============================================================
connect4    mlp, hidden 256        ``arena train connect4 --learners 1 --minutes 5 --seed 0
            (89,608 parameters,    --out runs/c4-builtin`` on the 2-core CPU (1,203 updates,
            359 KB)                30.7 M agent-steps), then the run's policy weights and metadata
                                   copied here as ``connect4.safetensors`` / ``connect4.json``.
                                   1,000 games each, seats alternating, sampling from its softmax:
                                   97.0% against ``random``, 100.0% against ``greedy``.
==========  =====================  ==============================================================

The training defaults (``server.learn.config.TrainConfig``: mlp, hidden 256, opponents greedy 50%,
random 25%, itself 25%) are what make it; asynchronous training is not bit-reproducible, so a rerun
gives a different net of about the same strength.
"""
from __future__ import annotations

from pathlib import Path

DIR = Path(__file__).resolve().parent
PREFIX = "builtin/"


def names() -> list[str]:
    """The shipped policies."""
    return sorted(p.stem for p in DIR.glob("*.safetensors") if p.with_suffix(".json").is_file())


def path(name: str) -> Path:
    """``DIR/NAME.safetensors`` for the shipped policy ``name``."""
    if name not in names():
        raise FileNotFoundError(f"no built-in policy {name!r}; built-in: {', '.join(names()) or 'none'}")
    return DIR / f"{name}.safetensors"


def resolve(target: str) -> str | Path:
    """A ``ckpt:`` target with ``builtin/NAME`` turned into the shipped file; any other target as given."""
    return path(target[len(PREFIX):]) if target.startswith(PREFIX) else target
