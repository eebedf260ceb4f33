"""Diagnostics of how many samples a weighted loss really learns from (chapter 5; the paper's Figure 2).

AWR fits  -E[ w_i log pi(a_i|s_i) ]  with  w_i = min(exp(T A_i), 100): as T grows a few samples carry most of the
weight, so most of the batch contributes almost no gradient ("gradient sparsity"). CFGRL's conditional loss weights
every positive sample by 1 and every sample's unconditional term by lambda, however strongly it is later guided.
The per-sample losses these diagnostics take are the agents' own: ``AWRAgent.per_sample_loss`` and
``CFGRLAgent.per_sample_loss`` (:mod:`cfgrl_core.agents`).
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
