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

from ..networks import EnsembleMLP, compiled, default_device, mlp
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



class AWRSweep(nn.Module):
    """A temperature sweep of AWR agents trained as one batched network (:class:`~cfgrl_core.networks.EnsembleMLP`):
    the same losses, one per member at its own T, summed (each member's gradient is its own loss's), and one Adam
    whose elementwise steps are the members' own. It trains copies of the agents' parameters and Adam moments:
    ``write_back()`` puts them into the agents (before they are saved, evaluated or read), so checkpoints, results and
    the agents themselves keep one format. Float rounding differs from stepping the agents one by one.

    ``update(batch, advantage)`` returns the metrics ``<name>_<metric>`` of every member, as the agents' own would.
    """

    def __init__(self, agents: dict[str, AWRAgent]):
        super().__init__()
        self.names, members = list(agents), list(agents.values())
        shape_keys = ("hidden_dims", "activation", "layer_norm", "lr", "log_std_min", "log_std_max")
        first = members[0]
        if any((m.obs_dim, m.action_dim, *(m.config[k] for k in shape_keys))
               != (first.obs_dim, first.action_dim, *(first.config[k] for k in shape_keys)) for m in members):
            raise ValueError(f"an AWR sweep needs agents of one shape and optimiser ({', '.join(shape_keys)})")
        c = first.config
        self.agents = members                       # a plain list: the agents are not parameters of the sweep
        self.mean_net = EnsembleMLP(len(members), first.obs_dim, c["hidden_dims"], first.action_dim,
                                    c["activation"], c["layer_norm"])
        self.log_std = nn.Parameter(torch.zeros(len(members), 1, first.action_dim))
        self.to(first.log_std.device)
        self.optimizer = make_adam(self.parameters(), c["lr"])
        self._pairs = [(agent, pairs) for agent, pairs in zip(members, self._member_pairs())]
        self.read_agents()

    def _member_pairs(self):
        """Per member, (agent parameter, view of it in the stacked tensors, stacked tensor, index)."""
        for k, agent in enumerate(self.agents):
            views = self.mean_net.member_parameters(k)
            stacked = {member: dict(self.mean_net.named_parameters())[name]
                       for name, member in self.mean_net._member_names.items()}
            pairs = [(p, views[n], stacked[n]) for n, p in agent.mean_net.named_parameters()]
            yield pairs + [(agent.log_std, self.log_std[k].reshape(-1), self.log_std)]

    @torch.no_grad()
    def read_agents(self) -> None:
        """Parameters and Adam moments from the agents into the stacked tensors."""
        states = [agent.optimizer.state for agent in self.agents]
        started = [all(p in st for p, _, _ in pairs) for st, (_, pairs) in zip(states, self._pairs)]
        for agent, pairs in self._pairs:
            for p, view, _ in pairs:
                view.copy_(p)
        if not any(started):
            return
        if not all(started):
            raise ValueError("the agents of an AWR sweep must all have taken the same number of Adam steps")
        steps = {float(st[p]["step"]) for st, (_, pairs) in zip(states, self._pairs) for p, _, _ in pairs}
        if len(steps) != 1:
            raise ValueError(f"the agents of an AWR sweep have taken different numbers of Adam steps: {sorted(steps)}")
        (agent0, pairs0), st0 = self._pairs[0], states[0]
        for stacked in self.parameters():
            step = next(st0[p]["step"] for p, _, s in pairs0 if s is stacked)
            self.optimizer.state[stacked] = {"step": step.clone(), "exp_avg": torch.zeros_like(stacked),
                                             "exp_avg_sq": torch.zeros_like(stacked)}
        for st, (_, pairs) in zip(states, self._pairs):
            for p, view, stacked in pairs:
                for key in ("exp_avg", "exp_avg_sq"):
                    self._view_of(self.optimizer.state[stacked][key], view, stacked).copy_(st[p][key])

    @torch.no_grad()
    def write_back(self) -> None:
        """Parameters and Adam moments from the stacked tensors into the agents and their optimisers."""
        for agent, pairs in self._pairs:
            for p, view, stacked in pairs:
                p.copy_(view)
                state = self.optimizer.state.get(stacked)
                if state:
                    agent.optimizer.state[p] = {"step": state["step"].clone(), **{
                        key: self._view_of(state[key], view, stacked).clone() for key in ("exp_avg", "exp_avg_sq")}}

    @staticmethod
    def _view_of(tensor, view, stacked):
        """The slice of ``tensor`` (shaped like ``stacked``) that ``view`` is of ``stacked``."""
        return tensor.as_strided(view.shape, view.stride(),
                                 tensor.storage_offset() + view.storage_offset() - stacked.storage_offset())

    def actor_loss(self, batch: dict, advantage: torch.Tensor) -> tuple[torch.Tensor, dict]:
        """The sum over members of -E[w_k(A) log pi_k(a|s)] (each :meth:`AWRAgent.per_sample_loss`, batched)."""
        first = self.agents[0]
        log_std = self.log_std.clamp(first.config["log_std_min"], first.config["log_std_max"])
        dist = torch.distributions.Normal(self.mean_net(batch["observations"]), log_std.exp(), validate_args=False)
        w = torch.stack([agent.weights(advantage) for agent in self.agents])             # (K, B)
        losses = (-w * dist.log_prob(batch["actions"]).sum(-1)).mean(-1)                  # (K,)
        metrics = {}
        for k, name in enumerate(self.names):
            metrics.update({f"{name}_loss": losses[k].detach(), f"{name}_weight_mean": w[k].mean(),
                            f"{name}_weight_max": w[k].max()})
        return losses.sum(), metrics

    def compile(self) -> "AWRSweep":
        self._actor_loss = compiled(self.actor_loss, "AWRSweep.actor_loss")
        return self

    def update(self, batch: dict, advantage: torch.Tensor) -> dict:
        """One Adam step of every member. Returns detached metric tensors (no host sync)."""
        loss, metrics = getattr(self, "_actor_loss", self.actor_loss)(batch, advantage)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return metrics

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
