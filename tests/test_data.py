"""Offline data: relabelling against live rewards, the collector (determinism, resume, atomic files), the loader."""
import json
import shutil

import numpy as np
import pytest
import torch

from cfgrl_core.collect import CollectConfig, collect, run_episode
from cfgrl_core.dataset import DatasetError, episode_returns, load_dataset, summarize
from cfgrl_core.envs import DOMAIN_TASKS, flat_observation, make_env
from cfgrl_core.relabel import relabel_rewards
from cfgrl_core.td3 import Actor, save_actor


@pytest.fixture(scope="module")
def snapshot_dir(tmp_path_factory):
    """Two untrained TD3 actor snapshots in the layout `python -m cfgrl_core.td3` writes."""
    d = tmp_path_factory.mktemp("snapshots")
    log = []
    for k in range(2):
        torch.manual_seed(k)
        save_actor(Actor(24, 6, 16), d / f"step_{k:07d}.pt", {"step": k})
        log.append({"step": k, "file": f"step_{k:07d}.pt", "eval_return": 0.0})
    (d / "snapshots.json").write_text(json.dumps({"config": {}, "snapshots": log}))
    return d


@pytest.mark.parametrize("domain, task", [(d, t) for d, ts in DOMAIN_TASKS.items() for t in ts])
def test_relabelled_rewards_equal_live_rewards(domain, task):
    """Run the live task env with random actions, store physics, relabel: rewards must match step by step."""
    env = make_env(domain, task, seed=3)
    rng = np.random.default_rng(0)
    ts = env.reset()
    physics, live = [env.physics.get_state().copy()], [0.0]
    for _ in range(300):
        ts = env.step(rng.uniform(-1, 1, 6))
        physics.append(env.physics.get_state().copy())
        live.append(ts.reward)
    relabelled = relabel_rewards(domain, task, np.stack(physics))[:, 0]
    np.testing.assert_allclose(relabelled[1:], np.asarray(live[1:]), rtol=1e-5, atol=1e-6)
    assert np.ptp(live[1:]) > 0 or task == "run_backward"   # the check is not on a constant signal


def test_collector_is_deterministic_resumable_and_atomic(tmp_path, snapshot_dir):
    cfg = CollectConfig(domain="walker", episodes=3, seed=5, snapshot_dirs=[str(snapshot_dir)], random_fraction=0.3)
    out = collect(cfg, tmp_path / "a", progress=False)
    files = sorted((out / "buffer").glob("*.npz"))
    assert [f.name for f in files] == [f"episode_{i:06d}_1000.npz" for i in range(3)]
    with np.load(files[0], allow_pickle=False) as ep:
        assert ep["observation"].shape == (1001, 24) and ep["action"].shape == (1001, 6)
        assert ep["reward"].shape == (1001, 1) and ep["discount"].shape == (1001, 1)
        assert ep["physics"].shape == (1001, 18) and np.all(ep["action"][0] == 0)

    # an interrupted run: episode 1 missing and a stray temporary file from a killed write
    other = tmp_path / "b" / "walker" / "td3_snapshots" / "buffer"
    shutil.copytree(out, other.parent)
    (other / "episode_000001_1000.npz").unlink()
    (other / ".episode_000002_1000.npz.abc.tmp").write_bytes(b"half")
    collect(cfg, tmp_path / "b", progress=False)
    for f in files:   # resumed result is identical, file for file
        with np.load(f, allow_pickle=False) as x, np.load(other / f.name, allow_pickle=False) as y:
            for k in x.files:
                np.testing.assert_array_equal(x[k], y[k])
    data = load_dataset(tmp_path / "b", "walker", "td3_snapshots", "run", progress=False)  # tmp file is ignored
    assert data["observations"].shape == (3000, 24)


def test_worker_processes_write_the_same_files(tmp_path, snapshot_dir):
    cfg = CollectConfig(domain="walker", episodes=4, seed=5, snapshot_dirs=[str(snapshot_dir)], random_fraction=0.3)
    one = collect(cfg, tmp_path / "one", progress=False)
    two = collect(cfg, tmp_path / "two", progress=False, workers=2)
    names = sorted(f.name for f in (one / "buffer").glob("*.npz"))
    assert names == sorted(f.name for f in (two / "buffer").glob("*.npz")) and len(names) == 4
    for name in names:
        with np.load(one / "buffer" / name, allow_pickle=False) as x, \
                np.load(two / "buffer" / name, allow_pickle=False) as y:
            assert x.files == y.files and all(np.array_equal(x[k], y[k]) for k in x.files)


def test_collector_refuses_to_mix_configurations(tmp_path, snapshot_dir):
    collect(CollectConfig(domain="walker", episodes=1, seed=0, snapshot_dirs=[str(snapshot_dir)]), tmp_path,
            progress=False)
    with pytest.raises(ValueError, match="another configuration"):
        collect(CollectConfig(domain="walker", episodes=1, seed=1, snapshot_dirs=[str(snapshot_dir)]), tmp_path,
                progress=False)


def test_bad_collector_config():
    with pytest.raises(ValueError, match="unknown domain"):
        CollectConfig(domain="hopper")
    with pytest.raises(ValueError, match="episodes must be an integer >= 1"):
        CollectConfig(domain="walker", episodes=0)


def write_real_exorl_layout(root, domain="cheetah", method="rnd", episodes=2, seed=0):
    """Episodes exactly as ExORL ships them: keys observation/action/reward/discount/physics, float32 arrays,
    row 0 of action a placeholder, files named {idx}_{len}.npz, plain np.savez."""
    buffer = root / domain / method / "buffer"
    buffer.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i in range(episodes):
        ep = run_episode(domain, 100 + i, lambda obs: rng.uniform(-1, 1, 6))
        np.savez(buffer / f"{i}_1000.npz", observation=ep["observation"].astype(np.float32),
                 action=ep["action"].astype(np.float32), reward=ep["reward"].astype(np.float32),
                 discount=ep["discount"].astype(np.float32), physics=ep["physics"].astype(np.float64))
    return buffer


def test_loader_reads_the_real_exorl_key_layout_and_relabels(tmp_path):
    buffer = write_real_exorl_layout(tmp_path)
    data = load_dataset(tmp_path, "cheetah", "rnd", "run", progress=False)
    assert data["observations"].shape == (2000, 17) and data["actions"].shape == (2000, 6)
    assert data["next_observations"].shape == (2000, 17) and np.all(data["masks"] == 1)
    with np.load(buffer / "0_1000.npz", allow_pickle=False) as ep:
        np.testing.assert_array_equal(data["observations"][:1000], ep["observation"][:-1])
        np.testing.assert_array_equal(data["next_observations"][:1000], ep["observation"][1:])
        np.testing.assert_array_equal(data["actions"][:1000], ep["action"][1:])
        np.testing.assert_allclose(data["rewards"][:1000], ep["reward"][1:, 0], rtol=1e-5, atol=1e-6)
    back = load_dataset(tmp_path, "cheetah", "rnd", "run_backward", progress=False)
    assert not np.allclose(back["rewards"], data["rewards"])
    cached = load_dataset(tmp_path, "cheetah", "rnd", "run", progress=False)   # from the processed cache
    np.testing.assert_array_equal(cached["rewards"], data["rewards"])
    s = summarize(data)
    assert s["episodes"] == 2 and s["transitions"] == 2000
    assert np.isclose(episode_returns(data).sum(), data["rewards"].sum(), rtol=1e-4)


def test_loader_errors_name_the_problem(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        load_dataset(tmp_path, "walker", "rnd", "run")
    (tmp_path / "walker" / "rnd" / "buffer").mkdir(parents=True)
    with pytest.raises(DatasetError, match="holds no .npz episodes"):
        load_dataset(tmp_path, "walker", "rnd", "run")
    with pytest.raises(ValueError, match="unknown task 'fly'"):
        load_dataset(tmp_path, "walker", "rnd", "fly")

    buffer = write_real_exorl_layout(tmp_path / "c", episodes=1)
    good = buffer / "0_1000.npz"
    data = good.read_bytes()
    (buffer / "1_1000.npz").write_bytes(data[: len(data) // 3])
    with pytest.raises(DatasetError, match=r"1_1000.npz: corrupted or truncated"):
        load_dataset(tmp_path / "c", "cheetah", "rnd", "run", progress=False)
    (buffer / "1_1000.npz").unlink()

    with np.load(good, allow_pickle=False) as f:
        ep = {k: f[k] for k in f.files}
    np.savez(buffer / "2_1000.npz", **{**ep, "reward": ep["reward"][:-5]})
    with pytest.raises(DatasetError, match=r"2_1000.npz: keys have mismatched lengths"):
        load_dataset(tmp_path / "c", "cheetah", "rnd", "run", progress=False)
    obs = ep["observation"].copy()
    obs[7, 3] = np.nan
    np.savez(buffer / "2_1000.npz", **{**ep, "observation": obs})
    with pytest.raises(DatasetError, match=r"2_1000.npz: observation contains NaN"):
        load_dataset(tmp_path / "c", "cheetah", "rnd", "run", progress=False)
    np.savez(buffer / "2_1000.npz", **{k: v for k, v in ep.items() if k != "physics"})
    with pytest.raises(DatasetError, match=r"2_1000.npz: missing keys \['physics'\]"):
        load_dataset(tmp_path / "c", "cheetah", "rnd", "run", progress=False)
    np.savez(buffer / "2_1000.npz", **{**ep, "observation": np.zeros((1001, 5), np.float32)})
    with pytest.raises(DatasetError, match=r"2_1000.npz: array widths"):
        load_dataset(tmp_path / "c", "cheetah", "rnd", "run", progress=False)
    writing_a_pickle = {"allow_pickle": True}   # the file under test must hold a pickle; the loader must refuse it
    np.save(buffer / "pickled.npy", np.array([object()], dtype=object), **writing_a_pickle)
    (buffer / "pickled.npy").rename(buffer / "3_1000.npz")
    (buffer / "2_1000.npz").unlink()
    with pytest.raises(DatasetError, match="3_1000.npz: corrupted or truncated"):
        load_dataset(tmp_path / "c", "cheetah", "rnd", "run", progress=False)
