"""AWR for offline RL: the same IQL critic, a Gaussian actor fitted by advantage-weighted regression (the baseline).

Each update: one IQL critic step (+ Polyak), then one actor step on  -E[min(exp(T A), 100) log pi(a|s)].
Evaluated with the mean action.
"""
from __future__ import annotations

import torch

from ..awr import GaussianActor
from ..configs import merge_config
from ..device import default_device
from ..iql import critic_from_agent_config, critic_step
from ..train import make_adam
from .cfgrl import CONFIG as CFGRL_CONFIG

CONFIG = dict(
    actor_hidden=(512, 512, 512), critic_hidden=(512, 512, 512), activation="mish", layer_norm=True, lr=3e-4,
    temperature=3.0, gamma=CFGRL_CONFIG["gamma"], expectile=CFGRL_CONFIG["expectile"], tau=CFGRL_CONFIG["tau"],
)


class AWRAgent:
    def __init__(self, obs_dim: int, action_dim: int, config: dict | None = None, device=None, seed: int = 0):
        self.config = c = merge_config(CONFIG, config, "AWR")
        self.device = default_device(device)
        torch.manual_seed(seed)
        self.critic = critic_from_agent_config(obs_dim, action_dim, c, self.device)
        self.actor = GaussianActor(obs_dim, action_dim, hidden_dims=c["actor_hidden"], activation=c["activation"],
                                   layer_norm=c["layer_norm"], temperature=c["temperature"]).to(self.device)
        self.critic_opt = make_adam(self.critic.parameters(), c["lr"])
        self.actor_opt = make_adam(self.actor.parameters(), c["lr"])

    def update(self, batch: dict) -> dict:
        metrics = critic_step(self.critic, self.critic_opt, batch)

        adv = self.critic.advantage(batch["observations"], batch["actions"])
        actor_loss, actor_metrics = self.actor.loss(batch["observations"], batch["actions"], adv)
        self.actor_opt.zero_grad(set_to_none=True)
        actor_loss.backward()
        self.actor_opt.step()
        return {**metrics, **actor_metrics}

    @torch.no_grad()
    def act(self, obs) -> torch.Tensor:
        return self.actor.act(obs)
