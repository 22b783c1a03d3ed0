"""Neural policies in torch: a small MLP or a small conv net over the observation window.

One forward pass per ``act`` call for the whole batch, on the GPU when one is present (pinned host
buffers and non-blocking copies there) and on the CPU otherwise. Saved as ``NAME.safetensors`` (the
weights, including the observation scale) plus ``NAME.json`` (what is needed to rebuild the net)::

    {"format": "arena-policy", "version": 1, "arena": "battle", "obs_shape": [7, 7, 4],
     "obs_dtype": "uint8", "num_actions": 9, "arch": "conv", "hidden": 128, "channels": 32}

Loading never unpickles: the JSON is parsed and checked, the weights come from safetensors, and the
net is rebuilt from the metadata and filled with ``load_state_dict(strict=True)``.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

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
        x = obs.float() * self.obs_scale
        if self.arch == "conv":
            x = x.permute(0, 3, 1, 2)
        h = self.body(x)
        return self.policy(h), self.value(h).squeeze(-1)


def pick_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


class NeuralAgent(Agent):
    """Acts with a ``PolicyNet``: samples from the masked softmax (``greedy=True``: takes the argmax)."""

    name = "neural"

    def __init__(self, game=None, seed: int = 0, net: PolicyNet | None = None, arch: str = "mlp",
                 hidden: int = 128, channels: int = 32, device: str = "auto", greedy: bool = False,
                 arena: str | None = None):
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
        self._pinned: dict[str, torch.Tensor] = {}

    def reset(self, seed: int | None = None) -> None:
        super().reset(seed)
        self._gen.manual_seed(int(self.seed) & 0x7FFFFFFFFFFFFFFF)

    def reseed(self, seed: int) -> None:
        """Restart the sampling stream (per batch in distributed play: re-sent batches act alike)."""
        self._gen.manual_seed(int(seed) & 0x7FFFFFFFFFFFFFFF)

    def _to_device(self, key: str, arr: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(np.ascontiguousarray(arr))
        if self.device.type != "cuda":
            return t
        buf = self._pinned.get(key)
        if buf is None or buf.shape[0] < t.shape[0] or buf.dtype != t.dtype:
            buf = torch.empty((max(t.shape[0], 1024),) + tuple(t.shape[1:]), dtype=t.dtype).pin_memory()
            self._pinned[key] = buf
        buf[: t.shape[0]].copy_(t)
        return buf[: t.shape[0]].to(self.device, non_blocking=True)

    @torch.inference_mode()
    def act(self, obs: np.ndarray, mask: np.ndarray) -> np.ndarray:
        if obs.shape[0] == 0:
            return np.zeros(0, np.int64)
        x = self._to_device("obs", obs)
        m = self._to_device("mask", mask) != 0
        logits, _ = self.net(x)
        logits = logits.masked_fill(~m, float("-inf"))
        if not self.greedy:
            u = torch.rand(logits.shape, generator=self._gen, device=self.device).clamp_(1e-12, 1.0)
            logits = logits - torch.log(-torch.log(u))   # Gumbel-max: a sample from softmax(logits)
        return logits.argmax(dim=1).cpu().numpy().astype(np.int64)

    # -- saving and loading ------------------------------------------------------------------------
    def metadata(self) -> dict[str, Any]:
        net = self.net
        return {"format": FORMAT, "version": VERSION, "arena": self.arena, "obs_shape": list(net.obs_shape),
                "obs_dtype": str(self.game.single_observation_space.dtype) if self.game is not None else None,
                "num_actions": int(net.policy.out_features), "arch": net.arch,
                "hidden": int(net.policy.in_features), "channels": int(self.meta.get("channels", 32))}

    def save(self, path: str | os.PathLike) -> Path:
        """Write ``path`` (``.safetensors``) and its ``.json`` metadata, each atomically."""
        from safetensors.torch import save_file

        path = Path(path)
        if path.suffix != ".safetensors":
            path = path.with_suffix(".safetensors")
        path.parent.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous() for k, v in self.net.state_dict().items()}
        _atomic(path, lambda tmp: save_file(state, str(tmp)))
        meta = json.dumps(self.metadata(), indent=2).encode()
        _atomic(path.with_suffix(".json"), lambda tmp: tmp.write_bytes(meta))
        return path

    @classmethod
    def load(cls, path: str | os.PathLike, game=None, seed: int = 0, device: str = "auto",
             greedy: bool = False) -> "NeuralAgent":
        from safetensors.torch import load_file

        path = Path(path)
        if path.suffix != ".safetensors":
            path = path.with_suffix(".safetensors")
        meta_path = path.with_suffix(".json")
        if not path.is_file():
            raise FileNotFoundError(f"no policy weights at {path}")
        if not meta_path.is_file():
            raise FileNotFoundError(f"no policy metadata at {meta_path}")
        if meta_path.stat().st_size > MAX_META_BYTES:
            raise ValueError(f"{meta_path} is too large to be policy metadata")
        meta = json.loads(meta_path.read_text())
        if not isinstance(meta, dict) or meta.get("format") != FORMAT or meta.get("version") != VERSION:
            raise ValueError(f"{meta_path} is not {FORMAT} metadata of version {VERSION}")
        arch, obs_shape, num_actions = meta.get("arch"), meta.get("obs_shape"), meta.get("num_actions")
        if arch not in ARCHS or not isinstance(obs_shape, list) or not all(isinstance(d, int) and d > 0 for d in obs_shape) \
                or not isinstance(num_actions, int) or num_actions < 1:
            raise ValueError(f"{meta_path}: bad arch, obs_shape or num_actions")
        if game is not None:
            if meta.get("arena") not in (None, game.name):
                raise ValueError(f"policy {path.name} was made for arena {meta['arena']!r}, not {game.name!r}")
            if tuple(obs_shape) != game.obs_shape or num_actions != game.num_actions:
                raise ValueError(f"policy {path.name} expects observations {tuple(obs_shape)} and "
                                 f"{num_actions} actions; {game.name} with these options has "
                                 f"{game.obs_shape} and {game.num_actions}")
        hidden, channels = int(meta.get("hidden", 128)), int(meta.get("channels", 32))
        net = PolicyNet(obs_shape, num_actions, arch=arch, hidden=hidden, channels=channels)
        net.load_state_dict(load_file(str(path)), strict=True)
        agent = cls(game=game, seed=seed, net=net, device=device, greedy=greedy, arena=meta.get("arena"),
                    hidden=hidden, channels=channels)
        return agent


def _atomic(path: Path, write) -> None:
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)
