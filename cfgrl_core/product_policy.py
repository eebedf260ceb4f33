"""Exact policy improvement on a discretised action space (the maths of chapter 1).

On a grid of actions a_1..a_n with reference probabilities pi_hat_i, the product policy (paper, Eq. 5)
    pi_w(a) ∝ pi_hat(a) f(A(a))^w
is a finite sum to normalise, so every claim of the theory can be checked to machine precision.
All functions take and return NumPy arrays of probabilities (summing to one over the grid).
"""
from __future__ import annotations

import numpy as np


def _check_prob(p: np.ndarray, name: str) -> np.ndarray:
    p = np.asarray(p, dtype=np.float64)
    if p.ndim != 1 or not np.all(np.isfinite(p)) or np.any(p < 0) or not np.isclose(p.sum(), 1.0, atol=1e-6):
        raise ValueError(f"{name} must be a 1-D array of non-negative probabilities summing to 1")
    return p


def product_policy(reference: np.ndarray, f_values: np.ndarray, w: float) -> np.ndarray:
    """pi_w = pi_hat f^w / Z, computed in log space; f may be 0 (then pi_w = 0 there for w > 0; f^0 = 1)."""
    if not np.isfinite(w) or w < 0:
        raise ValueError(f"w must be a finite number >= 0, got {w!r}")
    ref = _check_prob(reference, "reference")
    f = np.asarray(f_values, dtype=np.float64)
    if f.shape != ref.shape or np.any(f < 0) or not np.all(np.isfinite(f)):
        raise ValueError("f_values must be finite, non-negative and shaped like reference")
    with np.errstate(divide="ignore"):
        logp = np.log(ref) + (w * np.log(f) if w > 0 else 0.0)
    logp -= logp[np.isfinite(logp)].max()
    p = np.exp(logp)
    return p / p.sum()


def expectation(p: np.ndarray, values: np.ndarray) -> float:
    """E_p[values] = sum_i p_i values_i."""
    return float(np.dot(p, values))


def kl_divergence(p: np.ndarray, q: np.ndarray) -> float:
    """KL(p || q) = sum_i p_i log(p_i / q_i), with 0 log 0 = 0; inf if p puts mass where q has none."""
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    support = p > 0
    if np.any(q[support] == 0):
        return float("inf")
    return float(np.sum(p[support] * (np.log(p[support]) - np.log(q[support]))))


def kl_regularized_objective(p: np.ndarray, advantage: np.ndarray, reference: np.ndarray, beta: float) -> float:
    """J_beta(pi) = E_pi[A] - beta KL(pi || pi_hat); maximised by pi ∝ pi_hat exp(A / beta) (Remark 3)."""
    return expectation(p, advantage) - beta * kl_divergence(p, reference)


def total_variation(p: np.ndarray, q: np.ndarray) -> float:
    """TV(p, q) = 1/2 sum_i |p_i - q_i|."""
    return 0.5 * float(np.abs(np.asarray(p) - np.asarray(q)).sum())


def wasserstein1_samples(samples: np.ndarray, p: np.ndarray, grid: np.ndarray) -> float:
    """W1 between the empirical distribution of 1-D ``samples`` and p on ``grid`` (integral of |F_n - F_p|)."""
    grid = np.asarray(grid, dtype=np.float64)
    xs = np.sort(np.asarray(samples, dtype=np.float64).ravel())
    # evaluate both CDFs on a fine common mesh: the grid's midpoints
    mids = 0.5 * (grid[1:] + grid[:-1])
    f_emp = np.searchsorted(xs, mids, side="right") / xs.size
    f_p = np.cumsum(p)[:-1]
    return float(np.sum(np.abs(f_emp - f_p) * np.diff(grid)))
