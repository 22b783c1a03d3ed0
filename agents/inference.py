"""Acting fast with a policy net: a compressed (bf16, int8), optionally compiled copy of an fp32 master.

    inf = Inference(net, precision="bf16", mode="eager", device="cpu")
    inf.load_state(params, version=7)          # new parameters into the fp32 master; the copy is re-derived
    logits, values = inf(obs, mask)            # float32; logits are -inf where the mask is 0
    actions = inf.act(obs, mask, generator=g)  # a sample of the masked softmax (greedy=True: the argmax)

The master stays fp32 (learners train it; checkpoints save it). The acting copy is derived from it at
construction and again on every ``load_state`` (or ``refresh`` after the master was changed in place),
so a worker never acts with a copy of older parameters than the version it reports.

Precisions (``PRECISIONS``):

======  ==========================================================================================
fp32    the master itself, no copy.
bf16    a bfloat16 copy of the whole net (observations are scaled in bf16 too); logits and values come
        back as float32. Fast where the hardware multiplies bf16 (``bf16_fast``): CUDA from Ampere on,
        CPUs with AVX512-BF16 or AMX (oneDNN). Elsewhere it runs correctly, but slowly.
int8    dynamic quantisation of the linear layers, CPU only: int8 weights (one scale per output
        channel), activations quantised at run time per batch, float32 in and out; convolutions stay
        fp32. The quantised range of the activations is taken over the whole batch, so a row's logits
        can move by a rounding step with the other rows of its batch.
======  ==========================================================================================

int8 backends (``int8_backend``): ``torch.ao`` is ``torch.ao.quantization.quantize_dynamic`` with
per-channel weights (fbgemm / oneDNN kernels). torch marks that API for removal in favour of torchao,
and its warnings saying so are silenced here; ``torchao`` is torchao's
``Int8DynamicActivationInt8WeightConfig``. ``auto`` takes ``torch.ao`` while torch has it, else
torchao when installed. Why not torchao first: on the 2-core Xeon (AMX) this was measured on, with
torch 2.13 and torchao 0.18, torchao's int8 path decided at 0.3-0.4x the rate of fp32 eager at batches
of 1k-32k (0.6-0.8x compiled), ``torch.ao``'s at 1.0-1.2x, bf16 at 2.0-2.6x (2.5-3.6x compiled at 8k
and up); ``arena bench --policy`` prints both int8 backends where torchao is installed.

Modes (``MODES``): ``eager``; ``compile`` is ``torch.compile`` of the forward pass (on CUDA with
``mode="reduce-overhead"``: CUDA graphs, captured per batch shape). A compile that is unavailable or
fails falls back to eager, with the reason in ``fallback``; the time spent compiling (first calls at
each shape, in ``warmup``) is kept in ``compile_s``, apart from acting time. ``auto`` acts eagerly
until ``warmup`` has timed eager against compiled on its largest batch and kept the faster.
"""
from __future__ import annotations

import copy
import importlib
import time
import warnings
from collections.abc import Mapping

import numpy as np
import torch
from torch import nn

PRECISIONS = ("fp32", "bf16", "int8")
MODES = ("eager", "compile", "auto")
INT8_BACKENDS = ("auto", "torch.ao", "torchao")


def bf16_fast(device: torch.device | str) -> bool:
    """Whether ``device`` multiplies bf16 in hardware (CUDA from Ampere on; CPUs with AVX512-BF16/AMX)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type != "cpu":
        return False
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def pick_int8_backend(choice: str = "auto") -> str | None:
    """The int8 backend ``choice`` names (``auto``: ``torch.ao`` while torch has it, else ``torchao``),
    or ``None`` when none is installed."""
    if choice not in INT8_BACKENDS:
        raise ValueError(f"int8_backend must be one of {INT8_BACKENDS}, got {choice!r}")
    has_ao = hasattr(getattr(torch, "ao", None), "quantization") and \
        hasattr(torch.ao.quantization, "quantize_dynamic")
    if choice == "torch.ao":
        return "torch.ao" if has_ao else None
    if choice == "auto" and has_ao:
        return "torch.ao"
    try:
        importlib.import_module("torchao.quantization")
    except Exception:   # not installed, or built for another torch
        return None
    return "torchao"


def available(device: torch.device | str = "cpu") -> list[str]:
    """The precisions worth running on ``device``: fp32, bf16 where it is fast, int8 on the CPU."""
    device = torch.device(device)
    out = ["fp32"]
    if bf16_fast(device):
        out.append("bf16")
    if device.type == "cpu" and pick_int8_backend() is not None:
        out.append("int8")
    return out


def _quantize_int8(net: nn.Module, backend: str) -> nn.Module:
    """A copy of ``net`` (fp32, CPU) with its linear layers dynamically quantised to int8."""
    net = copy.deepcopy(net)
    if backend == "torchao":
        from torchao.quantization import Int8DynamicActivationInt8WeightConfig, quantize_

        quantize_(net, Int8DynamicActivationInt8WeightConfig())
        return net
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    with warnings.catch_warnings():     # torch's deprecation notice for torch.ao (see the module docstring)
        warnings.simplefilter("ignore")
        return quantize_dynamic(net, {nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8)


class Inference:
    """The acting copy of ``net`` (a ``PolicyNet``, or any module ``obs -> (logits, values)``) at
    ``precision`` in ``mode`` on ``device``; see the module docstring.

    ``net`` is the fp32 master and is used in place (moved to ``device``); ``version`` is the version
    of the parameters the copy was derived from (``None`` until ``load_state`` names one).
    """

    def __init__(self, net: nn.Module, precision: str = "fp32", mode: str = "eager",
                 device: torch.device | str = "cpu", int8_backend: str = "auto"):
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        self.device = torch.device(device)
        if precision == "int8":
            if self.device.type != "cpu":
                raise ValueError("int8 is dynamic quantisation on the CPU; on a GPU use bf16")
            backend = pick_int8_backend(int8_backend)
            if backend is None:
                raise ValueError(f"int8 needs torch.ao.quantization or torchao (asked for {int8_backend!r}); "
                                 f"neither is installed")
            self.backend = backend
        else:
            self.backend = "torch"
        self.precision, self.mode = precision, mode
        self.master = net.to(self.device).eval()
        self.version: int | None = None
        self.compile_s = 0.0             # seconds spent in first calls that compiled (warmup)
        self.derive_s = 0.0              # seconds the last re-derivation took
        self.fallback: str | None = None  # why a compile fell back to eager
        self.choice: str | None = None   # mode auto: what warmup measured
        self._model: nn.Module | None = None
        self._compiled = None
        self._use_compiled = mode == "compile"
        self._derive()

    # -- the copy ----------------------------------------------------------------------------------
    def _derive(self) -> None:
        """(Re)build the acting copy from the master. fp32 and bf16 keep their module (bf16 copies the
        new values in place), so a compiled graph stays valid; int8 quantises a fresh copy."""
        t0 = time.perf_counter()
        with torch.no_grad():
            if self.precision == "fp32":
                model = self.master
            elif self.precision == "bf16":
                model = self._model
                if model is None:
                    model = copy.deepcopy(self.master).to(torch.bfloat16).eval()
                else:
                    for dst, src in zip(model.state_dict().values(), self.master.state_dict().values()):
                        dst.copy_(src)
            else:
                model = _quantize_int8(self.master.cpu(), self.backend).eval()
        if model is not self._model:
            self._model = model
            if self.mode != "eager" and self.fallback is None:
                self._compiled = self._compile(model)
        self.derive_s = time.perf_counter() - t0

    def _compile(self, model: nn.Module):
        try:
            # dynamic batch sizes: one graph for every size (a worker's batches vary), not one per size
            kwargs = {"mode": "reduce-overhead"} if self.device.type == "cuda" else {}
            return torch.compile(model, dynamic=True, **kwargs)
        except Exception as exc:   # no compiler backend on this platform
            self._fall_back(exc)
            return None

    def _fall_back(self, exc: Exception) -> None:
        self.fallback = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
        self._compiled, self._use_compiled = None, False
        warnings.warn(f"torch.compile unavailable, acting eagerly ({self.fallback})", RuntimeWarning, stacklevel=3)

    @property
    def compiled(self) -> bool:
        """Whether calls go through the compiled forward pass now."""
        return self._use_compiled and self._compiled is not None

    def parameters_size(self) -> int:
        return int(sum(p.numel() for p in self.master.parameters()))

    def load_state(self, params, version: int | None = None) -> None:
        """New parameters into the fp32 master, then the acting copy re-derived from it.

        ``params``: a state dict (tensors or arrays, ``strict`` names) or one flat float32 vector of
        every parameter in ``net.parameters()`` order (the layout learners publish; buffers such as
        ``obs_scale`` are constants and are not in it)."""
        with torch.no_grad():
            if isinstance(params, Mapping):
                state = {k: torch.as_tensor(v) for k, v in params.items()}
                want = {k: tuple(v.shape) for k, v in self.master.state_dict().items()}
                have = {k: tuple(v.shape) for k, v in state.items()}
                if have != want:     # checked whole before anything is copied: no half-loaded master
                    bad = sorted(set(have) ^ set(want)) or sorted(k for k in want if have[k] != want[k])
                    raise ValueError(f"state dict does not fit the net: {', '.join(bad[:5])}")
                self.master.load_state_dict(state, strict=True)
            else:
                vec = torch.as_tensor(params)
                size = self.parameters_size()
                if vec.dim() != 1 or vec.numel() != size or not vec.is_floating_point():
                    raise ValueError(f"expected a flat float vector of {size} parameters, "
                                     f"got {vec.dtype} {tuple(vec.shape)}")
                if not torch.isfinite(vec).all():
                    raise ValueError("the parameter vector is not all finite")
                offset = 0
                for p in self.master.parameters():
                    k = p.numel()
                    p.copy_(vec[offset:offset + k].view_as(p))
                    offset += k
        self.refresh(version)

    def refresh(self, version: int | None = None) -> None:
        """Re-derive the acting copy after the master changed in place (``version``: its new version)."""
        self._derive()
        self.version = version

    # -- acting ------------------------------------------------------------------------------------
    def _forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.compiled:
            try:
                return self._compiled(obs)
            except Exception as exc:   # the compiler failed at this shape: eager from now on
                self._fall_back(exc)
        return self._model(obs)

    def _tensor(self, arr) -> torch.Tensor:
        t = arr if isinstance(arr, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(arr))
        return t.to(self.device, non_blocking=True)

    @torch.inference_mode()
    def __call__(self, obs, mask=None) -> tuple[torch.Tensor, torch.Tensor]:
        """``obs (B, *obs_shape)`` (and a ``mask (B, num_actions)``, nonzero = legal) -> float32 logits
        ``(B, num_actions)`` (-inf where illegal) and values ``(B,)`` on ``device``."""
        logits, values = self._forward(self._tensor(obs))
        logits, values = logits.float(), values.float()
        if mask is not None:
            logits = logits.masked_fill(self._tensor(mask) == 0, float("-inf"))
        return logits, values

    @torch.inference_mode()
    def act(self, obs, mask, generator: torch.Generator | None = None, greedy: bool = False) -> torch.Tensor:
        """Actions ``(B,)`` int64 on ``device``: the argmax of the masked logits (``greedy``) or a sample
        of their softmax (Gumbel-max, drawn from ``generator``)."""
        logits, _ = self(obs, mask)
        if not greedy:
            u = torch.rand(logits.shape, generator=generator, device=self.device).clamp_(1e-12, 1.0)
            logits = logits - torch.log(-torch.log(u))   # Gumbel-max: a sample from softmax(logits)
        return logits.argmax(dim=1)

    # -- warm-up -----------------------------------------------------------------------------------
    @torch.inference_mode()
    def warmup(self, example_obs, sizes=(1, 64, 1024), rounds: int = 5) -> float:
        """Call the forward pass once at each batch size in ``sizes`` (rows of ``example_obs``
        repeated), so compiles happen now and not inside a timed request. Returns the seconds spent;
        in a compiling mode they are added to ``compile_s``. Mode ``auto`` then times eager against
        compiled (``rounds`` interleaved calls at the largest size) and keeps the faster."""
        example = self._tensor(example_obs)
        if self.mode == "auto" and self._compiled is not None:
            self._use_compiled = True
        spent = 0.0
        for n in sizes:
            x = example[torch.arange(n, device=example.device) % example.shape[0]]
            t0 = time.perf_counter()
            self._forward(x)
            self._sync()
            spent += time.perf_counter() - t0
        if self.compiled:
            self.compile_s += spent
        if self.mode == "auto" and self.compiled:
            x = example[torch.arange(max(sizes), device=example.device) % example.shape[0]]
            times = {"eager": [], "compile": []}
            for _ in range(rounds):
                for name, fn in (("eager", self._model), ("compile", self._compiled)):
                    t0 = time.perf_counter()
                    fn(x)
                    self._sync()
                    times[name].append(time.perf_counter() - t0)
            med = {k: float(np.median(v)) for k, v in times.items()}
            self._use_compiled = med["compile"] < med["eager"]
            self.choice = (f"{'compile' if self._use_compiled else 'eager'} (median at batch {max(sizes)}: "
                           f"eager {med['eager'] * 1e3:.2f} ms, compiled {med['compile'] * 1e3:.2f} ms)")
        return spent

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def describe(self) -> str:
        mode = "compile" if self.compiled else "eager"
        extra = f", int8 via {self.backend}" if self.precision == "int8" else ""
        extra += f", compile fell back: {self.fallback}" if self.fallback else ""
        return f"{self.precision} {mode} on {self.device}{extra}"
