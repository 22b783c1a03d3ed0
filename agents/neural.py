"""Neural policies in torch: a small MLP or a small conv net over the observation window.

One forward pass per ``act`` call for the whole batch, on the GPU when one is present (pinned host
buffers and non-blocking copies there) and on the CPU otherwise. Saved as a checkpoint folder
(``agents.checkpoint``: ``DIR/checkpoint.json`` naming ``DIR/ckpt-NNNNNN/``) holding
``policy.safetensors`` (the weights, including the observation scale) and ``policy.json`` (what is
needed to rebuild the net)::

    {"format": "arena-policy", "version": 1, "arena": "battle", "obs_shape": [7, 7, 4],
     "obs_dtype": "uint8", "num_actions": 9, "arch": "conv", "hidden": 128, "channels": 32,
     "checkpoint": 7}

``ckpt:DIR`` loads it; the single ``NAME.safetensors`` + ``NAME.json`` files of earlier runs load too.
Loading never unpickles and never allocates what the files merely claim: the JSON is parsed and its
sizes bounded, the safetensors header is checked against the file and against the net the metadata
describes, and only then is the net built and filled with ``load_state_dict(strict=True)``.
"""
from __future__ import annotations

import json
import os
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from . import checkpoint as ckpt
from .base import Agent

ARCHS = ("mlp", "conv")
FORMAT, VERSION = "arena-policy", 1
MAX_META_BYTES = 64 * 1024


class PolicyNet(nn.Module):
    """Observation ``(B, *obs_shape)`` -> action logits ``(B, num_actions)`` and a value ``(B,)``.

    ``mlp``: flatten, two hidden layers. ``conv``: for ``(H, W, C)`` windows, two 3x3 convolutions
    (channels last in, moved first inside), then one hidden layer. Inputs are multiplied by
    ``obs_scale`` (1 / the observation space's upper bound) so uint8 counts and float planes look alike.
    """

    def __init__(self, obs_shape, num_actions: int, arch: str = "mlp", hidden: int = 128, channels: int = 32,
                 obs_high: np.ndarray | None = None):
        super().__init__()
        if arch not in ARCHS:
            raise ValueError(f"arch must be one of {ARCHS}, got {arch!r}")
        self.obs_shape, self.arch = tuple(int(d) for d in obs_shape), arch
        high = np.ones(self.obs_shape, np.float32) if obs_high is None else np.broadcast_to(obs_high, self.obs_shape)
        high = np.where(np.isfinite(high) & (high > 0), high, 1.0).astype(np.float32)
        self.register_buffer("obs_scale", torch.from_numpy(1.0 / high))
        size = int(np.prod(self.obs_shape))
        if arch == "conv":
            if len(self.obs_shape) != 3:
                raise ValueError(f"conv needs (H, W, C) observations, got {self.obs_shape}")
            h, w, c = self.obs_shape
            self.body = nn.Sequential(
                nn.Conv2d(c, channels, 3, padding=1), nn.ReLU(),
                nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(),
                nn.Flatten(), nn.Linear(channels * h * w, hidden), nn.ReLU())
        else:
            self.body = nn.Sequential(nn.Flatten(), nn.Linear(size, hidden), nn.ReLU(),
                                      nn.Linear(hidden, hidden), nn.ReLU())
        self.policy = nn.Linear(hidden, num_actions)
        self.value = nn.Linear(hidden, 1)

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = obs.to(self.obs_scale.dtype) * self.obs_scale     # float32; bf16 in a bf16 copy (agents.inference)
        if self.arch == "conv":
            x = x.permute(0, 3, 1, 2)
        h = self.body(x)
        return self.policy(h), self.value(h).squeeze(-1)


def pick_device(device: str = "auto", log=None) -> torch.device:
    """``auto``: CUDA when there is a device, else the CPU. ``cuda`` where there is none falls back to the
    CPU with one line to ``log`` (default stderr), so a run asked for the GPU still runs."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        (log or (lambda text: print(text, file=sys.stderr, flush=True)))(
            f"arena: no CUDA device here: {device} falls back to the CPU")
        return torch.device("cpu")
    return torch.device(device)


class Staging:
    """Host arrays onto a device for one forward pass. On CUDA through pinned host buffers (one per key,
    grown when a batch outgrows it, reused otherwise) and a non-blocking copy, so the transfer overlaps
    the work queued before it; on the CPU the array's own memory, no copy. A buffer is reused by the next
    call only: the caller reads its results back to the host (which waits for the stream) in between."""

    def __init__(self, device: torch.device):
        self.device = torch.device(device)
        self._pinned: dict[str, torch.Tensor] = {}

    def __call__(self, key: str, arr: np.ndarray) -> torch.Tensor:
        if not arr.flags.writeable:      # a read-only view (a worker's shared memory): torch only reads it,
            with warnings.catch_warnings():      # but warns that it could write
                warnings.simplefilter("ignore", UserWarning)
                t = torch.from_numpy(np.ascontiguousarray(arr))
        else:
            t = torch.from_numpy(np.ascontiguousarray(arr))
        if self.device.type != "cuda":
            return t
        buf = self._pinned.get(key)
        if buf is None or buf.shape[0] < t.shape[0] or buf.shape[1:] != t.shape[1:] or buf.dtype != t.dtype:
            buf = torch.empty((max(t.shape[0], 1024),) + tuple(t.shape[1:]), dtype=t.dtype).pin_memory()
            self._pinned[key] = buf
        buf[: t.shape[0]].copy_(t)
        return buf[: t.shape[0]].to(self.device, non_blocking=True)


def pad_rows(obs: np.ndarray, shape: tuple) -> np.ndarray:
    """Rows cut to a team's observation space (``tag``), zero-padded back to the net's input ``shape``:
    one net plays every team, as the game's padded rows hold them (``simcore.game``)."""
    if obs.shape[1:] == shape:
        return obs
    full = np.zeros((obs.shape[0],) + shape, dtype=obs.dtype)
    full[(slice(None),) + tuple(slice(0, d) for d in obs.shape[1:])] = obs
    return full


class NeuralAgent(Agent):
    """Acts with a ``PolicyNet``: samples from the masked softmax (``greedy=True``: takes the argmax).

    ``precision`` (``fp32``, ``bf16``, ``int8``) and ``compile`` (``False``, ``True``, ``"auto"``)
    choose the acting copy (``agents.inference``); ``net`` stays the fp32 master that is saved and
    loaded. ``load_state(params, version)`` swaps in new parameters and re-derives the copy.
    """

    name = "neural"

    def __init__(self, game=None, seed: int = 0, net: PolicyNet | None = None, arch: str = "mlp",
                 hidden: int = 128, channels: int = 32, device: str = "auto", greedy: bool = False,
                 arena: str | None = None, precision: str = "fp32", compile: bool | str = False):
        super().__init__(game, seed)
        self.device = pick_device(device)
        if net is None:
            if game is None:
                raise ValueError("NeuralAgent needs a game (for its spaces) or a net")
            torch.manual_seed(seed)
            space = game.single_observation_space
            net = PolicyNet(space.shape, game.num_actions, arch=arch, hidden=hidden, channels=channels,
                            obs_high=np.asarray(space.high, np.float32))
        self.arena = arena or getattr(game, "name", None)
        self.net = net.to(self.device).eval()
        self.greedy = bool(greedy)
        self.meta = {"hidden": hidden, "channels": channels}
        self._gen = torch.Generator(device=self.device)
        self._gen.manual_seed(seed)
        self._stage = Staging(self.device)
        self.use_inference(precision, compile)

    def use_inference(self, precision: str = "fp32", compile: bool | str = False, int8_backend: str = "auto") -> None:
        """Act through a ``precision`` copy of ``net``, compiled when ``compile`` (``"auto"``: where
        ``warmup`` finds it faster). See ``agents.inference.Inference``."""
        from .inference import Inference

        mode = "auto" if compile == "auto" else ("compile" if compile else "eager")
        self.infer = Inference(self.net, precision, mode, self.device, int8_backend=int8_backend)

    @property
    def precision(self) -> str:
        return self.infer.precision

    @property
    def version(self) -> int | None:
        """The version of the parameters acting now (``None`` until ``load_state`` names one)."""
        return self.infer.version

    def load_state(self, params, version: int | None = None) -> None:
        """New parameters (a state dict or a flat float32 vector) into ``net``; the acting copy is re-derived."""
        self.infer.load_state(params, version)

    def reset(self, seed: int | None = None) -> None:
        super().reset(seed)
        self._gen.manual_seed(int(self.seed) & 0x7FFFFFFFFFFFFFFF)

    def reseed(self, seed: int) -> None:
        """Restart the sampling stream (per batch in distributed play: re-sent batches act alike)."""
        self._gen.manual_seed(int(seed) & 0x7FFFFFFFFFFFFFFF)

    @torch.inference_mode()
    def act(self, obs: np.ndarray, mask: np.ndarray) -> np.ndarray:
        if obs.shape[0] == 0:
            return np.zeros(0, np.int64)
        obs = pad_rows(obs, tuple(self.net.obs_shape))
        actions = self.infer.act(self._stage("obs", obs), self._stage("mask", mask), self._gen, self.greedy)
        return actions.cpu().numpy().astype(np.int64)

    # -- saving and loading ------------------------------------------------------------------------
    def metadata(self) -> dict[str, Any]:
        """What rebuilds the net, read from the net itself (its hidden size and conv channels)."""
        net = self.net
        channels = next((int(m.out_channels) for m in net.modules() if isinstance(m, nn.Conv2d)),
                        int(self.meta.get("channels", 32)))
        return {"format": FORMAT, "version": VERSION, "arena": self.arena, "obs_shape": list(net.obs_shape),
                "obs_dtype": str(self.game.single_observation_space.dtype) if self.game is not None else None,
                "num_actions": int(net.policy.out_features), "arch": net.arch,
                "hidden": int(net.policy.in_features), "channels": channels}

    def checkpoint_files(self, info: dict | None = None) -> dict:
        """The policy's files for ``agents.checkpoint.write``: ``policy.safetensors`` (weights, the
        checkpoint number in the header's metadata) and ``policy.json`` (``metadata()`` + ``info`` +
        the checkpoint number). A learner adds its own files beside them."""
        from safetensors.torch import save_file

        state = {k: v.detach().cpu().contiguous() for k, v in self.net.state_dict().items()}
        meta = {**self.metadata(), **(info or {})}

        def weights(path: Path, number: int) -> None:
            save_file(state, str(path), metadata={"format": FORMAT, "checkpoint": str(number)})

        def metadata(path: Path, number: int) -> None:
            path.write_text(json.dumps({**meta, "checkpoint": number}, indent=2))

        return {f"{ckpt.POLICY}.safetensors": weights, f"{ckpt.POLICY}.json": metadata}

    def save(self, path: str | os.PathLike, keep: int = ckpt.KEEP) -> Path:
        """Write a checkpoint into the folder ``path`` (``agents.checkpoint``: a new numbered folder, then
        the pointer switched to it); returns ``path``, which ``ckpt:PATH`` loads."""
        path = Path(path)
        if path.suffix == ".safetensors":
            path = path.with_suffix("")
        ckpt.write(path, self.checkpoint_files(), keep=keep)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike, game=None, seed: int = 0, device: str = "auto",
             greedy: bool = False) -> "NeuralAgent":
        """The policy at ``path``: a checkpoint folder (its latest checkpoint) or, from earlier runs,
        ``PATH.safetensors`` + ``PATH.json``. Everything is checked before anything is allocated: the
        metadata's sizes are bounded, the weights file's header must fit the file and name exactly the
        tensors (and shapes) the metadata's net has, and the weights must be finite. Any fault raises
        ``CheckpointError`` (a ``ValueError``) with one line."""
        weights, meta_path, _ = ckpt.policy_files(path)
        meta = read_metadata(meta_path)
        arch, obs_shape, num_actions = meta["arch"], meta["obs_shape"], meta["num_actions"]
        hidden, channels = meta["hidden"], meta["channels"]
        if game is not None:
            if meta.get("arena") not in (None, game.name):
                raise ckpt.CheckpointError(f"policy {path} was made for arena {meta['arena']!r}, not {game.name!r}")
            if tuple(obs_shape) != game.obs_shape or num_actions != game.num_actions:
                raise ckpt.CheckpointError(f"policy {path} expects observations {tuple(obs_shape)} and "
                                           f"{num_actions} actions; {game.name} with these options has "
                                           f"{game.obs_shape} and {game.num_actions}")
        header = ckpt.safetensors_header(weights)
        with torch.device("meta"):      # the shapes the metadata's net has, without allocating it
            shapes = PolicyNet(obs_shape, num_actions, arch=arch, hidden=hidden, channels=channels)
        want = {k: list(v.shape) for k, v in shapes.state_dict().items()}
        got = {k: t["shape"] for k, t in header.items() if k != "__metadata__"}
        if got != want:
            missing, extra = sorted(set(want) - set(got)), sorted(set(got) - set(want))
            wrong = [k for k in want if k in got and got[k] != want[k]]
            what = (f"tensor {wrong[0]!r} is {got[wrong[0]]}, the metadata's net needs {want[wrong[0]]}" if wrong
                    else f"missing {missing[:3]}" if missing else f"unexpected {extra[:3]}")
            raise ckpt.CheckpointError(f"{weights}: its tensors do not fit the net its metadata describes ({what})")
        from safetensors.torch import load_file
        try:
            state = load_file(str(weights))
        except Exception as exc:   # safetensors' own error type is not a ValueError
            raise ckpt.CheckpointError(f"{weights}: cannot read the weights ({type(exc).__name__}: {exc})") from None
        bad = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
        if bad:
            raise ckpt.CheckpointError(f"{weights}: tensor {bad[0]!r} holds NaN or infinite values")
        net = PolicyNet(obs_shape, num_actions, arch=arch, hidden=hidden, channels=channels)
        net.load_state_dict(state, strict=True)
        return cls(game=game, seed=seed, net=net, device=device, greedy=greedy, arena=meta.get("arena"),
                   hidden=hidden, channels=channels)


#: bounds on what policy metadata may ask for, checked before the net is built
MAX_HIDDEN, MAX_CHANNELS, MAX_ACTIONS, MAX_OBS_SIZE = 1 << 16, 1 << 12, 1 << 16, 1 << 24
MAX_PARAMS = 1 << 27          # 512 MiB of float32 weights


def param_count(obs_shape, num_actions: int, arch: str, hidden: int, channels: int) -> int:
    """How many numbers ``PolicyNet(...)`` holds (weights and the observation scale), in Python integers."""
    size = 1
    for d in obs_shape:
        size *= d
    if arch == "conv":
        h, w, c = obs_shape
        body = (c * channels * 9 + channels) + (channels * channels * 9 + channels) + (channels * h * w * hidden + hidden)
    else:
        body = (size * hidden + hidden) + (hidden * hidden + hidden)
    return size + body + (hidden * num_actions + num_actions) + (hidden + 1)


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """A policy's ``.json`` metadata, checked: format, arch, shapes and sizes within bounds."""
    path = Path(path)
    meta = ckpt.read_json(path, "policy metadata", limit=MAX_META_BYTES)
    if meta.get("format") != FORMAT or meta.get("version") != VERSION:
        raise ckpt.CheckpointError(f"{path} is not {FORMAT} metadata of version {VERSION}")

    def count(key: str, default: int | None, high: int) -> int:
        v = meta.get(key, default)
        if not isinstance(v, int) or isinstance(v, bool) or not 1 <= v <= high:
            raise ckpt.CheckpointError(f"{path}: {key!r} must be an integer from 1 to {high:,}, got {v!r}")
        return v

    arch, obs_shape = meta.get("arch"), meta.get("obs_shape")
    if arch not in ARCHS:
        raise ckpt.CheckpointError(f"{path}: 'arch' must be one of {ARCHS}, got {arch!r}")
    if not isinstance(obs_shape, list) or not 1 <= len(obs_shape) <= 4 or not all(
            isinstance(d, int) and not isinstance(d, bool) and 1 <= d <= MAX_OBS_SIZE for d in obs_shape):
        raise ckpt.CheckpointError(f"{path}: 'obs_shape' must be 1 to 4 positive integers, got {obs_shape!r}")
    if arch == "conv" and len(obs_shape) != 3:
        raise ckpt.CheckpointError(f"{path}: a conv policy needs (H, W, C) observations, got {obs_shape}")
    if not isinstance(meta.get("arena"), (str, type(None))):
        raise ckpt.CheckpointError(f"{path}: 'arena' must be a name")
    out = dict(meta, num_actions=count("num_actions", None, MAX_ACTIONS), hidden=count("hidden", 128, MAX_HIDDEN),
               channels=count("channels", 32, MAX_CHANNELS))
    size = 1
    for d in obs_shape:
        size *= d
    n = param_count(obs_shape, out["num_actions"], arch, out["hidden"], out["channels"])
    if size > MAX_OBS_SIZE or n > MAX_PARAMS:
        raise ckpt.CheckpointError(f"{path}: this net would hold {n:,} numbers (observations of {size:,}); "
                                   f"at most {MAX_PARAMS:,} are loaded")
    return out
