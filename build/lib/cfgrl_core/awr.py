"""Advantage-weighted regression actor (Peng et al., 2019), the baseline of CFGRL's Table 1.

Gaussian policy with a state-independent log-std (initialised at 0, clipped to [-5, 2]), trained by

    L = - E[ min(exp(T A(s, a)), 100) log pi(a | s) ],     T = 1/beta in {1, 3, 10, 30}

and evaluated with its mean action. Its optimum is pi ∝ pi_hat exp(T A) (chapter 1): the same improvement
operator CFGRL samples with guidance, reached by weighting instead.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .configs import merge_config
from .mlp import mlp

AWR_CONFIG = dict(hidden_dims=(512, 512, 512), activation="mish", layer_norm=True, temperature=3.0,
                  max_weight=100.0, log_std_min=-5.0, log_std_max=2.0)


def awr_weights(advantage: torch.Tensor, temperature: float, max_weight: float = 100.0) -> torch.Tensor:
    """w_i = min(exp(T A_i), max_weight)."""
    return torch.exp(advantage * temperature).clamp(max=max_weight)


class GaussianActor(nn.Module):
    def __init__(self, obs_dim: int, action_dim: int, **config):
        super().__init__()
        self.config = c = merge_config(AWR_CONFIG, config, "AWR")
        if not (math.isfinite(c["temperature"]) and c["temperature"] >= 0):
            raise ValueError(f"temperature must be a finite number >= 0, got {c['temperature']!r}")
        self.mean_net = mlp(obs_dim, c["hidden_dims"], action_dim, c["activation"], c["layer_norm"])
        self.log_std = nn.Parameter(torch.zeros(action_dim))

    def distribution(self, obs) -> torch.distributions.Normal:
        log_std = self.log_std.clamp(self.config["log_std_min"], self.config["log_std_max"])
        return torch.distributions.Normal(self.mean_net(obs), log_std.exp())

    @torch.no_grad()
    def act(self, obs) -> torch.Tensor:
        """The mean action, clipped to [-1, 1] (evaluation)."""
        return self.mean_net(obs).clamp(-1.0, 1.0)

    def loss(self, obs, actions, advantage) -> tuple[torch.Tensor, dict]:
        w = awr_weights(advantage, self.config["temperature"], self.config["max_weight"])
        log_prob = self.distribution(obs).log_prob(actions).sum(-1)
        loss = -(w * log_prob).mean()
        return loss, {"actor_loss": loss.detach(), "weight_mean": w.mean(), "weight_max": w.max()}
