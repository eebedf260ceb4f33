"""Offline-RL agents, one per file in the style of OGBench's ``impls/agents``: each holds its networks and its
optimiser, writes its losses as methods, takes one gradient step with ``update``, and ends with its ``CONFIG``.

  * :mod:`.iql`    the IQL critic: Q, V and the advantage A(s, a) = Q(s, a) - V(s) the actors take;
  * :mod:`.cfgrl`  the guided flow actor: labels o = 1[A >= 0], the official CFGRL loss, sampling at any w;
  * :mod:`.awr`    the Gaussian AWR actor: weights min(exp(T A), 100), the mean action.

The runner (:mod:`cfgrl_core.run`) only calls ``update``: the critic's ``update(batch)``, each actor's
``update(batch, advantage)``.
"""
from __future__ import annotations

import torch
from torch import nn

from ..networks import compiled


def merge_config(defaults: dict, overrides: dict | None, what: str) -> dict:
    """{**defaults, **overrides}; raises ValueError naming any key ``defaults`` does not have."""
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - set(defaults))
    if unknown:
        raise ValueError(f"unknown {what} config keys {unknown}; known: {sorted(defaults)}")
    return {**defaults, **overrides}


def resolve_preset(config, presets: dict, agent_configs: dict, what: str, positive_ints=()) -> dict:
    """A runner's full config: a preset's name, or a dict of overrides of a preset (``"preset"``, default smoke).
    Keys named in ``agent_configs`` are merged into those agents' own configs (the preset's, then the overrides);
    unknown keys are refused, and every key of ``positive_ints`` must be an integer >= 1."""
    if isinstance(config, str):
        if config not in presets:
            raise ValueError(f"unknown config {config!r}; known: {sorted(presets)}")
        config = {"preset": config}
    config = dict(config)
    preset = config.pop("preset", "smoke")
    if preset not in presets:
        raise ValueError(f"unknown preset {preset!r}; known: {sorted(presets)}")
    base = presets[preset]
    agent_overrides = {k: config.pop(k) for k in agent_configs if k in config}
    cfg = merge_config(base, config, what)
    for name, defaults in agent_configs.items():
        cfg[name] = merge_config(defaults, {**base[name], **(agent_overrides.get(name) or {})}, name)
    for key in positive_ints:
        if isinstance(cfg[key], bool) or not isinstance(cfg[key], int) or cfg[key] < 1:
            raise ValueError(f"config value {key} must be an integer >= 1, got {cfg[key]!r}")
    return cfg


class Agent(nn.Module):
    """What every agent shares: its sizes and full config (its *spec*, from which a checkpoint rebuilds it) and one
    optimiser step. Subclasses build their networks and ``self.optimizer``."""

    KIND = "agent"

    def __init__(self, obs_dim: int, action_dim: int, config: dict):
        super().__init__()
        self.obs_dim, self.action_dim, self.config = int(obs_dim), int(action_dim), config

    def compile(self) -> "Agent":
        """Run this agent's loss compiled (:func:`cfgrl_core.networks.compiled`): same maths, fewer kernels."""
        raise NotImplementedError

    def spec(self) -> dict:
        return {"obs_dim": self.obs_dim, "action_dim": self.action_dim, "config": self.config}

    @classmethod
    def from_spec(cls, spec: dict, device=None) -> "Agent":
        return cls(spec["obs_dim"], spec["action_dim"], spec["config"], device=device)

    def optimizer_step(self, loss: torch.Tensor) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()


class ActorAgent(Agent):
    """An actor learns from a critic's advantages: ``update(batch, advantage)`` is one step on its ``actor_loss``."""

    def actor_loss(self, batch: dict, advantage: torch.Tensor) -> tuple[torch.Tensor, dict]:
        raise NotImplementedError

    def compile(self) -> "ActorAgent":
        self._actor_loss = compiled(self.actor_loss, f"{type(self).__name__}.actor_loss")
        return self

    def update(self, batch: dict, advantage: torch.Tensor) -> dict:
        """One Adam step on the actor loss. Returns detached metric tensors (no host sync)."""
        loss, metrics = getattr(self, "_actor_loss", self.actor_loss)(batch, advantage)
        self.optimizer_step(loss)
        return metrics
