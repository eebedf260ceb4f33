"""Checks of the critic and its labels against what we know about the data (chapter 4's investigation).

Our datasets record how each episode was made (:func:`cfgrl_core.collect.episode_recipes`): random actions, or a TD3
snapshot of known return acting with Gaussian noise sigma. A useful critic should give positive labels o = 1[A >= 0]
more often to low-noise actions of good snapshots, and its Q should track the discounted return actually obtained.
The critic's Q, V and A over a whole dataset come from ``IQLAgent.on_dataset``.
"""
from __future__ import annotations

import numpy as np

from .agents.cfgrl import optimality_labels


def discounted_returns_to_go(rewards: np.ndarray, episode_ids: np.ndarray, gamma: float) -> np.ndarray:
    """G_t = sum_{k >= t} gamma^(k-t) r_k within each episode (truncated at the episode's end; DMC has no terminals)."""
    g = np.zeros(len(rewards), np.float64)
    running, current = 0.0, None
    for t in range(len(rewards) - 1, -1, -1):
        if episode_ids[t] != current:
            running, current = 0.0, episode_ids[t]
        running = rewards[t] + gamma * running
        g[t] = running
    return g


def labels_by_behaviour(advantage: np.ndarray, episode_ids: np.ndarray, recipes: list[dict],
                        episode_return: np.ndarray) -> list[dict]:
    """Positive-label fraction and mean advantage per kind of behaviour: random actions, then each noise scale
    sigma of the snapshot episodes, split at the median into the lower- and higher-return halves by the episode's
    return *on the evaluated task* (``episode_return``, one per episode; a snapshot's own-task return would put
    cheetah's backward runners, which score about 1 on cheetah-run, among the strong)."""
    snapshot_episodes = [i for i, r in enumerate(recipes) if r["sigma"] is not None]
    median = float(np.median(episode_return[snapshot_episodes])) if snapshot_episodes else 0.0
    groups: dict[str, list[int]] = {}
    for i, r in enumerate(recipes):
        if r["sigma"] is None:
            key = "random actions"
        else:
            half = "higher-return" if episode_return[i] >= median else "lower-return"
            key = f"{half} half, sigma = {r['sigma']:g}"
        groups.setdefault(key, []).append(i)
    rows = []
    for key in sorted(groups, key=lambda k: (k != "random actions", k)):
        mask = np.isin(episode_ids, groups[key])
        rows.append({"behaviour": key, "episodes": len(groups[key]), "transitions": int(mask.sum()),
                     "positive_fraction": float(optimality_labels(advantage[mask]).mean()),
                     "mean_advantage": float(advantage[mask].mean())})
    return rows
