"""The in-process training loop: per-seat credit assignment, segments, and a short run that learns."""
import numpy as np
import pytest
import torch

import arenas
from server.learn.ppo import PPOConfig, SegmentBatch
from server.learn.selfplay import SeatCollector, TrainConfig, Trainer

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def play_connect4(collector, game, batch, columns, seats=(0, 1)):
    """Drop pieces in ``columns`` (one match), each decision recorded for the seats in ``seats``."""
    for col in columns:
        seat = int(np.flatnonzero(game.active[0])[0])
        rows = np.array([seat]) if seat in seats else np.array([], dtype=np.int64)
        collector.decide(rows, np.array([col] * rows.size), np.full(rows.size, -0.5, np.float32), 7, batch)
        actions = np.zeros((1, 2), np.int64)
        actions[0, seat] = col
        game.step(actions)
        collector.observe(batch)


def test_connect4_credit_reaches_each_seat_after_the_reply():
    game = arenas.make("connect4", num_matches=1, seed=0)
    col = SeatCollector(game, horizon=2)
    batch = SegmentBatch(8, 2, game.obs_shape, game.obs.dtype, game.num_actions)
    # player_0 stacks column 0, player_1 column 1: player_0 wins on its 4th move (the 7th ply)
    play_connect4(col, game, batch, [0, 1, 0, 1, 0, 1, 0])
    assert game.episode_done[0] and game.episode_winner[0] == 0
    # seat 0: segment (moves 1, 2) emitted at move 3, segment (moves 3, 4) at the win
    # seat 1: segment (moves 1, 2) emitted at move 3; its move 3 is still in its stream
    assert batch.size == 3
    s0 = [i for i in range(3) if batch.actions[i, 0] == 0]
    s1 = [i for i in range(3) if batch.actions[i, 0] == 1]
    assert len(s0) == 2 and len(s1) == 1
    first0, second0 = s0
    np.testing.assert_array_equal(batch.rewards[first0], [0, 0])
    np.testing.assert_array_equal(batch.dones[first0], [False, False])
    np.testing.assert_array_equal(batch.rewards[second0], [0, 1])          # the win, on the winning move
    np.testing.assert_array_equal(batch.dones[second0], [False, True])
    np.testing.assert_array_equal(batch.rewards[s1[0]], [0, 0])
    assert (batch.version[:3] == 7).all() and (batch.logp[:3] == -0.5).all()
    # the bootstrap observation of seat 0's first segment is its view at its 3rd move: 2 + 2 pieces
    assert batch.obs[first0, 2, :, :, 0].sum() == 2 and batch.obs[first0, 2, :, :, 1].sum() == 2
    # seat 1's last move got the loss after player_0's reply, with done; the next game continues the stream
    assert col.ptr[1] == 1 and not col.open[1]
    assert col.rewards[1, 0] == -1 and col.dones[1, 0]
    play_connect4(col, game, batch, [3, 3, 4])              # a new game: seat 1's stream (loss, move) is full
    assert batch.size == 3                                  # ... and waits for its next decision to bootstrap
    play_connect4(col, game, batch, [4])
    assert batch.size == 4
    np.testing.assert_array_equal(batch.rewards[3], [-1, 0])
    np.testing.assert_array_equal(batch.dones[3], [True, False])


def test_a_seat_against_a_fixed_opponent_sees_the_opponents_win():
    game = arenas.make("connect4", num_matches=1, seed=0)
    col = SeatCollector(game, horizon=4)
    batch = SegmentBatch(8, 4, game.obs_shape, game.obs.dtype, game.num_actions)
    play_connect4(col, game, batch, [1, 0, 1, 0, 1, 0, 2, 0], seats=(1,))   # player_1 wins on ply 8
    assert batch.size == 1
    np.testing.assert_array_equal(batch.rewards[0], [0, 0, 0, 1])
    np.testing.assert_array_equal(batch.dones[0], [False, False, False, True])
    assert col.ptr[0] == 0 and col.ptr[1] == 0   # seat 0 (the opponent) never recorded


@pytest.mark.parametrize("arena, opponents", [("connect4", {"self": 0.5, "random": 0.5}),
                                              ("battle", {"self": 0.25, "greedy": 0.75})])
def test_every_reward_lands_in_exactly_one_decision(arena, opponents):
    """Rewards the learner's seats receive while deciding all reach the segments (or the open streams);
    dead battle agents decide no more until their match restarts."""
    cfg = TrainConfig(arena=arena, num_matches=16, horizon=8, batch_segments=10_000, opponents=opponents,
                      hidden=16, options={"team_size": 4, "map_size": 16} if arena == "battle" else {})
    tr = Trainer(cfg)
    game, col = tr.game, tr.collector
    received = 0.0
    was_dead = np.zeros(game.num_matches * game.num_agents, bool)
    for _ in range(150):
        active = game.active.reshape(-1)
        assert not (active & was_dead).any(), "a dead agent acted before its match restarted"
        tr.step()
        received += float(game.rewards.reshape(-1)[tr.learner_rows].sum())
        if arena == "battle":
            died = game.terminations.reshape(-1) & ~np.repeat(game.episode_done, game.num_agents)
            was_dead = (was_dead | died) & ~np.repeat(game.episode_done, game.num_agents)
    n, valid = tr.batch.size, tr.batch.valid[:tr.batch.size]
    in_batch = float(tr.batch.rewards[:n][valid].sum())
    in_streams = sum(float(col.rewards[r, :col.ptr[r]].sum()) for r in np.flatnonzero(col.ptr))
    assert in_batch + in_streams == pytest.approx(received, abs=1e-3)
    assert tr.batch.size > 0 and col.lost_segments == 0
    assert tr.batch.dones[:n][valid].sum() > 0
    legal = tr.batch.mask[np.arange(n)[:, None], np.arange(cfg.horizon)[None, :], tr.batch.actions[:n]]
    assert legal[valid].all()


def test_a_battle_agent_that_dies_has_its_stream_emitted_at_once():
    cfg = TrainConfig(arena="battle", num_matches=8, horizon=64, batch_segments=10_000, opponents={"greedy": 1.0},
                      hidden=16, options={"team_size": 4, "map_size": 12})
    tr = Trainer(cfg)
    game, col, batch = tr.game, tr.collector, tr.batch
    a = game.num_agents
    for _ in range(200):
        tr.step()
        died = np.flatnonzero(game.terminations.reshape(-1) & tr.learner_rows
                              & ~np.repeat(game.episode_done, a))
        if died.size:
            break
    assert died.size, "nobody died in 200 steps"
    assert (col.ptr[died] == 0).all() and not col.open[died].any()
    cut = np.flatnonzero(~batch.valid[:batch.size].all(axis=1))
    assert cut.size >= 1
    for i in cut:
        k = int(batch.valid[i].sum())
        assert batch.valid[i, :k].all() and batch.dones[i, k - 1] and not batch.dones[i, :k - 1].any()


def test_connect4_training_beats_random_after_a_few_updates():
    torch.manual_seed(0)
    cfg = TrainConfig(num_matches=256, batch_segments=256, opponents={"random": 1.0}, hidden=64,
                      ppo=PPOConfig(lr=2e-3))
    tr = Trainer(cfg)
    before = tr.evaluate("random", games=200)["win_rate"]
    for _ in range(20):
        stats = tr.iterate()
        assert stats["dropped_segments"] == 0 and np.isfinite(stats["pg_loss"])
    after = tr.evaluate("random", games=200)
    assert after["games"] == 200
    assert after["win_rate"] >= 0.75 and after["win_rate"] > before + 0.2, (before, after)
    assert tr.version == 20


def test_save_and_load_restore_the_policy(tmp_path):
    tr = Trainer(TrainConfig(num_matches=8, batch_segments=8, hidden=16))
    path = tr.save(tmp_path / "c4")
    before = tr.params.read()
    with torch.no_grad():
        for p in tr.net.parameters():
            p.add_(1.0)
    tr.load(path)
    np.testing.assert_array_equal(tr.params.read(), before)
    np.testing.assert_array_equal(tr.params.get(), before)      # published to gossip too


def test_two_trainers_gossip_while_they_train():
    """Two learners (threads here; processes in use) average over real loopback sockets: the averages
    land between updates and pull the two nets together."""
    from server.learn.gossip import GossipNode

    trainers = [Trainer(TrainConfig(num_matches=32, batch_segments=32, hidden=16, seed=i, net_seed=i,
                                    opponents={"random": 1.0})) for i in range(2)]
    start_gap = np.linalg.norm(trainers[0].params.read() - trainers[1].params.read())
    nodes = [GossipNode(f"L{i}", "tcp://127.0.0.1:*", tr.params, version=lambda tr=tr: tr.version, seed=i)
             for i, tr in enumerate(trainers)]
    try:
        for i, node in enumerate(nodes):
            node.connect_peers({f"L{1 - i}": nodes[1 - i].endpoint})
            node.start()
        for _ in range(6):
            for tr, node in zip(trainers, nodes):
                tr.run(updates=1, gossip=node, every=1)
                assert node.exchange().ok      # and one waited for, so the test does not race
    finally:
        for node in nodes:
            node.close()
    for tr in trainers:
        tr.params.sync(changed=False)
        assert tr.params.averaged >= 6 and np.isfinite(tr.params.read()).all()
    gap = np.linalg.norm(trainers[0].params.read() - trainers[1].params.read())
    assert gap < 0.5 * start_gap, (start_gap, gap)
    assert nodes[0].stats.peer_versions["L1"] >= 5


def test_past_opponents_play_frozen_snapshots_of_the_learner():
    tr = Trainer(TrainConfig(num_matches=16, batch_segments=16, hidden=16, opponents={"past": 0.5, "self": 0.5},
                             snapshot_every=2, pool_size=2))
    past = tr.opponents[tr.opponent_names.index("past")]
    initial = [p.detach().clone() for p in past.net.parameters()]
    tr.run(updates=1)
    assert all(torch.equal(a, b) for a, b in zip(initial, past.net.parameters()))   # frozen between snapshots
    tr.run(updates=5)
    assert len(tr.pool) == 2 and tr.version == 6
    snapshots = [torch.cat([v.reshape(-1) for k, v in s.items() if k != "obs_scale"]) for s in tr.pool]
    now = torch.cat([p.detach().reshape(-1) for p in past.net.parameters()])
    assert any(torch.equal(now, s) for s in snapshots)
    assert "past" in tr.win_rates() and "self" not in tr.win_rates()
