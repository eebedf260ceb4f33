"""The RND exploration agent: its intrinsic reward pays for novelty, its runs are seeded and resume exactly."""
import json
import os

import numpy as np
import pytest
import torch

from cfgrl_core.rnd import EPISODE_STEPS, RNDAgent, RNDConfig, StateFeatures, load_rnd_actor, sample_windows, \
    train_rnd

TINY = dict(domain="walker", random_steps=500, batch_size=64, hidden=32, rnd_hidden=32, rnd_out=16,
            snapshot_every=1000, checkpoint_every=1000, lr=1e-3)


def test_intrinsic_reward_falls_on_seen_states_and_stays_high_on_new_ones():
    torch.manual_seed(0)
    agent = RNDAgent(8, 2, RNDConfig(lr=1e-3), torch.Generator().manual_seed(0))
    seen = torch.randn(512, 8) * 0.5 + 1.0
    new = torch.randn(512, 8) * 0.5 - 1.0          # another region: about 4 running std below the seen states
    agent.obs_stats.update(seen)
    agent.error_stats.update(agent.prediction_error(seen).detach())
    before = agent.intrinsic_reward(seen).mean()
    for _ in range(400):
        loss = agent.rnd_loss(seen[torch.randint(0, 512, (128,))])
        agent.rnd_opt.zero_grad()
        loss.backward()
        agent.rnd_opt.step()
    after_seen, after_new = agent.intrinsic_reward(seen).mean(), agent.intrinsic_reward(new).mean()
    assert after_seen < 0.1 * before, (before, after_seen)
    assert after_new > 10 * after_seen, (after_seen, after_new)


def test_windows_stay_inside_one_episode():
    size, n = 2 * EPISODE_STEPS + 10, 3
    buf = {"obs": np.arange(size, dtype=np.float32)[:, None], "act": np.zeros((size, 1), np.float32),
           "next_obs": np.arange(1, size + 1, dtype=np.float32)[:, None]}
    batch = sample_windows(buf, size, n, 20_000, np.random.default_rng(0))
    t = batch["obs"][:, 0].long()
    assert (t % EPISODE_STEPS <= EPISODE_STEPS - n).all() and (t + n <= size).all()
    assert torch.equal(batch["next_obs"][:, :, 0].long(), t[:, None] + 1 + torch.arange(n))
    # every valid start is drawn: both full episodes' and the partial one's
    assert set(t.tolist()) == {s for s in range(size) if s % EPISODE_STEPS <= EPISODE_STEPS - n and s + n <= size}


def _weights(path):
    return {k: v.clone() for k, v in load_rnd_actor(path)[0].state_dict().items()}


def test_seeded_runs_repeat_and_a_continued_run_equals_a_straight_one(tmp_path):
    torch.set_num_threads(1)
    straight = train_rnd(RNDConfig(total_steps=3000, **TINY), tmp_path / "a", progress=False)
    again = train_rnd(RNDConfig(total_steps=3000, **TINY), tmp_path / "b", progress=False)
    train_rnd(RNDConfig(total_steps=2000, **TINY), tmp_path / "c", progress=False)
    continued = train_rnd(RNDConfig(total_steps=3000, **TINY), tmp_path / "c", progress=False)
    assert [e["step"] for e in straight] == [0, 1000, 2000, 3000]
    assert [e["coverage_cells"] for e in straight] == [e["coverage_cells"] for e in again]
    assert [e["coverage_cells"] for e in continued] == [e["coverage_cells"] for e in straight]
    assert straight[-1]["coverage_cells"] > straight[1]["coverage_cells"] > 0
    for a, b in ((tmp_path / "a", tmp_path / "b"), (tmp_path / "a", tmp_path / "c")):
        wa, wb = _weights(a / "step_0003000.pt"), _weights(b / "step_0003000.pt")
        assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert not all(torch.equal(v, _weights(tmp_path / "a" / "step_0000000.pt")[k])
                   for k, v in _weights(tmp_path / "a" / "step_0003000.pt").items())
    meta = json.loads((tmp_path / "a" / "snapshots.json").read_text())
    assert meta["config"]["domain"] == "walker" and "commit" in json.dumps(meta["provenance"])
    with pytest.raises(ValueError, match="already trained to 3000"):
        train_rnd(RNDConfig(total_steps=2000, **TINY), tmp_path / "a", progress=False)


def test_state_features_read_the_root_joints():
    from cfgrl_core.envs import make_env

    for domain in ("walker", "cheetah"):
        env = make_env(domain, "run", 0)
        env.reset()
        physics = env.physics
        f = StateFeatures(domain)(physics.get_state()[None])
        assert np.isclose(f["height"][0], physics.named.data.qpos["rootz"][0])
        assert np.isclose(f["velocity"][0], physics.named.data.qvel["rootx"][0])
        assert len(StateFeatures(domain).cells(np.repeat(physics.get_state()[None], 5, 0))) == 1


def test_rnd_recipe_replays_the_snapshots_in_training_order(tmp_path):
    from cfgrl_core.collect import CollectConfig, _episode_draws, collect
    from cfgrl_core.dataset import load_dataset
    from cfgrl_core.relabel import relabel_rewards

    torch.set_num_threads(1)
    run = tmp_path / "rnd" / "walker"
    train_rnd(RNDConfig(total_steps=3000, **TINY), run, progress=False)
    cfg = dict(domain="walker", episodes=6, method="rnd", snapshot_dirs=[str(run)])
    out = collect(CollectConfig(**cfg), tmp_path / "data", progress=False)
    again = collect(CollectConfig(**cfg), tmp_path / "again", progress=False)
    files = sorted((out / "buffer").glob("*.npz"))
    assert len(files) == 6
    for a, b in zip(files, sorted((again / "buffer").glob("*.npz"))):
        with np.load(a, allow_pickle=False) as x, np.load(b, allow_pickle=False) as y:
            assert all(np.array_equal(x[k], y[k]) for k in x.files)
    # episode i stands for training step u_i * 3000, u = 0, 1/2, 1/4, 3/4, 1/8, 5/8: steps 0 and 375 fall in the
    # random phase (< 500), the others are played by the latest snapshot at that step
    drawn = [_episode_draws(CollectConfig(**cfg), [], i) for i in range(6)]
    assert drawn[0][2] is None and drawn[4][2] is None
    assert [drawn[i][2].name for i in (1, 2, 3, 5)] == ["step_0001000.pt", "step_0000000.pt", "step_0002000.pt",
                                                      "step_0001000.pt"]
    assert all(drawn[i][3] == 0.2 for i in (1, 2, 3, 5))
    with np.load(files[3], allow_pickle=False) as ep:
        assert np.abs(ep["action"]).max() <= 1.0
        live = ep["reward"][1:, 0]
        np.testing.assert_allclose(relabel_rewards("walker", "run", ep["physics"])[1:, 0], live, rtol=1e-5,
                                   atol=1e-6)
    data = load_dataset(tmp_path / "data", "walker", "rnd", "walk", progress=False)
    assert len(data["observations"]) == 6 * EPISODE_STEPS


def test_training_points_are_a_prefix_stable_stratification():
    from cfgrl_core.collect import training_point

    assert [training_point(i) for i in range(8)] == [0, 0.5, 0.25, 0.75, 0.125, 0.625, 0.375, 0.875]
    for k in range(1, 11):      # the first 2^k points are exactly {j / 2^k}
        assert sorted(training_point(i) for i in range(2**k)) == [j / 2**k for j in range(2**k)]
    # any prefix: at most ~log2(n) / n from uniform (Kolmogorov distance), here n = 300
    u = np.sort([training_point(i) for i in range(300)])
    assert np.abs(u - np.arange(300) / 300).max() < 10 / 300


def test_unknown_recipe_and_missing_rnd_run_are_named(tmp_path):
    from cfgrl_core.collect import CollectConfig, collect

    with pytest.raises(ValueError, match="unknown data recipe 'bogus'"):
        CollectConfig(domain="walker", method="bogus")
    with pytest.raises(FileNotFoundError, match="rnd"):
        collect(CollectConfig(domain="walker", episodes=1, method="rnd", snapshot_dirs=[str(tmp_path / "none")]),
                tmp_path / "data", progress=False)


def test_the_runner_takes_either_recipe_and_refuses_others():
    from cfgrl_core.run import resolve_config

    assert resolve_config("book")["data"] == "td3_snapshots"
    assert resolve_config({"preset": "smoke", "data": "rnd"})["data"] == "rnd"
    with pytest.raises(ValueError, match="config value data must be one of"):
        resolve_config({"preset": "smoke", "data": "expert"})


def test_one_command_makes_both_domains_from_the_shipped_snapshots_and_relabels(tmp_path):
    """``python -m cfgrl_core.collect --recipe rnd --domain walker cheetah`` on the shipped RND snapshots: the live
    run reward stored in each episode is the one recomputed from its physics states."""
    import subprocess
    import sys

    from cfgrl_core.collect import DEFAULT_SIZE, SIZES, training_point
    from cfgrl_core.relabel import relabel_rewards

    assert SIZES[DEFAULT_SIZE["rnd"]] * EPISODE_STEPS == 1_000_000    # ExORL's offline size
    cmd = [sys.executable, "-m", "cfgrl_core.collect", "--recipe", "rnd", "--domain", "walker", "cheetah",
           "--episodes", "2", "--workers", "1", "--root", str(tmp_path)]
    out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr
    assert training_point(1) == 0.5      # episode 1 is played by the snapshot half-way through the run
    for domain in ("walker", "cheetah"):
        files = sorted((tmp_path / domain / "rnd" / "buffer").glob("*.npz"))
        assert [f.name for f in files] == ["episode_000000_1000.npz", "episode_000001_1000.npz"]
        with np.load(files[1], allow_pickle=False) as ep:
            np.testing.assert_allclose(relabel_rewards(domain, "run", ep["physics"])[1:, 0], ep["reward"][1:, 0],
                                       rtol=1e-5, atol=1e-6)
