"""Gaussian goal-conditioned behaviour cloning (GCBC): OGBench's baseline for the goal-conditioned experiments.

A Gaussian policy pi(a | s, g) on the concatenation [s, g] with a state-independent log-std, trained by

    L = - E[ log pi(a | s, g) ],     g drawn from the future of the same trajectory (hindsight relabelling),

and evaluated with its mean action. It is the AWR actor (:mod:`.awr`) at T = 0 (every weight 1) with the goal appended
to its input, so it shares that file's Gaussian and loss. OGBench's GCBC (``impls/agents/gcbc.py``): 3x512 GELU MLP
without LayerNorm, Adam 3e-4, batch 1024, a constant std of 1; here the log-std is learned as in the AWR actor, which
leaves the evaluated mean action's least-squares target unchanged.
"""
from __future__ import annotations

import torch

from .awr import CONFIG as AWR_CONFIG
from .awr import AWRAgent
from . import merge_config


class GCBCAgent(AWRAgent):
    """``update(batch)`` with ``batch["goals"]`` trains it, ``sample_actions(obs, goals)`` acts."""

    KIND = "gcbc_agent"

    def __init__(self, obs_dim: int, action_dim: int, config: dict | None = None, device=None):
        c = merge_config(CONFIG, config, "GCBC")
        if c["temperature"] != 0.0 or c["weighting"] != "exp":
            raise ValueError("GCBC is behaviour cloning: temperature must be 0 and weighting 'exp' (every weight 1)")
        self.goal_dim = int(c["goal_dim"])
        super().__init__(obs_dim + self.goal_dim, action_dim, {k: v for k, v in c.items() if k != "goal_dim"},
                         device)
        self.obs_dim, self.config = int(obs_dim), c

    def spec(self) -> dict:
        return {"obs_dim": self.obs_dim, "action_dim": self.action_dim, "config": self.config}

    def update(self, batch: dict) -> dict:
        """One Adam step on -E[log pi(a | s, g)]. Returns detached metric tensors (no host sync)."""
        inputs = {"observations": torch.cat([batch["observations"], batch["goals"]], -1), "actions": batch["actions"]}
        return super().update(inputs, torch.zeros(len(batch["actions"]), device=batch["actions"].device))

    @torch.no_grad()
    def sample_actions(self, obs, goals, *, deterministic: bool = True, generator=None) -> torch.Tensor:
        return super().sample_actions(torch.cat([obs, goals], -1), deterministic=deterministic, generator=generator)


CONFIG = {**AWR_CONFIG,
          "hidden_dims": (512, 512, 512),   # OGBench's GCBC actor: 3x512, GELU, no LayerNorm
          "activation": "gelu",
          "layer_norm": False,
          "temperature": 0.0,   # every weight exp(0 * A) = 1: behaviour cloning (the only value GCBC accepts)
          "goal_dim": 2}        # the goal is a state's (x, y) in pointmaze; the rest as the AWR actor's config
