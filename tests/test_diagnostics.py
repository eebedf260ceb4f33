"""The critic diagnostics of chapter 4 and the recipe of each collected episode (recomputed from the seeds)."""
import numpy as np
import pytest
import torch

from cfgrl_core.collect import ASSETS, CollectConfig, collect, episode_recipes
from cfgrl_core.dataset import read_episode, episode_files
from cfgrl_core.diagnostics import discounted_returns_to_go, labels_by_behaviour
from cfgrl_core.td3 import load_actor


def test_discounted_returns_to_go_restart_at_episode_boundaries():
    r = np.array([1.0, 1.0, 1.0, 2.0, 2.0])
    ids = np.array([0, 0, 0, 1, 1])
    g = discounted_returns_to_go(r, ids, 0.5)
    np.testing.assert_allclose(g, [1.75, 1.5, 1.0, 3.0, 2.0])


def test_labels_by_behaviour_groups_episodes():
    # the snapshot that scored 300 on its own task scores 1 on the evaluated one: it belongs to the lower half
    recipes = [{"behaviour": "random", "sigma": None, "snapshot_return": None},
               {"behaviour": "a", "sigma": 0.0, "snapshot_return": 10.0},
               {"behaviour": "b", "sigma": 0.0, "snapshot_return": 300.0}]
    adv = np.array([-1.0, -1.0, 1.0, -1.0, 1.0, 1.0])
    ids = np.array([0, 0, 1, 1, 2, 2])
    rows = {r["behaviour"]: r for r in labels_by_behaviour(adv, ids, recipes, np.array([5.0, 200.0, 1.0]))}
    assert rows["random actions"]["positive_fraction"] == 0.0
    assert rows["higher-return half, sigma = 0"]["positive_fraction"] == 0.5
    assert rows["lower-return half, sigma = 0"]["positive_fraction"] == 1.0


def test_episode_recipes_describe_the_collected_episodes(tmp_path):
    recipes = episode_recipes("walker", 3)
    collect(CollectConfig(domain="walker", episodes=3), tmp_path, progress=False)
    files = episode_files(tmp_path, "walker", "td3_snapshots")
    noiseless = [i for i, r in enumerate(recipes) if r["sigma"] == 0.0]
    assert noiseless, "the first 3 episodes of seed 0 include a noiseless snapshot episode"
    for i in noiseless:
        ep = read_episode(files[i])
        actor, _ = load_actor(ASSETS / recipes[i]["behaviour"])
        with torch.no_grad():
            expected = actor(torch.from_numpy(ep["observation"][:-1])).numpy()
        np.testing.assert_allclose(ep["action"][1:], np.clip(expected, -1, 1), atol=1e-5)
