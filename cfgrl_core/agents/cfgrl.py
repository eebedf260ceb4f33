"""CFGRL for offline RL: a guided flow actor trained on optimality labels from a critic's advantages.

Each update on a batch (s, a, r, s', m) with advantages A(s, a) from a critic (:mod:`.iql`):
  1. labels   o = 1[A(s, a) >= 0]                                                           (paper, Eq. 15)
  2. loss     1[o=1] ||v(s, x_t, t, o=1) - u||^2 + lambda ||v(s, x_t, t, null) - u||^2       (the official loss)
  3. one Adam step.
At test time  pi_w ∝ pi_hat p(o=1|s,a)^w  is sampled with guidance weight w (``sample_actions``): w = 0 is flow
behaviour cloning, w = 1 the conditional policy, w > 1 extrapolates; no retraining between them.

``weighting="exp"`` (an experiment of chapter 4, not the paper's method) trains the conditional branch with AWR's
weights f(A) = min(exp(T A), max_weight) instead of 1[A >= 0]: its optimum is pi_hat f(A) / Z, and guidance then
samples pi_hat f(A)^w (Theorem 1 holds for any non-decreasing f), which separates "flow vs Gaussian" from
"guidance vs weighting".
"""
from __future__ import annotations

import numpy as np
import torch

from ..flow import OPTIMAL_LABEL, draw_noise, official_cfgrl_loss, official_cfgrl_terms
from ..networks import FlowPolicyConfig, compiled, default_device
from ..policy import FlowPolicy
from ..train import make_adam
from . import ActorAgent, merge_config


def optimality_labels(advantage):
    """o = 1[A(s, a) >= 0] (paper, Eq. 15): 1 (``OPTIMAL_LABEL``) where the action is at least as good as the data's
    policy on average, else 0; integers of the advantage's shape (a tensor, or an array for an array)."""
    if isinstance(advantage, np.ndarray):
        return (advantage >= 0).astype(np.int64)
    return (advantage >= 0).long()


class CFGRLAgent(ActorAgent):
    """The flow actor: ``update(batch, advantage)`` trains it, ``sample_actions(obs, w)`` samples pi_w."""

    KIND = "cfgrl_agent"

    def __init__(self, obs_dim: int, action_dim: int, config: dict | None = None, device=None,
                 generator: torch.Generator | None = None):
        c = merge_config(CONFIG, config, "CFGRL")
        super().__init__(obs_dim, action_dim, c)
        if c["weighting"] not in WEIGHTINGS:
            raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {c['weighting']!r}")
        device = default_device(device)
        self.policy = FlowPolicy(FlowPolicyConfig(
            obs_dim=self.obs_dim, action_dim=self.action_dim, hidden_dims=c["hidden_dims"],
            activation=c["activation"], layer_norm=c["layer_norm"], time_embed_dim=c["time_embed_dim"],
            label_embed_dim=c["label_embed_dim"], sample_steps=c["sample_steps"]), device=device)
        self.optimizer = make_adam(self.policy.parameters(), c["lr"])
        # the noise x_0 and times t of the loss; the runner passes its one seeded generator
        self.generator = generator if generator is not None else torch.Generator(device=device).manual_seed(0)

    # -------------------------------------------------------------------------------------------------- losses
    def condition_weights(self, advantage: torch.Tensor) -> torch.Tensor:
        """The weight of each sample's conditional term: 1[A >= 0] (CFGRL), or min(exp(T A), max_weight)."""
        if self.config["weighting"] == "binary":
            return optimality_labels(advantage).float()
        return torch.exp(advantage * self.config["temperature"]).clamp(max=self.config["max_weight"])

    def actor_loss(self, batch: dict, advantage: torch.Tensor, noise=None) -> tuple[torch.Tensor, dict]:
        """The official CFGRL loss on the batch, with labels o = 1[A >= 0] (:func:`cfgrl_core.flow.official_cfgrl_loss`);
        with ``weighting="exp"`` the conditional term is weighted by f(A) instead. ``noise=(x_0, t)``: the draw to use
        (default: drawn from the agent's generator)."""
        if self.config["weighting"] == "binary":
            return official_cfgrl_loss(self.policy, batch["observations"], batch["actions"],
                                       optimality_labels(advantage), uncond_weight=self.config["uncond_weight"],
                                       generator=self.generator, time_bins=self.config["time_bins"], noise=noise)
        loss = self.per_sample_loss(batch, advantage, noise).mean()
        return loss, {"loss": loss.detach()}

    def compile(self) -> "CFGRLAgent":
        """The loss compiled as one graph: (x_0, t) are drawn eagerly from the generator (the same stream as in eager
        mode) and passed in, since a seeded generator cannot enter a compiled graph."""
        inner = compiled(lambda batch, advantage, x0, t: self.actor_loss(batch, advantage, (x0, t)),
                         "CFGRLAgent.actor_loss")

        def loss(batch, advantage):
            return inner(batch, advantage, *draw_noise(batch["actions"], self.generator, self.config["time_bins"]))

        self._actor_loss = loss
        return self

    def per_sample_loss(self, batch: dict, advantage: torch.Tensor, noise=None) -> torch.Tensor:
        """l_i = 1[o_i = 1] ||v(s_i, x_t, t, o=1) - u||^2 + lambda ||v(s_i, x_t, t, null) - u||^2, shape (B,): the
        terms whose mean is the loss (one draw of (x_0, t) per sample; chapter 5's gradient diagnostics)."""
        positive, cond_err, uncond_err = official_cfgrl_terms(
            self.policy, batch["observations"], batch["actions"], optimality_labels(advantage),
            generator=self.generator, time_bins=self.config["time_bins"], noise=noise)
        return self.condition_weights(advantage) * cond_err + self.config["uncond_weight"] * uncond_err

    # ----------------------------------------------------------------------------------------------- acting
    @torch.no_grad()
    def sample_actions(self, obs, w=1.0, *, generator=None, seed=None, noise_scale: float = 1.0) -> torch.Tensor:
        """Actions of pi_w for a batch of states; ``w`` a number or one per state (many w evaluated in one pass)."""
        return self.policy.sample(obs, OPTIMAL_LABEL, w, generator=generator, seed=seed, noise_scale=noise_scale)


CONFIG = dict(
    hidden_dims=(512, 512, 512),  # widths of the velocity MLP (official: 3x512)
    activation="mish",            # hidden activation (official: mish)
    layer_norm=True,              # LayerNorm after each hidden activation
    time_embed_dim=16,            # sinusoidal embedding of the flow time t (official: 16)
    label_embed_dim=32,           # learned embedding of o and of the null label (official: 32)
    lr=3e-4,                      # Adam learning rate
    uncond_weight=0.1,            # lambda, the weight of the unconditional branch in the official loss
    time_bins=32,                 # t drawn from {0, 1/32, ..., 1} in training (official); None: t ~ U[0, 1)
    sample_steps=32,              # Euler steps when sampling (official offline RL: 32)
    weighting="binary",           # conditional-branch weights: "binary" 1[A >= 0] (CFGRL), "exp" min(exp(T A), max)
    temperature=1.0,              # T of the "exp" weighting (unused by "binary")
    max_weight=100.0,             # clip of the "exp" weighting
)

WEIGHTINGS = ("binary", "exp")
