"""The learner's update: PPO with clipping, GAE, and a V-trace correction for slightly stale segments.

Data arrives as **segments**: ``T`` consecutive decisions of one seat (one agent in one match slot),
each with the behaviour policy's log-probability of the action taken and the policy ``version`` that
was current when the segment's first decision was made. A segment may span a parameter update (its
early decisions come from an older policy), and in distributed play it may come from a worker that
has not yet received the newest parameters. ``ppo_update`` handles both:

1. **Lag limit.** A segment whose version is more than ``PPOConfig.max_lag`` versions behind the
   learner's is dropped and counted (``stats["dropped_segments"]``), never trained on.
2. **V-trace targets and advantages** (Espeholt et al. 2018, as used by APPO in sample-factory).
   With ``rho_t = pi(a_t|x_t) / mu(a_t|x_t)`` the ratio of the learner's current policy (before this
   update's first gradient step) to the behaviour policy that acted, truncated to
   ``rho_t' = min(rho_bar, rho_t)`` and ``c_t = lambda * min(c_bar, rho_t)``::

       delta_t = rho_t' * (r_t + gamma * (1 - d_t) * V(x_{t+1}) - V(x_t))
       A_t     = delta_t + gamma * (1 - d_t) * c_t * A_{t+1}          (A_T = 0)
       v_t     = V(x_t) + A_t                                         (the value target)

   When the data is on-policy every ratio is 1 and ``A_t`` is exactly GAE(lambda) and ``v_t`` the
   lambda-return: on fresh data the update is cleanrl's ``ppo.py``.
3. **Clipped surrogate against the behaviour policy.** PPO's ratio is taken against the stored
   behaviour log-probabilities ``mu``, so the clip bounds the step from the policy that really acted
   (APPO), whatever its age.

Everything the update needs is in a ``SegmentBatch``: preallocated arrays that collectors write in
place (``SegmentBatch.claim`` hands out rows), read by ``ppo_update`` without copies. ``TorchParams``
exposes a net's parameters as one flat float32 vector for gossip (``server.learn.gossip``).
"""
from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn

from server.play.trajectory import Segments

#: the logit given to masked (illegal) actions: finite, so log-softmax and entropy stay finite
MASKED_LOGIT = -1e9


@dataclass
class PPOConfig:
    """Hyper-parameters of ``ppo_update`` (the defaults are the connect4 settings)."""

    lr: float = 1e-3
    """Adam step size."""
    gamma: float = 0.99
    """Discount per decision of a seat (not per game step: in connect4 a seat decides every other step)."""
    gae_lambda: float = 0.95
    """GAE / V-trace lambda: 1 is Monte Carlo, 0 one-step TD."""
    clip_coef: float = 0.2
    """PPO clip range of the probability ratio against the behaviour policy."""
    ent_coef: float = 0.01
    """Weight of the entropy bonus (over the legal actions only)."""
    vf_coef: float = 0.5
    """Weight of the value loss ``0.5 * (V(x) - v_t) ** 2``."""
    max_grad_norm: float = 0.5
    """Global gradient norm clip."""
    update_epochs: int = 4
    """Passes over the batch per update."""
    num_minibatches: int = 4
    """Minibatches per pass (over decisions, shuffled)."""
    norm_adv: bool = True
    """Normalise advantages per minibatch (zero mean, unit std)."""
    rho_bar: float = 1.0
    """V-trace truncation of the importance ratio in the TD errors (``rho_bar`` in the paper)."""
    c_bar: float = 1.0
    """V-trace truncation of the ratio in the traces (``c_bar``); multiplied by ``gae_lambda``."""
    max_lag: int = 4
    """Oldest usable segment, in policy versions behind the learner: ``version - segment_version > max_lag``
    drops it (counted in ``dropped_segments``). One version is one call of ``ppo_update``."""
    target_kl: float | None = None
    """Stop the epochs early once the approximate KL to the pre-update policy passes this (None: never)."""

    def to_dict(self) -> dict:
        return asdict(self)


# -- storage ------------------------------------------------------------------------------------------
class SegmentBatch(Segments):
    """Preallocated segments, written in place by a collector and read by ``ppo_update``.

    ``S`` = ``capacity`` segments of ``T`` = ``horizon`` decisions each:

    ============== ======================== ===============================================
    array          shape, dtype             meaning
    ============== ======================== ===============================================
    ``obs``        (S, T + 1, *obs), obs    observation of each decision; ``obs[:, T]`` is the
                                            observation of the decision after the segment
                                            (its value bootstraps the returns)
    ``mask``       (S, T, A) bool           legal actions of each decision
    ``actions``    (S, T) int64             the action taken
    ``logp``       (S, T) float32           its log-probability under the behaviour policy
    ``rewards``    (S, T) float32           reward the seat got from this decision until its next
    ``dones``      (S, T) bool              the seat's episode ended before its next decision
    ``valid``      (S, T) bool              the decision exists: a segment cut short by its
                                            seat's episode end (a battle agent that died
                                            while its match goes on) holds ``valid`` decisions
                                            ``0 .. k-1`` (the last one ``done``) and padding
    ``version``    (S,) int64               policy version of the segment's first decision
    ============== ======================== ===============================================

    ``size`` segments are filled (rows ``0 .. size - 1``); ``clear`` empties the batch. Padding is
    never trained on and, sitting after a ``done``, never reaches a valid decision's returns.
    """

    def __init__(self, capacity: int, horizon: int, obs_shape, obs_dtype, num_actions: int):
        super().__init__(capacity, horizon, obs_shape, obs_dtype, num_actions)
        self.valid[:] = True                                  # written in place by collectors, read whole here
        self.version = np.zeros(self.capacity, dtype=np.int64)   # per segment: its first decision's

    @property
    def full(self) -> bool:
        return self.size >= self.capacity


# -- returns ------------------------------------------------------------------------------------------
def vtrace_gae(rewards: torch.Tensor, values: torch.Tensor, dones: torch.Tensor, log_rhos: torch.Tensor,
               gamma: float, lam: float, rho_bar: float = 1.0, c_bar: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Advantages and value targets of segments, V-trace corrected (see the module docstring).

    ``rewards``, ``dones``, ``log_rhos``: ``(S, T)``; ``values``: ``(S, T + 1)``, the last column the
    bootstrap value. With ``log_rhos == 0`` this is GAE(``lam``) and the lambda-return exactly.
    Returns ``(advantages, targets)``, both ``(S, T)``.
    """
    rhos = torch.exp(log_rhos)
    rho_t = torch.clamp(rhos, max=rho_bar)
    c_t = lam * torch.clamp(rhos, max=c_bar)
    notdone = 1.0 - dones.float()
    deltas = rho_t * (rewards + gamma * notdone * values[:, 1:] - values[:, :-1])
    adv = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[:, 0])
    for t in range(rewards.shape[1] - 1, -1, -1):
        running = deltas[:, t] + gamma * notdone[:, t] * c_t[:, t] * running
        adv[:, t] = running
    return adv, adv + values[:, :-1]


def masked_log_probs(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Log-softmax over the legal actions (illegal ones get ``MASKED_LOGIT`` first)."""
    return torch.log_softmax(logits.masked_fill(~mask, MASKED_LOGIT), dim=-1)


# -- the update ---------------------------------------------------------------------------------------
def ppo_update(net: nn.Module, optimizer: torch.optim.Optimizer, batch: SegmentBatch, cfg: PPOConfig,
               version: int = 0, sync: Callable[[], None] | None = None,
               generator: torch.Generator | None = None, stage=None) -> dict:
    """One PPO update on the filled segments of ``batch``; returns statistics.

    ``net`` maps observations ``(B, *obs)`` to ``(logits (B, A), values (B,))`` (``PolicyNet``).
    ``version`` is the learner's current policy version (segments older than ``cfg.max_lag`` behind
    it are dropped). ``sync``, when given, is called after every optimizer step: a safe point (no
    autograd graph alive) where the caller may publish or replace the parameters, as
    ``TorchParams.sync`` does for gossip. ``stage`` (an ``agents.neural.Staging`` for the net's device,
    kept by the caller) moves the batch: pinned buffers and non-blocking copies on CUDA. The batch is not
    cleared.
    """
    start = time.perf_counter()
    device = next(net.parameters()).device

    # -- 1. drop segments beyond the lag limit ---------------------------------------------------------
    n = batch.size
    lag = version - batch.version[:n]
    keep = np.flatnonzero(lag <= cfg.max_lag)
    dropped = n - keep.size
    stats = {"segments": int(keep.size), "dropped_segments": int(dropped),
             "mean_lag": float(lag[keep].mean()) if keep.size else 0.0}
    if keep.size == 0:
        return stats
    if stage is None:
        from agents.neural import Staging
        stage = Staging(device)
    pick = (lambda a: a[:n]) if dropped == 0 else (lambda a: a[keep])
    obs, mask, actions, mu_logp, rewards, dones, valid = (
        stage(name, pick(getattr(batch, name))) for name in ("obs", "mask", "actions", "logp", "rewards", "dones", "valid"))
    s, t = actions.shape
    obs_shape = obs.shape[2:]

    # -- 2. the current policy and values on every decision (and the bootstrap observations) ----------
    with torch.no_grad():
        logits, values = net(obs.reshape((s * (t + 1),) + obs_shape))
        values = values.reshape(s, t + 1)
        logits = logits.reshape(s, t + 1, -1)[:, :t]
        logp_now = masked_log_probs(logits, mask).gather(-1, actions.unsqueeze(-1)).squeeze(-1)
        log_rhos = (logp_now - mu_logp).masked_fill(~valid, 0.0)

        # -- 3. V-trace corrected GAE: advantages for the policy, targets for the value -----------------
        advantages, targets = vtrace_gae(rewards, values, dones, log_rhos, cfg.gamma, cfg.gae_lambda,
                                         cfg.rho_bar, cfg.c_bar)

    # -- 4. epochs of minibatch steps over the valid decisions, flattened ------------------------------
    flat = torch.nonzero(valid.reshape(-1)).squeeze(1)
    b_obs = obs[:, :t].reshape((s * t,) + obs_shape)[flat]
    b_mask, b_actions = mask.reshape(s * t, -1)[flat], actions.reshape(-1)[flat]
    b_mu, b_adv, b_targets = mu_logp.reshape(-1)[flat], advantages.reshape(-1)[flat], targets.reshape(-1)[flat]
    b_values = values[:, :t].reshape(-1)[flat]
    batch_size = int(flat.numel())
    mb_size = max(1, batch_size // cfg.num_minibatches)
    clipfracs, approx_kl, epochs_done = [], torch.zeros(()), 0
    for epoch in range(cfg.update_epochs):
        order = torch.randperm(batch_size, generator=generator, device="cpu").to(device)
        for lo in range(0, batch_size - mb_size + 1, mb_size):
            idx = order[lo:lo + mb_size]
            logits, value = net(b_obs[idx])
            logp_all = masked_log_probs(logits, b_mask[idx])
            logp = logp_all.gather(-1, b_actions[idx].unsqueeze(-1)).squeeze(-1)
            logratio = logp - b_mu[idx]
            ratio = logratio.exp()
            with torch.no_grad():
                approx_kl = ((ratio - 1) - logratio).mean()     # the k3 estimator (Schulman 2020)
                clipfracs.append(((ratio - 1.0).abs() > cfg.clip_coef).float().mean().item())

            adv = b_adv[idx]
            if cfg.norm_adv and adv.numel() > 1:
                adv = (adv - adv.mean()) / (adv.std() + 1e-8)

            # policy loss: the clipped surrogate
            pg_loss = torch.max(-adv * ratio, -adv * torch.clamp(ratio, 1 - cfg.clip_coef, 1 + cfg.clip_coef)).mean()
            # value loss
            v_loss = 0.5 * ((value - b_targets[idx]) ** 2).mean()
            # entropy of the policy over the legal actions
            entropy = -(logp_all.exp() * logp_all).sum(-1).mean()
            loss = pg_loss - cfg.ent_coef * entropy + cfg.vf_coef * v_loss

            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = nn.utils.clip_grad_norm_(net.parameters(), cfg.max_grad_norm)
            optimizer.step()
            if sync is not None:
                sync()
        epochs_done = epoch + 1
        if cfg.target_kl is not None and approx_kl.item() > cfg.target_kl:
            break

    # -- 5. statistics --------------------------------------------------------------------------------
    with torch.no_grad():
        var_y = b_targets.var()
        explained = 1.0 - (b_values - b_targets).var() / var_y if var_y > 0 else torch.tensor(float("nan"))
        rho = log_rhos.reshape(-1)[flat].exp()
    stats.update({
        "decisions": int(batch_size),
        "pg_loss": float(pg_loss.item()), "v_loss": float(v_loss.item()), "entropy": float(entropy.item()),
        "approx_kl": float(approx_kl.item()), "clipfrac": float(np.mean(clipfracs)) if clipfracs else 0.0,
        "grad_norm": float(grad_norm), "explained_variance": float(explained),
        "mean_rho": float(rho.mean()), "truncated_rho": float((rho > cfg.rho_bar).float().mean()),
        "epochs": epochs_done, "seconds": time.perf_counter() - start,
    })
    return stats


# -- parameters as one flat vector (for gossip) -------------------------------------------------------
class TorchParams:
    """A net's parameters as one flat float32 vector, for a gossip thread (``server.learn.gossip.FlatParams``).

    The gossip thread never touches the net: writing a parameter while the training thread is between
    a forward and a backward pass would break autograd (and a forward pass could read half-written
    weights). Instead it reads a *snapshot* the training thread publishes, and hands averages over
    as *pending*; the training thread applies them whole at its next safe point, ``sync`` (called
    after each optimizer step by ``ppo_update`` and before each acting pass by the trainer), and
    publishes a new snapshot. ``lock`` guards only the snapshot and the pending list (microseconds).
    Buffers (such as ``PolicyNet.obs_scale``) are constants and are not exchanged.
    """

    def __init__(self, net: nn.Module):
        self.params = [p for p in net.parameters()]
        self.size = int(sum(p.numel() for p in self.params))
        self.layout = [list(p.shape) for p in self.params]
        self.lock = threading.Lock()
        self.averaged = 0                 # averages applied so far
        self._pending: list[np.ndarray] = []
        self._snapshot = self.read()

    # -- the training thread ---------------------------------------------------------------------
    def read(self) -> np.ndarray:
        """The parameters now (training thread)."""
        with torch.no_grad():
            return torch.cat([p.detach().reshape(-1).float().cpu() for p in self.params]).numpy()

    def write(self, vec: np.ndarray) -> None:
        """Replace the parameters (training thread, at a safe point)."""
        if vec.shape != (self.size,) or vec.dtype != np.float32:
            raise ValueError(f"expected a float32 vector of {self.size}, got {vec.dtype}{vec.shape}")
        src = torch.from_numpy(np.ascontiguousarray(vec))
        with torch.no_grad():
            offset = 0
            for p in self.params:
                k = p.numel()
                p.copy_(src[offset:offset + k].view_as(p))
                offset += k

    def sync(self, changed: bool = True) -> int:
        """Apply the pending averages, then publish a snapshot if anything changed (``changed``: the
        optimizer stepped). Returns how many averages were applied."""
        with self.lock:
            pending, self._pending = self._pending, []
        if pending:
            x = self.read()
            for theirs in pending:
                x = (x + theirs) * np.float32(0.5)
            self.write(x)
            self.averaged += len(pending)
        if pending or changed:
            snap = self.read()
            with self.lock:
                self._snapshot = snap
        return len(pending)

    # -- the gossip thread -----------------------------------------------------------------------
    def get(self) -> np.ndarray:
        """The last published parameters (a copy)."""
        with self.lock:
            return self._snapshot.copy()

    def average(self, theirs: np.ndarray) -> np.ndarray:
        """Average with ``theirs`` at the next ``sync``; returns the parameters it will average with."""
        with self.lock:
            self._pending.append(np.array(theirs, dtype=np.float32, copy=True))
            return self._snapshot.copy()
