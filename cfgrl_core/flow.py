"""Flow matching for a guided policy: the probability path, the training losses, guidance and the Euler sampler
(chapter 2 teaches this file).

Path (linear, rectified flow):  x_t = (1 - t) x_0 + t a,  x_0 ~ N(0, I),  target velocity  u_t = dx_t/dt = a - x_0.

Losses (the velocity network regresses u_t; ``||.||^2`` is averaged over action dimensions, then over the batch):
  * ``"official"`` (CFGRL offline RL, official code):
        L = E[ 1[o = 1] ||v(s, x_t, t, o=1) - u||^2  +  lambda ||v(s, x_t, t, null) - u||^2 ],
    both branches on every sample with the same (x_0, t), lambda = 0.1, no label dropout;
  * ``"dropout"`` (standard classifier-free guidance; the official goal-conditioned code):
        L = E[ ||v(s, x_t, t, c~) - u||^2 ],  c~ = null with probability p (0.1), else c.

Guidance. With scores, guidance samples  pi_w(a|s) ∝ pi_hat(a|s) p(o|s,a)^w  (paper, Eq. 11):
    grad log pi_w = grad log pi_hat(a|s) + w (grad log pi_hat(a|s,o) - grad log pi_hat(a|s)).
For flows the same mixing is applied to velocities (an approximation; chapter 2 measures it):
    v_w = v_uncond + w (v_cond - v_uncond).

Sampling: forward Euler from x_0 ~ N(0, I) along v_w on the grid t_k = k/N.
"""
from __future__ import annotations

import math
import numbers
from typing import Callable

import numpy as np
import torch


# ------------------------------------------------------------------------------------------ the path
def linear_path(x0: torch.Tensor, x1: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (x_t, u_t) with x_t = (1 - t) x0 + t x1 and u_t = x1 - x0, for t of shape (B,)."""
    tt = t[:, None]
    return (1.0 - tt) * x0 + tt * x1, x1 - x0


def sample_time(
    batch: int, *, generator: torch.Generator | None, device: torch.device, time_bins: int | None = None
) -> torch.Tensor:
    """Training times: t ~ U[0, 1), or, with ``time_bins=K``, t uniform on {0, 1/K, ..., 1} (official: K=32)."""
    if time_bins is None:
        return torch.rand(batch, generator=generator, device=device)
    k = torch.randint(0, time_bins + 1, (batch,), generator=generator, device=device)
    return k.float() / time_bins


# ---------------------------------------------------------------------------------------- the losses
#: The label the official loss conditions on: o = 1, "this action is at least as good as the data's".
OPTIMAL_LABEL = 1


def draw_noise(actions, generator, time_bins):
    """One training draw (x_0, t): x_0 ~ N(0, I) of the actions' shape, then t (:func:`sample_time`)."""
    x0 = torch.randn(actions.shape, generator=generator, device=actions.device)
    t = sample_time(actions.shape[0], generator=generator, device=actions.device, time_bins=time_bins)
    return x0, t


def _noised(actions, generator, time_bins, noise=None):
    x0, t = draw_noise(actions, generator, time_bins) if noise is None else noise
    x_t, u = linear_path(x0, actions, t)
    return x_t, t, u


def official_cfgrl_terms(policy, obs, actions, labels, *, generator=None, time_bins: int | None = 32, noise=None):
    """Per-sample terms of the official loss, one draw of (x_0, t) per sample shared by both branches:
    (1[o_i = 1], ||v(s_i, x_t, t, o=1) - u||^2, ||v(s_i, x_t, t, null) - u||^2), each of shape (B,).
    ``noise=(x_0, t)`` gives the draw instead of taking it from ``generator`` (:func:`draw_noise`)."""
    if policy.config.condition != "label":
        raise ValueError("the 'official' loss needs a label-conditioned policy (condition='label'); "
                         "use the 'dropout' loss for goals")
    x_t, t, u = _noised(actions, generator, time_bins, noise)
    n = actions.shape[0]
    positive = (labels == OPTIMAL_LABEL).float()
    null = torch.cat([torch.zeros(n, dtype=torch.bool, device=actions.device),
                      torch.ones(n, dtype=torch.bool, device=actions.device)])
    v = policy.velocity(torch.cat([obs, obs]), torch.cat([x_t, x_t]), torch.cat([t, t]),
                        torch.full((2 * n,), OPTIMAL_LABEL, dtype=torch.long, device=actions.device), null)
    return positive, ((v[:n] - u) ** 2).mean(-1), ((v[n:] - u) ** 2).mean(-1)


def official_cfgrl_loss(policy, obs, actions, labels, *, uncond_weight: float = 0.1, generator=None,
                        time_bins: int | None = 32, noise=None):
    """Official offline-RL loss: conditional branch on samples with o=1, unconditional branch (weight lambda) on all.

    Returns (loss, metrics) with metrics holding detached tensors (no host sync).
    """
    positive, cond_err, uncond_err = official_cfgrl_terms(policy, obs, actions, labels, generator=generator,
                                                          time_bins=time_bins, noise=noise)
    cond_loss = (positive * cond_err).mean()
    uncond_loss = uncond_err.mean()
    loss = cond_loss + uncond_weight * uncond_loss
    return loss, {"loss": loss.detach(), "cond_loss": cond_loss.detach(), "uncond_loss": uncond_loss.detach(),
                  "positive_fraction": positive.mean()}


def dropout_cfg_loss(policy, obs, actions, cond, *, p_null: float = 0.1, generator=None,
                     time_bins: int | None = None):
    """Label/goal dropout loss: the condition is replaced by the learned null with probability p_null."""
    if not 0.0 <= p_null <= 1.0:
        raise ValueError(f"p_null must lie in [0, 1], got {p_null!r}")
    x_t, t, u = _noised(actions, generator, time_bins)
    null = torch.rand(actions.shape[0], generator=generator, device=actions.device) < p_null
    v = policy.velocity(obs, x_t, t, cond, null)
    loss = ((v - u) ** 2).mean()
    return loss, {"loss": loss.detach()}


LOSSES = {"official": official_cfgrl_loss, "dropout": dropout_cfg_loss}


# -------------------------------------------------------------------------------------- guidance
def check_guidance_weight(w, batch: int, device: torch.device) -> torch.Tensor:
    """Validate w (a number, or one per state) and return it as a float tensor of shape (batch,).

    Raises ValueError unless every w is finite and >= 0 (w = 0: unconditional, 1: conditional, > 1: extrapolate).
    """
    if isinstance(w, bool):
        raise ValueError(f"w must be a finite number >= 0 (or a 1-D tensor of them), got a bool {w!r}")
    if isinstance(w, numbers.Real):
        wf = float(w)
        if not math.isfinite(wf) or wf < 0:
            raise ValueError(f"w must be a finite number >= 0, got {w!r}")
        return torch.full((batch,), wf, device=device)
    if isinstance(w, np.ndarray):
        w = torch.from_numpy(w)
    if not isinstance(w, torch.Tensor):
        raise ValueError(f"w must be a number or a 1-D tensor/array of numbers, got {type(w).__name__}")
    if w.dtype == torch.bool or w.is_complex():
        raise ValueError(f"w must be real-valued, got dtype {w.dtype}")
    if w.ndim == 0:
        return check_guidance_weight(float(w), batch, device)
    if w.shape != (batch,):
        raise ValueError(f"w given per state must have shape ({batch},) (one per state), got {tuple(w.shape)}")
    w = w.to(device=device, dtype=torch.float32)
    if not bool(torch.isfinite(w).all()):
        raise ValueError("w must be finite: got NaN or infinite values")
    if bool((w < 0).any()):
        raise ValueError(f"w must be >= 0, got a minimum of {float(w.min())}")
    return w


def guided_velocity(v_cond: torch.Tensor, v_uncond: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """v_w = v_uncond + w (v_cond - v_uncond), written as (1 - w) v_uncond + w v_cond so w=0, w=1 are exact.

    ``w`` broadcasts from the left: shape (B,) for v of shape (B, action_dim).
    """
    w = w.reshape(w.shape + (1,) * (v_cond.ndim - w.ndim))
    return (1.0 - w) * v_uncond + w * v_cond


# ------------------------------------------------------------------------------------- the sampler
VelocityField = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def euler_solve(velocity: VelocityField, x0: torch.Tensor, steps: int, return_path: bool = False):
    """Forward Euler on [0, 1]:  x_{k+1} = x_k + (1/N) v(x_k, t_k),  t_k = k/N,  k = 0..N-1.

    ``velocity(x, t)`` gets t as a tensor of shape (B,). Returns x_N, or (x_N, path) with path of
    shape (N + 1, *x0.shape) when ``return_path`` is set.
    """
    x = x0
    dt = 1.0 / steps
    path = [x0] if return_path else None
    for k in range(steps):
        t = torch.full((x0.shape[0],), k * dt, device=x0.device, dtype=x0.dtype)
        x = x + dt * velocity(x, t)
        if return_path:
            path.append(x)
    return (x, torch.stack(path)) if return_path else x
