"""The learner's update: GAE / V-trace against hand-computed and plain-Python references, the lag limit,
and an update that improves its objective on a tiny synthetic problem."""
import threading

import numpy as np
import pytest
import torch

from agents.neural import PolicyNet
from server.learn.ppo import PPOConfig, SegmentBatch, TorchParams, masked_log_probs, ppo_update, vtrace_gae

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def t(x):
    return torch.tensor(x, dtype=torch.float32)


def test_gae_matches_a_hand_computed_example():
    # one segment of 3 decisions, the second ends its episode; gamma 0.9, lambda 0.8
    rewards, values = t([[1.0, 0.0, 2.0]]), t([[0.5, 0.4, 0.3, 0.2]])
    dones = torch.tensor([[False, True, False]])
    adv, ret = vtrace_gae(rewards, values, dones, torch.zeros(1, 3), gamma=0.9, lam=0.8)
    # delta_2 = 2 + 0.9 * 0.2 - 0.3 = 1.88                      A_2 = 1.88
    # delta_1 = 0 - 0.4 (done: no bootstrap) = -0.4             A_1 = -0.4 (nothing carried past a done)
    # delta_0 = 1 + 0.9 * 0.4 - 0.5 = 0.86                      A_0 = 0.86 + 0.9 * 0.8 * -0.4 = 0.572
    np.testing.assert_allclose(adv.numpy(), [[0.572, -0.4, 1.88]], rtol=1e-6)
    np.testing.assert_allclose(ret.numpy(), [[1.072, 0.0, 2.18]], rtol=1e-6)


def vtrace_reference(rewards, values, dones, rhos, gamma, lam, rho_bar, c_bar):
    """The V-trace target of Espeholt et al. (eq. 1) written as the explicit sum, one segment."""
    T = len(rewards)
    vs = []
    for s in range(T):
        total, discount, trace = values[s], 1.0, 1.0
        for u in range(s, T):
            nd = 0.0 if dones[u] else 1.0
            delta = min(rho_bar, rhos[u]) * (rewards[u] + gamma * nd * values[u + 1] - values[u])
            total += discount * trace * delta
            if dones[u]:
                break
            discount *= gamma
            trace *= lam * min(c_bar, rhos[u])
        vs.append(total)
    return np.array(vs)


@pytest.mark.parametrize("rho_bar, c_bar", [(1.0, 1.0), (2.0, 0.5)])
def test_vtrace_matches_the_explicit_sum(rho_bar, c_bar):
    rng = np.random.default_rng(0)
    S, T = 5, 7
    rewards, values = rng.normal(size=(S, T)), rng.normal(size=(S, T + 1))
    dones = rng.random((S, T)) < 0.2
    rhos = np.exp(rng.normal(scale=0.7, size=(S, T)))
    adv, ret = vtrace_gae(t(rewards), t(values), torch.from_numpy(dones), t(np.log(rhos)), 0.95, 0.9, rho_bar, c_bar)
    for s in range(S):
        ref = vtrace_reference(rewards[s], values[s], dones[s], rhos[s], 0.95, 0.9, rho_bar, c_bar)
        np.testing.assert_allclose(ret[s].numpy(), ref, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(adv[s].numpy(), ref - values[s, :T], rtol=1e-4, atol=1e-5)


# -- a tiny problem: 4 states (one-hot), the right action is the state's index, reward 1 -----------------
STATES, ACTIONS, T = 4, 4, 4


def bandit_batch(net, segments, version=0, rng=None, gen=None):
    """Segments of T one-decision episodes, acted by ``net`` itself (logp stored as a worker would)."""
    rng = rng or np.random.default_rng(0)
    batch = SegmentBatch(segments, T, (STATES,), np.float32, ACTIONS)
    rows = batch.claim(segments)
    state = rng.integers(STATES, size=(segments, T + 1))
    batch.obs[rows] = np.eye(STATES, dtype=np.float32)[state]
    batch.mask[rows] = True
    with torch.no_grad():
        logits, _ = net(torch.from_numpy(batch.obs[rows, :T].reshape(-1, STATES)))
        logp_all = torch.log_softmax(logits, -1)
        actions = torch.multinomial(logp_all.exp(), 1, generator=gen).squeeze(1)
        logp = logp_all.gather(1, actions[:, None]).squeeze(1)
    batch.actions[rows] = actions.numpy().reshape(segments, T)
    batch.logp[rows] = logp.numpy().reshape(segments, T)
    batch.rewards[rows] = (batch.actions[rows] == state[:, :T]).astype(np.float32)
    batch.dones[rows] = True
    batch.version[rows] = version
    return batch


def expected_reward(net) -> float:
    with torch.no_grad():
        logits, _ = net(torch.eye(STATES))
        return float(torch.softmax(logits, -1).diagonal().mean())


def test_updates_improve_the_objective_on_a_bandit():
    torch.manual_seed(0)
    net = PolicyNet((STATES,), ACTIONS, hidden=32)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    cfg = PPOConfig(update_epochs=4, num_minibatches=2, ent_coef=0.0)
    gen, rng = torch.Generator().manual_seed(0), np.random.default_rng(0)
    start = expected_reward(net)
    history = [start]
    for version in range(25):
        stats = ppo_update(net, opt, bandit_batch(net, 64, version, rng, gen), cfg, version=version, generator=gen)
        history.append(expected_reward(net))
        assert np.isfinite([stats["pg_loss"], stats["v_loss"], stats["entropy"]]).all()
    assert start < 0.35 and history[-1] > 0.9, history
    assert history[5] > start   # it improves from the first updates on
    # the value learns the expected reward of acting: near 1 for a policy that is nearly always right
    with torch.no_grad():
        _, v = net(torch.eye(STATES))
    assert (v > 0.7).all(), v


def test_segments_beyond_the_lag_limit_are_dropped_and_counted():
    torch.manual_seed(0)
    net = PolicyNet((STATES,), ACTIONS, hidden=16)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    batch = bandit_batch(net, 6)
    batch.version[:6] = [10, 9, 6, 5, 3, 10]     # learner at 10, max_lag 4: 5 and 3 are too old
    stats = ppo_update(net, opt, batch, PPOConfig(max_lag=4), version=10)
    assert stats["dropped_segments"] == 2 and stats["segments"] == 4
    assert stats["decisions"] == 4 * T
    assert stats["mean_lag"] == pytest.approx((0 + 1 + 4 + 0) / 4)
    # all too old: nothing is trained on, the parameters stay as they were
    before = [p.detach().clone() for p in net.parameters()]
    stats = ppo_update(net, opt, batch, PPOConfig(max_lag=4), version=20)
    assert stats["dropped_segments"] == 6 and stats["segments"] == 0
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters()))


def test_stale_segments_are_importance_corrected():
    """Segments acted by an older policy: the ratios against it are not 1, and V-trace truncates them."""
    torch.manual_seed(0)
    old = PolicyNet((STATES,), ACTIONS, hidden=16)
    net = PolicyNet((STATES,), ACTIONS, hidden=16)
    batch = bandit_batch(old, 32, version=0)
    stats = ppo_update(net, torch.optim.Adam(net.parameters(), lr=1e-3), batch, PPOConfig(), version=1)
    assert stats["mean_rho"] != pytest.approx(1.0, abs=1e-3)
    assert 0 < stats["truncated_rho"] < 1
    fresh = ppo_update(old, torch.optim.Adam(old.parameters(), lr=1e-3), batch, PPOConfig(update_epochs=1, num_minibatches=1))
    assert fresh["mean_rho"] == pytest.approx(1.0, abs=1e-5)    # on-policy: plain PPO with GAE


def test_masked_actions_get_no_probability_and_finite_entropy():
    logits = torch.tensor([[0.3, 5.0, -1.0], [1.0, 1.0, 1.0]])
    mask = torch.tensor([[True, False, True], [False, False, True]])
    lp = masked_log_probs(logits, mask)
    p = lp.exp()
    assert torch.isfinite(lp).all() and torch.isfinite((p * lp).sum(-1)).all()
    assert p[0, 1] < 1e-30 and p[1, :2].max() < 1e-30 and p[1, 2] == pytest.approx(1.0)


def test_torch_params_apply_averages_whole_at_the_next_safe_point():
    net = PolicyNet((STATES,), ACTIONS, hidden=8)
    params = TorchParams(net)
    x = params.read()
    assert x.dtype == np.float32 and x.shape == (sum(p.numel() for p in net.parameters()),)
    theirs = np.full_like(x, 3.0)
    assert np.array_equal(params.average(theirs), x)      # answered with the published snapshot ...
    assert np.array_equal(params.read(), x)               # ... the net is untouched until a safe point
    assert params.sync(changed=False) == 1
    np.testing.assert_allclose(params.read(), (x + 3.0) / 2)
    np.testing.assert_allclose(params.get(), (x + 3.0) / 2)   # and the new snapshot is published
    with pytest.raises(ValueError):
        params.write(x[:-1])


def test_averages_arriving_during_an_update_never_break_it():
    """A gossip thread averaging while ``ppo_update`` runs: applied between optimizer steps only, so
    autograd never sees a parameter change between a forward and its backward."""
    torch.manual_seed(0)
    net = PolicyNet((STATES,), ACTIONS, hidden=16)
    params = TorchParams(net)
    other = params.read() + 1.0
    stop = threading.Event()

    def gossip():
        while not stop.wait(0.002):
            params.average(other)

    th = threading.Thread(target=gossip)
    th.start()
    try:
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)
        for v in range(3):
            stats = ppo_update(net, opt, bandit_batch(net, 32), PPOConfig(), version=v, sync=params.sync)
            assert np.isfinite(stats["pg_loss"])
    finally:
        stop.set()
        th.join()
    params.sync()
    assert params.averaged > 0 and np.isfinite(params.read()).all()


def test_padding_after_a_cut_segment_changes_nothing():
    """Segments cut short (``valid`` False after the seat's last decision): whatever the padding holds,
    the update is the same."""
    torch.manual_seed(0)
    net = PolicyNet((STATES,), ACTIONS, hidden=16)
    results = []
    for garbage in (0.0, 1e6):
        b = bandit_batch(net, 8, gen=torch.Generator().manual_seed(5))
        b.valid[:8, 2:] = False                    # every segment: 2 decisions, then padding
        b.rewards[:8, 2:] = garbage
        b.logp[:8, 2:] = -garbage
        b.obs[:8, 2:] = garbage
        torch.manual_seed(1)
        copy = PolicyNet((STATES,), ACTIONS, hidden=16)
        copy.load_state_dict(net.state_dict())
        stats = ppo_update(copy, torch.optim.Adam(copy.parameters(), lr=1e-3), b, PPOConfig(),
                           generator=torch.Generator().manual_seed(0))
        assert stats["decisions"] == 16
        results.append(torch.cat([p.detach().reshape(-1) for p in copy.parameters()]))
    assert torch.equal(results[0], results[1])
