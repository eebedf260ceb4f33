"""Toy bandits with a known reward and a multi-modal reference policy (chapters 1 and 2).

A one-state bandit: actions a in [-1, 1]^d, the data's policy pi_hat is a Gaussian mixture truncated to the
box, the reward r(a) a sum of Gaussian bumps. Its advantage is A(a) = r(a) - E_{pi_hat}[r], and the
optimality label is o = 1[A(a) >= 0] ("hard", the CFGRL offline-RL rule, Eq. 15) or o ~ Bernoulli(sigmoid(A/tau))
("soft"). Everything is exact on a grid (see :mod:`cfgrl_core.product_policy`) and samplable.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def _bumps(a: np.ndarray, centers: np.ndarray, widths: np.ndarray, heights: np.ndarray) -> np.ndarray:
    """sum_k h_k exp(-||a - c_k||^2 / (2 s_k^2)) for a of shape (n, d)."""
    d2 = ((a[:, None, :] - centers[None, :, :]) ** 2).sum(-1)
    return (heights[None, :] * np.exp(-d2 / (2 * widths[None, :] ** 2))).sum(-1)


@dataclass
class GaussianBandit:
    """A one-state bandit on [low, high]^d (d = len of each mean)."""

    ref_means: np.ndarray      # (m, d) reference mixture means
    ref_stds: np.ndarray       # (m,) isotropic standard deviations
    ref_weights: np.ndarray    # (m,) mixture weights (sum 1)
    reward_centers: np.ndarray  # (k, d)
    reward_widths: np.ndarray   # (k,)
    reward_heights: np.ndarray  # (k,)
    low: float = -1.0
    high: float = 1.0
    grid_size: int = 801        # grid points per dimension for exact computations

    def __post_init__(self):
        for name in ("ref_means", "ref_stds", "ref_weights", "reward_centers", "reward_widths", "reward_heights"):
            setattr(self, name, np.asarray(getattr(self, name), dtype=np.float64))
        self.ref_weights = self.ref_weights / self.ref_weights.sum()
        self.dim = self.ref_means.shape[1]
        axis = np.linspace(self.low, self.high, self.grid_size)
        mesh = np.meshgrid(*([axis] * self.dim), indexing="ij")
        self.axis = axis
        self.grid = np.stack([m.ravel() for m in mesh], axis=-1)      # (n, d) cell centres
        dens = self.reference_density(self.grid)
        self.reference = dens / dens.sum()                              # (n,) pi_hat on the grid
        self.rewards = self.reward(self.grid)                          # (n,)
        self.baseline = float(self.reference @ self.rewards)          # V = E_pi_hat[r]
        self.advantages = self.rewards - self.baseline                 # A(a) on the grid

    # --- the problem -------------------------------------------------------------------------
    def reference_density(self, a: np.ndarray) -> np.ndarray:
        """Unnormalised pi_hat(a): the Gaussian mixture's density (truncation only renormalises)."""
        a = np.asarray(a, dtype=np.float64).reshape(-1, self.dim)
        d2 = ((a[:, None, :] - self.ref_means[None]) ** 2).sum(-1)
        norm = (2 * np.pi * self.ref_stds**2) ** (self.dim / 2)
        return (self.ref_weights / norm * np.exp(-d2 / (2 * self.ref_stds**2))).sum(-1)

    def reward(self, a: np.ndarray) -> np.ndarray:
        a = np.asarray(a, dtype=np.float64).reshape(-1, self.dim)
        return _bumps(a, self.reward_centers, self.reward_widths, self.reward_heights)

    def advantage(self, a: np.ndarray) -> np.ndarray:
        """A(a) = r(a) - E_{pi_hat}[r]."""
        return self.reward(a) - self.baseline

    def optimality_probability(self, a: np.ndarray, labels: str = "hard", temperature: float = 0.1) -> np.ndarray:
        """p(o = 1 | a): 1[A(a) >= 0] for ``labels="hard"``, sigmoid(A(a) / temperature) for ``"soft"``."""
        adv = self.advantage(a)
        if labels == "hard":
            from .agents.cfgrl import optimality_labels

            return optimality_labels(adv).astype(np.float64)
        if labels == "soft":
            return 1.0 / (1.0 + np.exp(-adv / temperature))
        raise ValueError(f"labels must be 'hard' or 'soft', got {labels!r}")

    # --- data ----------------------------------------------------------------------------------
    def sample_reference(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """n exact draws from pi_hat (mixture component, then Gaussian, rejected outside the box)."""
        out = np.empty((0, self.dim))
        while out.shape[0] < n:
            m = max(2 * (n - out.shape[0]), 64)
            comp = rng.choice(len(self.ref_weights), size=m, p=self.ref_weights)
            x = self.ref_means[comp] + self.ref_stds[comp, None] * rng.standard_normal((m, self.dim))
            keep = np.all((x >= self.low) & (x <= self.high), axis=1)
            out = np.concatenate([out, x[keep]])
        return out[:n]

    def sample_dataset(self, n: int, rng: np.random.Generator, labels: str = "hard", temperature: float = 0.1):
        """Offline data: actions a ~ pi_hat and labels o ~ p(o|a). Returns (actions (n, d), o (n,) int64)."""
        actions = self.sample_reference(n, rng)
        p = self.optimality_probability(actions, labels, temperature)
        o = (rng.random(n) < p).astype(np.int64)
        return actions, o

    def sample_grid(self, p: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
        """n draws from a distribution p on the grid, jittered uniformly within each cell."""
        idx = rng.choice(p.size, size=n, p=p)
        cell = (self.high - self.low) / (self.grid_size - 1)
        x = self.grid[idx] + cell * (rng.random((n, self.dim)) - 0.5)
        return np.clip(x, self.low, self.high)

    def histogram(self, samples: np.ndarray) -> np.ndarray:
        """Fraction of samples in each grid cell (same layout as ``self.reference``)."""
        cell = (self.high - self.low) / (self.grid_size - 1)
        idx = np.clip(np.rint((np.asarray(samples).reshape(-1, self.dim) - self.low) / cell), 0, self.grid_size - 1)
        flat = np.ravel_multi_index(tuple(idx.astype(int).T), (self.grid_size,) * self.dim)
        return np.bincount(flat, minlength=self.grid.shape[0]) / flat.size


def make_bandit(dim: int = 1, grid_size: int | None = None) -> GaussianBandit:
    """The book's bandits: the best reward sits on the *rarest* mode of pi_hat, so imitation is poor.

    dim=1: pi_hat modes at -0.55 (50%), 0.05 (35%), 0.6 (15%); reward peaks at 0.62 (1.0) and -0.5 (0.45).
    dim=2: modes at (-0.5,-0.5) 45%, (0.5,-0.3) 35%, (0.1,0.6) 20%; reward peaks at (0.15,0.65) and (0.55,-0.35).
    """
    if dim == 1:
        return GaussianBandit(
            ref_means=[[-0.55], [0.05], [0.6]], ref_stds=[0.14, 0.12, 0.1], ref_weights=[0.5, 0.35, 0.15],
            reward_centers=[[0.62], [-0.5]], reward_widths=[0.12, 0.2], reward_heights=[1.0, 0.45],
            grid_size=grid_size or 801)
    if dim == 2:
        return GaussianBandit(
            ref_means=[[-0.5, -0.5], [0.5, -0.3], [0.1, 0.6]], ref_stds=[0.18, 0.15, 0.13],
            ref_weights=[0.45, 0.35, 0.2],
            reward_centers=[[0.15, 0.65], [0.55, -0.35]], reward_widths=[0.15, 0.2], reward_heights=[1.0, 0.5],
            grid_size=grid_size or 161)
    raise ValueError(f"dim must be 1 or 2, got {dim!r}")
