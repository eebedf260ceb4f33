"""Implicit Q-learning critic (Kostrikov, Nair, Levine, 2022), as CFGRL uses it for offline RL.

Twin Q heads and one V, with the official CFGRL defaults (3x512, mish, LayerNorm, gamma 0.99, expectile 0.9,
Polyak tau 0.005, Adam 3e-4):

    L_V = E[ |kappa - 1(u < 0)| u^2 ],        u = min_i Qbar_i(s, a) - V(s)       (expectile kappa = 0.9)
    L_Q = E[ sum_i (Q_i(s, a) - r - gamma m V(s'))^2 ]                          (m = mask: 1, DMC has no terminals)
    Qbar <- (1 - tau) Qbar + tau Q.

The advantage A(s, a) = min_i Qbar_i(s, a) - V(s) labels the data for CFGRL: o = 1[A >= 0] (paper, Eq. 15),
and weights it for AWR: min(exp(T A), 100).
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from .configs import merge_config
from .mlp import mlp

IQL_CONFIG = dict(hidden_dims=(512, 512, 512), activation="mish", layer_norm=True, gamma=0.99, expectile=0.9,
                  tau=0.005, lr=3e-4)


def expectile_loss(diff: torch.Tensor, expectile: float) -> torch.Tensor:
    """E[|kappa - 1(diff < 0)| diff^2]: asymmetric least squares, an upper expectile of the target for kappa > 0.5."""
    weight = torch.where(diff < 0, 1.0 - expectile, expectile)
    return (weight * diff**2).mean()


class IQLCritic(nn.Module):
    def __init__(self, obs_dim: int, action_dim: int, **config):
        super().__init__()
        self.config = c = merge_config(IQL_CONFIG, config, "IQL")
        if not 0.0 < c["expectile"] < 1.0:
            raise ValueError(f"expectile must lie in (0, 1), got {c['expectile']!r}")
        if not 0.0 <= c["gamma"] < 1.0:
            raise ValueError(f"gamma must lie in [0, 1), got {c['gamma']!r}")
        self.q = nn.ModuleList([mlp(obs_dim + action_dim, c["hidden_dims"], 1, c["activation"], c["layer_norm"])
                                for _ in range(2)])
        self.q_target = copy.deepcopy(self.q).requires_grad_(False)
        self.v = mlp(obs_dim, c["hidden_dims"], 1, c["activation"], c["layer_norm"])

    def q_values(self, obs, actions, target: bool = True) -> torch.Tensor:
        """min_i Q_i(s, a), from the target heads by default; shape (B,)."""
        sa = torch.cat([obs, actions], -1)
        heads = self.q_target if target else self.q
        return torch.min(heads[0](sa), heads[1](sa)).squeeze(-1)

    def value(self, obs) -> torch.Tensor:
        return self.v(obs).squeeze(-1)

    @torch.no_grad()
    def advantage(self, obs, actions) -> torch.Tensor:
        """A(s, a) = min_i Qbar_i(s, a) - V(s)."""
        return self.q_values(obs, actions) - self.value(obs)

    def loss(self, batch: dict) -> tuple[torch.Tensor, dict]:
        """L_V + L_Q on a batch with observations, actions, rewards, next_observations, masks."""
        c = self.config
        obs, act = batch["observations"], batch["actions"]
        with torch.no_grad():
            q_target = self.q_values(obs, act)
            next_v = self.value(batch["next_observations"])
            y = batch["rewards"] + c["gamma"] * batch["masks"] * next_v
        v = self.value(obs)
        v_loss = expectile_loss(q_target - v, c["expectile"])
        sa = torch.cat([obs, act], -1)
        q1, q2 = self.q[0](sa).squeeze(-1), self.q[1](sa).squeeze(-1)
        q_loss = ((q1 - y) ** 2).mean() + ((q2 - y) ** 2).mean()
        return v_loss + q_loss, {"v_loss": v_loss.detach(), "q_loss": q_loss.detach(), "v_mean": v.detach().mean(),
                                 "q_mean": q1.detach().mean()}

    @torch.no_grad()
    def update_target(self) -> None:
        """Polyak averaging Qbar <- (1 - tau) Qbar + tau Q."""
        for p, tp in zip(self.q.parameters(), self.q_target.parameters()):
            tp.lerp_(p, self.config["tau"])


def critic_step(critic: IQLCritic, optimizer: torch.optim.Optimizer, batch: dict) -> dict:
    """One Adam step on L_V + L_Q, then the Polyak update of the target Qs. Returns detached metrics."""
    loss, metrics = critic.loss(batch)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    critic.update_target()
    return metrics


def critic_from_agent_config(obs_dim: int, action_dim: int, config: dict, device) -> IQLCritic:
    """The critic an agent's config dict describes (keys critic_hidden, activation, layer_norm, gamma, ...)."""
    return IQLCritic(obs_dim, action_dim, hidden_dims=config["critic_hidden"], activation=config["activation"],
                     layer_norm=config["layer_norm"], gamma=config["gamma"], expectile=config["expectile"],
                     tau=config["tau"]).to(device)
