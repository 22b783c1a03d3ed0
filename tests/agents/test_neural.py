"""Neural policies: one forward pass per batch, saved as a checkpoint folder (safetensors + JSON), loaded by ``ckpt:``."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import arenas
from agents import checkpoint as ckpt
from agents.check import check_agent
from agents.neural import NeuralAgent, PolicyNet

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name, arch", [("connect4", "mlp"), ("connect4", "conv"), ("battle", "conv"), ("battle", "mlp")])
def test_acts_legally_on_the_whole_batch(name, arch):
    game = arenas.make(name, num_matches=8, seed=0)
    agent = NeuralAgent(game, seed=1, arch=arch, hidden=32, device="cpu")
    check_agent(agent, game, steps=30)


def test_one_forward_pass_per_act_call():
    game = arenas.make("battle", num_matches=8, seed=0)
    agent = NeuralAgent(game, seed=1, arch="conv", hidden=32, device="cpu")
    calls = []
    agent.net.register_forward_hook(lambda *a: calls.append(1))
    rows = np.flatnonzero(game.active.reshape(-1))
    out = agent.act(game.obs.reshape((-1,) + game.obs_shape)[rows], game.action_mask.reshape(-1, game.num_actions)[rows])
    assert out.shape == (rows.size,) and len(calls) == 1


def test_save_load_round_trip_gives_the_same_actions(tmp_path):
    game = arenas.make("battle", num_matches=4, seed=0)
    agent = NeuralAgent(game, seed=3, arch="conv", hidden=32, device="cpu", greedy=True)
    path = agent.save(tmp_path / "pol")
    assert path == tmp_path / "pol" and (path / "checkpoint.json").is_file()
    meta = json.loads((ckpt.latest(path) / "policy.json").read_text())
    assert meta["arena"] == "battle" and meta["obs_shape"] == list(game.obs_shape) and meta["arch"] == "conv"
    again = NeuralAgent.load(path, game=game, greedy=True, device="cpu")
    obs = game.obs.reshape((-1,) + game.obs_shape)
    mask = game.action_mask.reshape(obs.shape[0], -1)
    assert (agent.act(obs, mask) == again.act(obs, mask)).all()
    for k, v in agent.net.state_dict().items():
        assert torch.equal(v, again.net.state_dict()[k])


def test_load_refuses_a_policy_for_another_arena_or_shape(tmp_path):
    c4 = arenas.make("connect4", num_matches=1, seed=0)
    path = NeuralAgent(c4, device="cpu").save(tmp_path / "c4")
    with pytest.raises(ValueError, match="made for arena 'connect4'"):
        NeuralAgent.load(path, game=arenas.make("battle", num_matches=1, seed=0))
    # the single files of an earlier run, with metadata that is not ours
    folder = ckpt.latest(path)
    (tmp_path / "old.safetensors").write_bytes((folder / "policy.safetensors").read_bytes())
    (tmp_path / "old.json").write_text(json.dumps({"format": "pickle"}))
    with pytest.raises(ValueError, match="not arena-policy metadata"):
        NeuralAgent.load(tmp_path / "old", game=c4)


def test_a_conv_policy_reloads_with_the_channels_it_was_saved_with(tmp_path):
    battle = arenas.make("battle", num_matches=2, seed=0)
    net = PolicyNet(battle.obs_shape, battle.num_actions, arch="conv", hidden=16, channels=8)
    agent = NeuralAgent(battle, net=net, device="cpu")          # channels not repeated: read from the net
    again = NeuralAgent.load(agent.save(tmp_path / "conv"), game=battle, device="cpu")
    assert again.metadata()["channels"] == 8
    for k, v in agent.net.state_dict().items():
        assert torch.equal(v, again.net.state_dict()[k])


def test_ckpt_agents_from_the_cli(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    run = lambda *a: subprocess.run([sys.executable, "-m", "server.cli", *a], cwd=ROOT, env=env,
                                    capture_output=True, text=True, timeout=240)
    p = run("init-policy", "connect4", "--arch", "conv", "--out", str(tmp_path / "p"))
    assert p.returncode == 0, p.stderr
    assert f"ckpt:{tmp_path / 'p'}," in p.stdout and (tmp_path / "p" / "checkpoint.json").is_file()
    p = run("run", "connect4", "--matches", "64", "--agents", f"ckpt:{tmp_path / 'p'},random", "--json")
    assert p.returncode == 0, p.stderr
    s = json.loads(p.stdout.strip().splitlines()[-1])
    assert s["results"][f"ckpt:{tmp_path / 'p'}"]["games"] == 64
    p = run("run", "battle", "--agents", f"ckpt:{tmp_path / 'p'},random")
    assert p.returncode == 2 and "made for arena 'connect4'" in p.stderr


def test_policy_net_shapes():
    net = PolicyNet((7, 7, 4), 9, arch="conv", hidden=16, obs_high=np.full((7, 7, 4), 10.0, np.float32))
    logits, value = net(torch.zeros(5, 7, 7, 4, dtype=torch.uint8))
    assert logits.shape == (5, 9) and value.shape == (5,)


def test_cuda_asked_where_there_is_none_falls_back_to_the_cpu_with_one_line():
    import pytest
    import torch

    from agents.neural import Staging, pick_device

    if torch.cuda.is_available():
        pytest.skip("this host has a CUDA device")
    said = []
    assert pick_device("cuda", log=said.append).type == "cpu"
    assert len(said) == 1 and "no CUDA device" in said[0]
    assert pick_device("auto", log=said.append).type == "cpu" and len(said) == 1, "auto says nothing"
    arr = np.arange(12, dtype=np.float32).reshape(3, 4)
    t = Staging(torch.device("cpu"))("obs", arr)
    assert t.data_ptr() == arr.__array_interface__["data"][0], "on the CPU the batch is not copied"
