"""Compressed acting copies (agents.inference): legal actions at every precision, version swaps that
re-derive the copy, a quantised copy that decides like its fp32 master, and the shipped policy."""
import warnings

import numpy as np
import pytest
import torch
from torch.nn.utils import parameters_to_vector

import arenas
from agents import builtin
from agents.inference import PRECISIONS, Inference, available, pick_int8_backend
from agents.loader import load_agent
from agents.neural import NeuralAgent, PolicyNet

HAVE_INT8 = pick_int8_backend() is not None
precisions = [pytest.param(p, marks=pytest.mark.skipif(p == "int8" and not HAVE_INT8, reason="no int8 backend"))
              for p in PRECISIONS]


def positions(arena: str, rows: int, seed: int = 0):
    """Observations and masks of seats to move, from random legal play (the bench's own pool)."""
    from server.bench.policy import observation_pool

    return observation_pool(arena, rows, seed=seed)


def shipped_net() -> PolicyNet:
    return NeuralAgent.load(builtin.path("connect4"), device="cpu").net


@pytest.mark.parametrize("precision", precisions)
@pytest.mark.parametrize("arena,arch", [("connect4", "mlp"), ("battle", "conv")])
def test_every_precision_acts_legally(arena, arch, precision):
    game = arenas.make(arena, num_matches=1, seed=0)
    obs, mask = positions(arena, 300)
    for greedy in (False, True):
        agent = NeuralAgent(game, seed=1, arch=arch, hidden=32, device="cpu", greedy=greedy, precision=precision)
        actions = agent.act(obs, mask)
        assert actions.shape == (len(obs),) and actions.dtype == np.int64
        assert (mask[np.arange(len(obs)), actions] != 0).all(), f"{precision} chose a masked action"
    logits, values = agent.infer(obs, mask)
    assert logits.dtype == torch.float32 and values.shape == (len(obs),)
    assert torch.isinf(logits[torch.from_numpy(mask == 0)]).all()


@pytest.mark.parametrize("precision", precisions)
def test_new_parameters_re_derive_the_copy(precision):
    game = arenas.make("connect4", num_matches=1, seed=0)
    obs, _ = positions("connect4", 512)
    first = NeuralAgent(game, seed=1, hidden=64, device="cpu").net
    second = NeuralAgent(game, seed=2, hidden=64, device="cpu").net
    want = {name: Inference(net, "fp32")(obs)[0] for name, net in (("first", first), ("second", second))}

    gap = (want["first"] - want["second"]).abs().max()
    tol = 1e-6 if precision == "fp32" else 0.2 * gap             # compressed: much nearer the right net

    master = NeuralAgent(game, seed=1, hidden=64, device="cpu").net
    inf = Inference(master, precision)
    assert inf.version is None
    assert (inf(obs)[0] - want["first"]).abs().max() < tol

    inf.load_state(second.state_dict(), version=3)               # a state dict
    assert inf.version == 3
    assert (inf(obs)[0] - want["second"]).abs().max() < tol       # the copy moved with the master

    inf.load_state(parameters_to_vector(first.parameters()).detach().numpy(), version=4)   # a flat vector, as published
    assert inf.version == 4
    assert (inf(obs)[0] - want["first"]).abs().max() < tol

    with torch.no_grad():                                        # the master changed in place, then refresh
        for p, q in zip(master.parameters(), second.parameters()):
            p.copy_(q)
    inf.refresh(version=5)
    assert inf.version == 5 and (inf(obs)[0] - want["second"]).abs().max() < tol


def test_agent_swaps_versions_through_its_copy():
    game = arenas.make("connect4", num_matches=1, seed=0)
    obs, mask = positions("connect4", 256)
    agent = NeuralAgent(game, seed=1, hidden=64, device="cpu", greedy=True, precision="bf16")
    other = NeuralAgent(game, seed=2, hidden=64, device="cpu", greedy=True)
    agent.load_state(parameters_to_vector(other.net.parameters()).detach().numpy(), version=9)
    assert agent.version == 9 and agent.precision == "bf16"
    assert (agent.act(obs, mask) == other.act(obs, mask)).mean() >= 0.95
    assert torch.equal(parameters_to_vector(agent.net.parameters()), parameters_to_vector(other.net.parameters()))


def test_bad_parameters_are_refused():
    game = arenas.make("connect4", num_matches=1, seed=0)
    inf = Inference(NeuralAgent(game, seed=1, hidden=16, device="cpu").net, "bf16")
    with pytest.raises(ValueError, match="flat float vector"):
        inf.load_state(np.zeros(inf.parameters_size() + 1, np.float32), version=1)
    with pytest.raises(ValueError, match="not all finite"):
        inf.load_state(np.full(inf.parameters_size(), np.nan, np.float32), version=1)
    before = [p.clone() for p in inf.master.parameters()]
    state = {k: v + 1 for k, v in inf.master.state_dict().items()}
    state["body.1.weight"] = torch.zeros(3)                      # one tensor of the wrong shape
    with pytest.raises(ValueError, match=r"body\.1\.weight"):
        inf.load_state(state, version=1)
    with pytest.raises(ValueError, match="nonsense"):
        inf.load_state({**inf.master.state_dict(), "nonsense": torch.zeros(3)}, version=1)
    assert all(torch.equal(p, q) for p, q in zip(before, inf.master.parameters())), "nothing half-loaded"
    assert inf.version is None
    with pytest.raises(ValueError, match="precision"):
        Inference(inf.master, "fp8")


@pytest.mark.parametrize("precision", [p for p in precisions if p.values[0] != "fp32"])
def test_compressed_copy_decides_like_fp32(precision):
    """On the shipped (trained) net: the same legal argmax on >= 95% of a fixed batch of positions."""
    net = shipped_net()
    obs, mask = positions("connect4", 4096, seed=3)
    ref = Inference(net, "fp32")(obs, mask)[0].argmax(1)
    got, values = Inference(net, precision)(obs, mask)
    agree = (got.argmax(1) == ref).float().mean().item()
    assert agree >= 0.95, f"{precision} agrees with fp32 on {agree:.1%} of rows"
    assert (values - Inference(net, "fp32")(obs)[1]).abs().mean() < 0.05


def test_compile_falls_back_to_eager(monkeypatch):
    game = arenas.make("connect4", num_matches=1, seed=0)
    obs, mask = positions("connect4", 64)
    net = NeuralAgent(game, seed=1, hidden=16, device="cpu").net

    def broken(*args, **kwargs):
        raise RuntimeError("no compiler here")
    monkeypatch.setattr(torch, "compile", broken)
    with pytest.warns(RuntimeWarning, match="acting eagerly"):
        inf = Inference(net, "fp32", mode="compile")
    assert not inf.compiled and "no compiler here" in inf.fallback

    def fails_later(model, **kwargs):
        def run(obs):
            raise RuntimeError("inductor failed at this shape")
        return run
    monkeypatch.setattr(torch, "compile", fails_later)
    inf = Inference(net, "fp32", mode="compile")
    assert inf.compiled
    with pytest.warns(RuntimeWarning, match="inductor failed"):
        logits, _ = inf(obs, mask)
    assert not inf.compiled and torch.equal(logits, Inference(net, "fp32")(obs, mask)[0])


def test_auto_mode_keeps_the_faster_pass_after_warmup(monkeypatch):
    game = arenas.make("connect4", num_matches=1, seed=0)
    obs, mask = positions("connect4", 64)
    net = NeuralAgent(game, seed=1, hidden=16, device="cpu").net
    monkeypatch.setattr(torch, "compile", lambda model, **kwargs: model)   # a stand-in "compiled" pass
    inf = Inference(net, "fp32", mode="auto")
    assert not inf.compiled, "auto acts eagerly until warmup has measured"
    spent = inf.warmup(obs, sizes=(1, 8, 64))
    assert spent > 0 and inf.choice.startswith(("compile", "eager")) and "batch 64" in inf.choice
    assert inf.compiled == inf.choice.startswith("compile")
    assert (inf.act(obs, mask, greedy=True) == Inference(net, "fp32").act(obs, mask, greedy=True)).all()


def test_int8_is_cpu_only_and_availability_is_honest():
    assert available("cpu")[0] == "fp32"
    if HAVE_INT8:
        assert "int8" in available("cpu")
    game = arenas.make("connect4", num_matches=1, seed=0)
    with pytest.raises(ValueError, match="CPU"):
        Inference(NeuralAgent(game, hidden=8, device="cpu").net, "int8", device="meta")


def test_the_shipped_connect4_policy_loads():
    game = arenas.make("connect4", num_matches=1, seed=0)
    assert "connect4" in builtin.names()
    path = builtin.path("connect4")
    assert path.stat().st_size <= 1_000_000
    agent = load_agent("ckpt:builtin/connect4", game, seed=0, args={"device": "cpu"})
    assert isinstance(agent, NeuralAgent) and agent.arena == "connect4"
    assert agent.net.arch == "mlp" and agent.net.policy.in_features == 256   # the trainer's default net
    obs, mask = positions("connect4", 200)
    actions = agent.act(obs, mask)
    assert (mask[np.arange(len(obs)), actions] != 0).all()
    with pytest.raises(KeyError, match="no built-in policy"):
        load_agent("ckpt:builtin/nonesuch", game)
    with warnings.catch_warnings():
        warnings.simplefilter("error")        # loading it warns about nothing
        NeuralAgent.load(path, game=game, device="cpu")
