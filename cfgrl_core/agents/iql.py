"""Implicit Q-learning critic (Kostrikov, Nair, Levine, 2022), as CFGRL uses it for offline RL.

Twin Q heads and one V; each update is one Adam step on L_V + L_Q, then Polyak averaging of the target Qs:

    L_V = E[ |kappa - 1(u < 0)| u^2 ],        u = min_i Qbar_i(s, a) - V(s)       (expectile kappa = 0.9)
    L_Q = E[ sum_i (Q_i(s, a) - r - gamma m V(s'))^2 ]                          (m = mask: 1, DMC has no terminals)
    Qbar <- (1 - tau) Qbar + tau Q.

The advantage A(s, a) = min_i Qbar_i(s, a) - V(s) is what the actors take: CFGRL labels the data with it,
o = 1[A >= 0] (paper, Eq. 15), AWR weights it, min(exp(T A), 100).
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from ..networks import EnsembleMLP, compiled, default_device, mlp
from ..train import make_adam
from . import Agent, merge_config


def expectile_loss(diff: torch.Tensor, expectile: float) -> torch.Tensor:
    """E[|kappa - 1(diff < 0)| diff^2]: asymmetric least squares, an upper expectile of the target for kappa > 0.5."""
    weight = torch.where(diff < 0, 1.0 - expectile, expectile)
    return (weight * diff**2).mean()


class IQLAgent(Agent):
    """The critic: ``update(batch)`` trains it, ``advantage(obs, actions)`` is what it gives the actors."""

    KIND = "iql_critic"

    def __init__(self, obs_dim: int, action_dim: int, config: dict | None = None, device=None):
        c = merge_config(CONFIG, config, "IQL")
        super().__init__(obs_dim, action_dim, c)
        if not 0.0 < c["expectile"] < 1.0:
            raise ValueError(f"expectile must lie in (0, 1), got {c['expectile']!r}")
        if not 0.0 <= c["gamma"] < 1.0:
            raise ValueError(f"gamma must lie in [0, 1), got {c['gamma']!r}")
        q_shape = (obs_dim + action_dim, c["hidden_dims"], 1, c["activation"], c["layer_norm"])
        # the twin heads as two networks, or as one batched pair (same maths and state_dict, fewer kernels)
        self.q = EnsembleMLP(2, *q_shape) if c["batched_heads"] else nn.ModuleList([mlp(*q_shape) for _ in range(2)])
        self.q_target = copy.deepcopy(self.q).requires_grad_(False)
        self.v = mlp(obs_dim, c["hidden_dims"], 1, c["activation"], c["layer_norm"])
        self.to(default_device(device))
        self.optimizer = make_adam(self.parameters(), c["lr"])

    # ------------------------------------------------------------------------------------------------ networks
    def q_heads(self, sa, target: bool = False) -> torch.Tensor:
        """[Q_1(s, a), Q_2(s, a)] of the input [s, a], shape (2, B); the target heads with ``target``."""
        heads = self.q_target if target else self.q
        if isinstance(heads, EnsembleMLP):
            return heads(sa).squeeze(-1)
        return torch.stack([head(sa).squeeze(-1) for head in heads])

    def q_values(self, obs, actions, target: bool = True) -> torch.Tensor:
        """min_i Q_i(s, a), from the target heads by default; shape (B,)."""
        q = self.q_heads(torch.cat([obs, actions], -1), target)
        return torch.min(q[0], q[1])

    def value(self, obs) -> torch.Tensor:
        return self.v(obs).squeeze(-1)

    @torch.no_grad()
    def advantage(self, obs, actions) -> torch.Tensor:
        """A(s, a) = min_i Qbar_i(s, a) - V(s)."""
        return self.q_values(obs, actions) - self.value(obs)

    @torch.no_grad()
    def on_dataset(self, observations, actions, chunk: int = 65536) -> dict:
        """Q = min_i Qbar_i(s, a), V(s) and A = Q - V on every transition of a dataset, in chunks of ``chunk`` rows
        (tensors on the critic's device)."""
        device = next(self.parameters()).device
        obs, act = torch.as_tensor(observations, device=device), torch.as_tensor(actions, device=device)
        q = torch.cat([self.q_values(obs[i:i + chunk], act[i:i + chunk]) for i in range(0, len(obs), chunk)])
        v = torch.cat([self.value(obs[i:i + chunk]) for i in range(0, len(obs), chunk)])
        return {"q": q, "v": v, "advantage": q - v}

    # -------------------------------------------------------------------------------------------------- losses
    def value_loss(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """L_V, and V(s) on the batch."""
        with torch.no_grad():
            q_target = self.q_values(batch["observations"], batch["actions"])
        v = self.value(batch["observations"])
        return expectile_loss(q_target - v, self.config["expectile"]), v

    def critic_loss(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """L_Q, and Q_1(s, a) on the batch."""
        with torch.no_grad():
            next_v = self.value(batch["next_observations"])
            y = batch["rewards"] + self.config["gamma"] * batch["masks"] * next_v
        sa = torch.cat([batch["observations"], batch["actions"]], -1)
        q1, q2 = self.q_heads(sa)
        return ((q1 - y) ** 2).mean() + ((q2 - y) ** 2).mean(), q1

    def loss(self, batch: dict) -> tuple[torch.Tensor, dict]:
        """L_V + L_Q, and detached metrics."""
        v_loss, v = self.value_loss(batch)
        q_loss, q1 = self.critic_loss(batch)
        return v_loss + q_loss, {"v_loss": v_loss.detach(), "q_loss": q_loss.detach(), "v_mean": v.detach().mean(),
                                 "q_mean": q1.detach().mean()}

    def compile(self) -> "IQLAgent":
        self._loss = compiled(self.loss, "IQLAgent.loss")
        return self

    # ------------------------------------------------------------------------------------------------- update
    def update(self, batch: dict) -> dict:
        """One Adam step on L_V + L_Q, then Polyak on the target Qs. Returns detached metric tensors (no host sync)."""
        loss, metrics = getattr(self, "_loss", self.loss)(batch)
        self.optimizer_step(loss)
        with torch.no_grad():
            torch._foreach_lerp_(list(self.q_target.parameters()), list(self.q.parameters()), self.config["tau"])
        return metrics


CONFIG = dict(
    hidden_dims=(512, 512, 512),  # widths of each Q head and of V (official: 3x512)
    activation="mish",            # hidden activation (official: mish)
    layer_norm=True,              # LayerNorm after each hidden activation (official: yes)
    lr=3e-4,                      # Adam learning rate
    gamma=0.99,                   # discount
    expectile=0.9,                # kappa of the V loss: V tracks an upper expectile of Qbar
    tau=0.005,                    # Polyak rate of the target Qs
    batched_heads=False,          # the twin Q heads as one batched network (faster; rounding differs in last bits)
)
