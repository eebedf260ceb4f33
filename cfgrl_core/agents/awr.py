"""Advantage-weighted regression (Peng et al., 2019): the Gaussian actor of CFGRL's Table 1 baseline.

A Gaussian policy with a state-independent log-std (initialised at 0, clipped to [-5, 2]), trained on a critic's
advantages by

    L = - E[ min(exp(T A(s, a)), 100) log pi(a | s) ],     T = 1/beta in {1, 3, 10, 30}

and evaluated with its mean action. ``weighting="binary"`` uses w = 1[A >= 0] instead (CFGRL's labels in AWR's
policy class; an experiment of chapter 4), and T = 0 gives w = 1: Gaussian behaviour cloning. Its optimum is pi ∝ pi_hat exp(T A) (chapter 1): the same improvement
operator CFGRL samples with guidance, reached by weighting instead. A temperature sweep is several AWR agents
sharing one critic and one batch.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from ..networks import default_device, mlp
from ..train import make_adam
from . import ActorAgent, merge_config


class AWRAgent(ActorAgent):
    """The Gaussian actor: ``update(batch, advantage)`` trains it, ``sample_actions(obs)`` acts."""

    KIND = "awr_agent"

    def __init__(self, obs_dim: int, action_dim: int, config: dict | None = None, device=None):
        c = merge_config(CONFIG, config, "AWR")
        super().__init__(obs_dim, action_dim, c)
        if not (math.isfinite(c["temperature"]) and c["temperature"] >= 0):
            raise ValueError(f"temperature must be a finite number >= 0, got {c['temperature']!r}")
        if c["weighting"] not in ("exp", "binary"):
            raise ValueError(f"weighting must be 'exp' or 'binary', got {c['weighting']!r}")
        self.mean_net = mlp(obs_dim, c["hidden_dims"], action_dim, c["activation"], c["layer_norm"])
        self.log_std = nn.Parameter(torch.zeros(action_dim))
        self.to(default_device(device))
        self.optimizer = make_adam(self.parameters(), c["lr"])

    def distribution(self, obs) -> torch.distributions.Normal:
        log_std = self.log_std.clamp(self.config["log_std_min"], self.config["log_std_max"])
        # no argument validation: it costs a host sync per step and cannot fail here (std = exp(.) > 0)
        return torch.distributions.Normal(self.mean_net(obs), log_std.exp(), validate_args=False)

    # -------------------------------------------------------------------------------------------------- losses
    def weights(self, advantage: torch.Tensor, temperature: float | None = None) -> torch.Tensor:
        """w_i = min(exp(T A_i), max_weight), at this agent's T or at ``temperature``; 1[A_i >= 0] if binary."""
        if self.config["weighting"] == "binary":
            return (advantage >= 0).float()
        T = self.config["temperature"] if temperature is None else temperature
        return torch.exp(advantage * T).clamp(max=self.config["max_weight"])

    def per_sample_loss(self, batch: dict, advantage: torch.Tensor) -> torch.Tensor:
        """l_i = -w_i log pi(a_i|s_i), shape (B,): the terms whose mean is the loss (chapter 5's diagnostics)."""
        return -self.weights(advantage) * self.distribution(batch["observations"]).log_prob(batch["actions"]).sum(-1)

    def actor_loss(self, batch: dict, advantage: torch.Tensor) -> tuple[torch.Tensor, dict]:
        loss = self.per_sample_loss(batch, advantage).mean()
        w = self.weights(advantage)
        return loss, {"loss": loss.detach(), "weight_mean": w.mean(), "weight_max": w.max()}

    # ----------------------------------------------------------------------------------------------- acting
    @torch.no_grad()
    def sample_actions(self, obs, *, deterministic: bool = True, generator=None) -> torch.Tensor:
        """The mean action (the AWR convention, ``deterministic=True``) or a draw from the Gaussian, clipped to
        [-1, 1]."""
        if deterministic:
            return self.mean_net(obs).clamp(-1.0, 1.0)
        d = self.distribution(obs)
        noise = torch.randn(d.mean.shape, generator=generator, device=d.mean.device)
        return (d.mean + d.stddev * noise).clamp(-1.0, 1.0)


CONFIG = dict(
    hidden_dims=(512, 512, 512),  # widths of the mean network (official: 3x512)
    activation="mish",            # hidden activation (official: mish)
    layer_norm=True,              # LayerNorm after each hidden activation
    lr=3e-4,                      # Adam learning rate
    temperature=3.0,              # T = 1/beta in w = exp(T A) (official sweep: 1, 3, 10, 30)
    max_weight=100.0,             # weights are clipped at this value
    log_std_min=-5.0,             # the state-independent log-std is clipped to [log_std_min, log_std_max]
    log_std_max=2.0,
    weighting="exp",              # "exp": min(exp(T A), max_weight) (AWR); "binary": 1[A >= 0] (CFGRL's labels)
)
