"""Goal-conditioned CFGRL: one flow network for pi_hat(a | s, g) and pi_hat(a | s), guided towards the goal.

The goal plays the role of the optimality variable (paper, Section 5.2): with goals g drawn from the future of the
same trajectory (hindsight relabelling), flow behaviour cloning on (s, a, g) learns

    pi_hat(a | s, g)  ∝  pi_hat(a | s) p^gamma(g | s, a)                                    (Eq. 18)

where p^gamma(g | s, a) is the probability that acting a in s leads to g: goal-conditioned behaviour cloning (GCBC) is
CFGRL at w = 1. Guidance with the same network and a learned null goal samples

    pi_w(a | s, g)  ∝  pi_hat(a | s) p^gamma(g | s, a)^w                                    (Eq. 19)

and w > 1 sharpens towards actions that reach g; no value function is trained. Training is the standard
classifier-free loss (:func:`cfgrl_core.flow.dropout_cfg_loss`): the goal is replaced by the learned null with
probability ``p_null`` (official: 0.1), t ~ U[0, 1).
"""
from __future__ import annotations

import torch

from ..flow import dropout_cfg_loss
from ..networks import FlowPolicyConfig, default_device
from ..policy import FlowPolicy
from ..train import make_adam
from . import Agent, merge_config


class GoalCFGRLAgent(Agent):
    """The goal-conditioned flow: ``update(batch)`` with ``batch["goals"]`` trains it, ``sample_actions`` samples."""

    KIND = "goal_cfgrl_agent"

    def __init__(self, obs_dim: int, action_dim: int, config: dict | None = None, device=None,
                 generator: torch.Generator | None = None):
        c = merge_config(CONFIG, config, "goal CFGRL")
        super().__init__(obs_dim, action_dim, c)
        if not 0.0 <= c["p_null"] <= 1.0:
            raise ValueError(f"p_null must lie in [0, 1], got {c['p_null']!r}")
        device = default_device(device)
        self.policy = FlowPolicy(FlowPolicyConfig(
            obs_dim=self.obs_dim, action_dim=self.action_dim, condition="goal", goal_dim=c["goal_dim"],
            hidden_dims=c["hidden_dims"], activation=c["activation"], layer_norm=c["layer_norm"],
            time_embedding="scalar", init="xavier_uniform", sample_steps=c["sample_steps"]), device=device)
        self.optimizer = make_adam(self.policy.parameters(), c["lr"])
        self.generator = generator if generator is not None else torch.Generator(device=device).manual_seed(0)

    def loss(self, batch: dict) -> tuple[torch.Tensor, dict]:
        """E||v(s, x_t, t, g~) - (a - x_0)||^2 with g~ the null goal with probability p_null."""
        return dropout_cfg_loss(self.policy, batch["observations"], batch["actions"], batch["goals"],
                                p_null=self.config["p_null"], generator=self.generator)

    def update(self, batch: dict) -> dict:
        """One Adam step on the loss. Returns detached metric tensors (no host sync)."""
        loss, metrics = self.loss(batch)
        self.optimizer_step(loss)
        return metrics

    @torch.no_grad()
    def sample_actions(self, obs, goals, w=1.0, *, generator=None, noise_scale: float = 1.0) -> torch.Tensor:
        """Actions of pi_w(a | s, g) for a batch of states and goals; ``w`` a number or one per state."""
        return self.policy.sample(obs, goals, w, generator=generator, noise_scale=noise_scale)


CONFIG = dict(
    goal_dim=2,                        # the goal is a state's (x, y) in pointmaze
    hidden_dims=(512, 512, 512, 512),  # widths of the velocity MLP (official: 4x512)
    activation="gelu",                 # hidden activation (official: GELU, no LayerNorm, Xavier-uniform init)
    layer_norm=False,
    lr=3e-4,                           # Adam learning rate
    p_null=0.1,                        # probability that the goal is replaced by the learned null goal
    sample_steps=16,                   # Euler steps when sampling (official goal-conditioned runs: 16)
)
