"""CFGRL for offline RL: an IQL critic and a guided flow policy, trained jointly (the official recipe).

Each update on a batch (s, a, r, s', m):
  1. critic: one Adam step on the IQL loss (:mod:`cfgrl_core.iql`), then Polyak on the target Qs;
  2. labels: o = 1[A(s, a) >= 0] with A = min_i Qbar_i(s, a) - V(s) from the critic (paper, Eq. 15);
  3. actor: one Adam step on  1[o=1] ||v(s, x_t, t, o=1) - u||^2 + lambda ||v(s, x_t, t, null) - u||^2.
At test time  pi_w ∝ pi_hat p(o=1|s,a)^w  is sampled with guidance weight w (``agent.act``).
"""
from __future__ import annotations

import torch

from ..configs import merge_config
from ..device import default_device
from ..iql import IQL_CONFIG, critic_from_agent_config, critic_step
from ..losses import official_cfgrl_loss
from ..network import FlowPolicyConfig
from ..policy import FlowPolicy
from ..train import make_adam

CONFIG = dict(
    actor_hidden=(512, 512, 512), critic_hidden=(512, 512, 512), activation="mish", layer_norm=True,
    lr=3e-4, uncond_weight=0.1, time_bins=32, sample_steps=32,
    gamma=IQL_CONFIG["gamma"], expectile=IQL_CONFIG["expectile"], tau=IQL_CONFIG["tau"],
)


class CFGRLAgent:
    def __init__(self, obs_dim: int, action_dim: int, config: dict | None = None, device=None, seed: int = 0):
        self.config = c = merge_config(CONFIG, config, "CFGRL")
        self.device = default_device(device)
        torch.manual_seed(seed)
        self.critic = critic_from_agent_config(obs_dim, action_dim, c, self.device)
        self.policy = FlowPolicy(FlowPolicyConfig(obs_dim=obs_dim, action_dim=action_dim,
                                                  hidden_dims=c["actor_hidden"], activation=c["activation"],
                                                  layer_norm=c["layer_norm"], sample_steps=c["sample_steps"]),
                                 device=self.device)
        self.critic_opt = make_adam(self.critic.parameters(), c["lr"])
        self.actor_opt = make_adam(self.policy.parameters(), c["lr"])
        self.generator = torch.Generator(device=self.device).manual_seed(seed)

    def update(self, batch: dict) -> dict:
        """One joint step; ``batch`` tensors already on the agent's device. Returns detached metric tensors."""
        c = self.config
        metrics = critic_step(self.critic, self.critic_opt, batch)

        labels = (self.critic.advantage(batch["observations"], batch["actions"]) >= 0).long()
        actor_loss, actor_metrics = official_cfgrl_loss(
            self.policy, batch["observations"], batch["actions"], labels, uncond_weight=c["uncond_weight"],
            generator=self.generator, time_bins=c["time_bins"])
        self.actor_opt.zero_grad(set_to_none=True)
        actor_loss.backward()
        self.actor_opt.step()
        return {**metrics, **actor_metrics}

    @torch.no_grad()
    def act(self, obs, w, seed=None, generator=None) -> torch.Tensor:
        """Guided actions for a batch of states; w a number or one per state (evaluating many w at once)."""
        return self.policy.sample(obs, 1, w, seed=seed, generator=generator)
