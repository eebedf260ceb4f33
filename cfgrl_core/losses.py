"""Flow-matching training losses for a guided policy (select by name with :data:`LOSSES`).

Both regress the velocity network onto the linear path's target u = a - x_0 at x_t = (1 - t) x_0 + t a.

* ``"official"`` (CFGRL offline RL, official code):
      L = E[ 1[o = 1] ||v(s, x_t, t, o=1) - u||^2  +  lambda ||v(s, x_t, t, null) - u||^2 ],
  both branches on every sample, the same (x_0, t) for both, lambda = 0.1; no label dropout.
* ``"dropout"`` (standard classifier-free guidance; the official goal-conditioned code):
      L = E[ ||v(s, x_t, t, c~) - u||^2 ],  c~ = null with probability p (0.1), else c.
``||.||^2`` is averaged over action dimensions, then over the batch.
"""
from __future__ import annotations

import torch

from .path import linear_path, sample_time

#: The label the official loss conditions on: o = 1, "this action is at least as good as the data's".
OPTIMAL_LABEL = 1


def _noised(actions, generator, time_bins):
    x0 = torch.randn(actions.shape, generator=generator, device=actions.device)
    t = sample_time(actions.shape[0], generator=generator, device=actions.device, time_bins=time_bins)
    x_t, u = linear_path(x0, actions, t)
    return x_t, t, u


def official_cfgrl_terms(policy, obs, actions, labels, *, generator=None, time_bins: int | None = 32):
    """Per-sample terms of the official loss, one draw of (x_0, t) per sample shared by both branches:
    (1[o_i = 1], ||v(s_i, x_t, t, o=1) - u||^2, ||v(s_i, x_t, t, null) - u||^2), each of shape (B,)."""
    if policy.config.condition != "label":
        raise ValueError("the 'official' loss needs a label-conditioned policy (condition='label'); "
                         "use the 'dropout' loss for goals")
    x_t, t, u = _noised(actions, generator, time_bins)
    n = actions.shape[0]
    positive = (labels == OPTIMAL_LABEL).float()
    null = torch.cat([torch.zeros(n, dtype=torch.bool, device=actions.device),
                      torch.ones(n, dtype=torch.bool, device=actions.device)])
    v = policy.velocity(torch.cat([obs, obs]), torch.cat([x_t, x_t]), torch.cat([t, t]),
                        torch.full((2 * n,), OPTIMAL_LABEL, dtype=torch.long, device=actions.device), null)
    return positive, ((v[:n] - u) ** 2).mean(-1), ((v[n:] - u) ** 2).mean(-1)


def official_cfgrl_loss(policy, obs, actions, labels, *, uncond_weight: float = 0.1, generator=None,
                        time_bins: int | None = 32):
    """Official offline-RL loss: conditional branch on samples with o=1, unconditional branch (weight lambda) on all.

    Returns (loss, metrics) with metrics holding detached tensors (no host sync).
    """
    positive, cond_err, uncond_err = official_cfgrl_terms(policy, obs, actions, labels, generator=generator,
                                                          time_bins=time_bins)
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
