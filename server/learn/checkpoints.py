"""A training run's checkpoints: each learner's, read back whole and checked, and the run's final policy.

The format is ``agents.checkpoint`` (a numbered folder per save and a pointer switched atomically)::

    DIR/train.json                     the run (arena, learners, configuration)
    DIR/learners/L0/checkpoint.json    -> ckpt-000042/
    DIR/learners/L0/ckpt-000042/       policy.safetensors, policy.json, optimizer.pt, state.json, manifest.json
    DIR/policy/checkpoint.json         -> ckpt-000001/  (the final policy: ``ckpt:DIR/policy``)

Runs from before versioned checkpoints (loose ``state.json``, ``optimizer.pt``, ``policy.safetensors``
in a learner's folder, ``DIR/policy.safetensors``) still resume and load; their files cannot be checked
against each other.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

import arenas
from agents import checkpoint as ckpt
from agents.neural import NeuralAgent

FINAL = "policy"


def has_learner_checkpoint(folder: Path) -> bool:
    """Whether a learner's folder holds a checkpoint (versioned, or the loose files of an older run)."""
    return ckpt.has_checkpoint(folder) or (Path(folder) / "state.json").is_file()


def holds_run(root: Path) -> bool:
    """A run exists once ``train.json`` is written and some learner has saved a checkpoint (a start that
    failed before its first save leaves none)."""
    learners = Path(root) / "learners"
    return (Path(root) / "train.json").is_file() and learners.is_dir() and any(
        has_learner_checkpoint(p) for p in learners.iterdir() if p.is_dir())


@dataclass
class LearnerCheckpoint:
    folder: Path                   # the checkpoint's folder (a learner's folder for an older run)
    number: int | None             # None for an older run's loose files
    agent: NeuralAgent
    optimizer: dict | None         # Adam's state_dict, or None when the checkpoint holds none
    state: dict                    # state.json, its values checked


def _valid_state(data: dict, where: Path) -> dict:
    from .learner import LearnerState

    fields = LearnerState.__dataclass_fields__
    fresh = LearnerState()
    for key, value in data.items():
        if key not in fields:
            continue
        kind = type(getattr(fresh, key))
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if kind is float:
            ok = number and value >= 0
        elif kind is int:
            ok = number and isinstance(value, int) and value >= 0
        elif kind is dict:
            ok = isinstance(value, dict) and all(
                isinstance(k, str) and isinstance(v, list) and len(v) == 3 and
                all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in v) for k, v in value.items())
        else:
            ok = isinstance(value, kind)
        if not ok:
            raise ckpt.CheckpointError(f"{where}: {key!r} is not a valid value ({repr(value)[:60]})")
    return {k: v for k, v in data.items() if k in fields}


def _check_optimizer(saved, params: list, where: Path) -> None:
    """Adam's ``state_dict`` for ``params``: every moment tensor the shape of its parameter (Adam's own
    ``load_state_dict`` checks only the number of parameters, and a wrong shape would fail mid-training)."""
    if not isinstance(saved, dict) or not isinstance(saved.get("state"), dict) \
            or not isinstance(saved.get("param_groups"), list):
        raise ckpt.CheckpointError(f"{where}: not an optimizer's state")
    for key, entry in saved["state"].items():
        if not isinstance(key, int) or not 0 <= key < len(params) or not isinstance(entry, dict):
            raise ckpt.CheckpointError(f"{where}: optimizer state for an unknown parameter {key!r}")
        for name, value in entry.items():
            if isinstance(value, torch.Tensor) and value.dim() > 0 and value.shape != params[key].shape:
                raise ckpt.CheckpointError(f"{where}: optimizer state {name!r} of parameter {key} is "
                                           f"{tuple(value.shape)}, the parameter {tuple(params[key].shape)}")
            if isinstance(value, torch.Tensor) and value.is_floating_point() and not bool(torch.isfinite(value).all()):
                raise ckpt.CheckpointError(f"{where}: optimizer state {name!r} of parameter {key} is not finite")


def read_learner_checkpoint(out: Path, game) -> LearnerCheckpoint:
    """A learner's latest checkpoint, every part checked: the unit (``agents.checkpoint.open_checkpoint``),
    the policy (against ``game``), the optimizer state's own checkpoint number, the state's values.
    Raises ``CheckpointError`` (one line) for anything corrupt, truncated, absurd or mismatched, and
    ``FileNotFoundError`` when there is no checkpoint at all."""
    out = Path(out)
    number = None
    if ckpt.has_checkpoint(out):
        ck = ckpt.open_checkpoint(out)
        for name in ("optimizer.pt", "state.json"):
            if name not in ck.manifest["files"]:
                raise ckpt.CheckpointError(f"{ck.folder}: holds no {name}; not a learner's checkpoint")
        folder, number = ck.folder, ck.number
        policy, opt, state_path = folder, folder / "optimizer.pt", folder / "state.json"
    elif (out / "state.json").is_file():
        folder, policy, opt, state_path = out, out / FINAL, out / "optimizer.pt", out / "state.json"
    else:
        raise FileNotFoundError(f"no checkpoint in {out} (no {ckpt.POINTER})")
    agent = NeuralAgent.load(policy, game=game, device="cpu")
    optimizer = None
    if opt.is_file():
        if opt.stat().st_size > ckpt.MAX_FILE_BYTES:
            raise ckpt.CheckpointError(f"{opt}: too large for optimizer state")
        try:
            saved = torch.load(opt, weights_only=True)
        except Exception as exc:     # unpickling refused, a truncated or corrupt file
            first = str(exc).splitlines()[0] if str(exc) else ""
            raise ckpt.CheckpointError(f"{opt}: cannot read optimizer state ({type(exc).__name__}: {first})") from None
        if number is not None:
            got = saved.get("checkpoint") if isinstance(saved, dict) else None
            if got != number:
                raise ckpt.CheckpointError(f"{folder}: mismatched set of checkpoint files (optimizer.pt says "
                                           f"{got!r}, the others {number}); refusing to load it")
            saved = saved.get("optimizer")
        _check_optimizer(saved, list(agent.net.parameters()), opt)
        optimizer = saved
    state = _valid_state(ckpt.read_json(state_path, "learner state"), state_path)
    return LearnerCheckpoint(folder, number, agent, optimizer, state)


def check_resume(root: Path, arena: str, options: dict, learners: list[str]) -> None:
    """Before any learner of a resumed run starts: every learner checkpoint in ``root/learners`` reads
    back whole (``read_learner_checkpoint``), else ``CheckpointError`` with one line. A learner without
    any checkpoint is left to its own process, which refuses ``--resume`` (as before)."""
    game = arenas.make(arena, num_matches=1, seed=0, **options)
    for name in learners:
        folder = Path(root) / "learners" / name
        if has_learner_checkpoint(folder):
            read_learner_checkpoint(folder, game)


def learner_state(out: Path) -> dict | None:
    """``state.json`` of a learner's latest checkpoint (None when there is none or it cannot be read)."""
    out = Path(out)
    try:
        path = (ckpt.open_checkpoint(out, need=("state.json",)).path("state.json") if ckpt.has_checkpoint(out)
                else out / "state.json")
        return ckpt.read_json(path, "learner state") if path.is_file() else None
    except ckpt.CheckpointError:
        return None


def publish_policy(root: Path, learner: str, game=None) -> Path:
    """Write ``learner``'s latest policy as the run's final checkpoint folder ``DIR/policy``; returns it."""
    root = Path(root)
    folder = root / "learners" / learner
    agent = NeuralAgent.load(folder if ckpt.has_checkpoint(folder) else folder / FINAL, game=game, device="cpu")
    state = learner_state(folder) or {}
    ckpt.write(root / FINAL, agent.checkpoint_files(info={"learner": learner,
                                                          "policy_version": state.get("version")}),
               info={"learner": learner, "version": state.get("version")})
    return root / FINAL
