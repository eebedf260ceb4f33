"""Diagnostics of how many samples a weighted loss really learns from (chapter 5; the paper's Figure 2).

AWR fits  -E[ w_i log pi(a_i|s_i) ]  with  w_i = min(exp(T A_i), 100): as T grows a few samples carry most of the
weight, so most of the batch contributes almost no gradient ("gradient sparsity"). CFGRL's conditional loss weights
every positive sample by 1 and every sample's unconditional term by lambda, however strongly it is later guided.
"""
from __future__ import annotations

import math

import torch


def effective_sample_size(weights) -> float:
    """ESS = (sum_i w_i)^2 / sum_i w_i^2: n for equal weights, 1 when one sample holds all the weight."""
    w = torch.as_tensor(weights, dtype=torch.float64).flatten()
    if w.numel() == 0 or (w < 0).any() or not torch.isfinite(w).all():
        raise ValueError("weights must be a non-empty array of finite values >= 0")
    total = w.sum()
    return float(total**2 / (w**2).sum()) if total > 0 else 0.0


def top_share(weights, fraction: float = 0.1) -> float:
    """Share of the total weight held by the largest ceil(fraction * n) weights (0.1 for equal weights and 10%)."""
    w = torch.as_tensor(weights, dtype=torch.float64).flatten()
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must lie in (0, 1], got {fraction!r}")
    k = max(1, math.ceil(fraction * w.numel()))
    return float(w.topk(k).values.sum() / w.sum())


def per_sample_grad_norms(per_sample_losses: torch.Tensor, params) -> torch.Tensor:
    """||grad_theta l_i||_2 for every sample i of a batch, given the vector of per-sample losses l_i (B,).

    One backward pass per sample through the batch's graph (clear rather than fast: a batch of 256 takes ~1 s on
    CPU). The batch loss is mean_i l_i, so these norms are B times each sample's share of the batch gradient.
    """
    params = [p for p in params if p.requires_grad]
    norms = []
    for i in range(per_sample_losses.shape[0]):
        grads = torch.autograd.grad(per_sample_losses[i], params, retain_graph=True, allow_unused=True)
        norms.append(torch.sqrt(sum((g**2).sum() for g in grads if g is not None)))
    return torch.stack(norms).detach()


def awr_per_sample_losses(actor, obs, actions, advantage) -> torch.Tensor:
    """l_i = -min(exp(T A_i), 100) log pi(a_i|s_i): the terms whose mean is AWR's loss."""
    from .awr import awr_weights

    w = awr_weights(advantage, actor.config["temperature"], actor.config["max_weight"])
    return -w * actor.distribution(obs).log_prob(actions).sum(-1)


def cfgrl_per_sample_losses(policy, obs, actions, labels, uncond_weight: float = 0.1, generator=None,
                            time_bins: int | None = 32) -> torch.Tensor:
    """l_i = 1[o_i = 1] ||v(s_i, x_t, t, o=1) - u||^2 + lambda ||v(s_i, x_t, t, null) - u||^2 (the official loss's
    terms; one draw of (x_0, t) per sample)."""
    from .losses import official_cfgrl_terms

    positive, cond_err, uncond_err = official_cfgrl_terms(policy, obs, actions, labels, generator=generator,
                                                          time_bins=time_bins)
    return positive * cond_err + uncond_weight * uncond_err
