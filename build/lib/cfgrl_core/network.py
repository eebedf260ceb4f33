"""The flow-matching velocity network v_theta(s, x_t, t, c).

An MLP over the concatenation [state, noised action x_t, time embedding, condition embedding],
with the condition switchable to a learned null value (classifier-free guidance needs both
v(s, x_t, t, c) and v(s, x_t, t, null) from the same weights).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import torch
from torch import nn

from .embeddings import GoalEmbedding, LabelEmbedding, ScalarTime, SinusoidalTimeEmbedding
from .mlp import ACTIVATIONS, mlp

CONDITIONS = ("label", "goal")
TIME_EMBEDDINGS = ("sinusoidal", "scalar")
INITS = ("default", "xavier_uniform")


@dataclass
class FlowPolicyConfig:
    """Everything that defines a flow policy's architecture (saved with its weights).

    Defaults follow the official offline-RL actor of CFGRL: 3x512 MLP, mish, LayerNorm,
    16-d sinusoidal time embedding, 32-d label embedding, 16 Euler steps at sampling time
    (the official offline-RL runs used 32; the goal-conditioned ones 16).
    For the goal-conditioned setting use ``condition="goal"``, ``activation="gelu"``,
    ``layer_norm=False``, ``time_embedding="scalar"``, ``init="xavier_uniform"``, hidden (512,)*4.
    """

    obs_dim: int
    action_dim: int
    condition: str = "label"
    num_labels: int = 2
    goal_dim: int = 0
    hidden_dims: tuple[int, ...] = (512, 512, 512)
    activation: str = "mish"
    layer_norm: bool = True
    time_embedding: str = "sinusoidal"
    time_embed_dim: int = 16
    label_embed_dim: int = 32
    init: str = "default"
    action_low: float = -1.0
    action_high: float = 1.0
    sample_steps: int = 16

    def __post_init__(self):
        self.hidden_dims = tuple(int(h) for h in self.hidden_dims)
        problems = []
        if not isinstance(self.obs_dim, int) or self.obs_dim < 0:
            problems.append(f"obs_dim must be an integer >= 0, got {self.obs_dim!r}")
        if not isinstance(self.action_dim, int) or self.action_dim < 1:
            problems.append(f"action_dim must be an integer >= 1, got {self.action_dim!r}")
        if self.condition not in CONDITIONS:
            problems.append(f"condition must be one of {CONDITIONS}, got {self.condition!r}")
        if self.condition == "label" and self.num_labels < 1:
            problems.append(f"num_labels must be >= 1, got {self.num_labels!r}")
        if self.condition == "goal" and self.goal_dim < 1:
            problems.append(f"goal_dim must be >= 1 when condition='goal', got {self.goal_dim!r}")
        if not self.hidden_dims or min(self.hidden_dims) < 1:
            problems.append(f"hidden_dims must be a non-empty tuple of positive widths, got {self.hidden_dims!r}")
        if self.activation not in ACTIVATIONS:
            problems.append(f"activation must be one of {tuple(ACTIVATIONS)}, got {self.activation!r}")
        if self.time_embedding not in TIME_EMBEDDINGS:
            problems.append(f"time_embedding must be one of {TIME_EMBEDDINGS}, got {self.time_embedding!r}")
        if self.init not in INITS:
            problems.append(f"init must be one of {INITS}, got {self.init!r}")
        if not self.action_low < self.action_high:
            problems.append(f"action_low must be < action_high, got {self.action_low!r}, {self.action_high!r}")
        if not isinstance(self.sample_steps, int) or self.sample_steps < 1:
            problems.append(f"sample_steps must be an integer >= 1, got {self.sample_steps!r}")
        if problems:
            raise ValueError("invalid FlowPolicyConfig: " + "; ".join(problems))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["hidden_dims"] = list(self.hidden_dims)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "FlowPolicyConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown FlowPolicyConfig keys {unknown}; known keys are {sorted(known)}")
        return cls(**d)


class VelocityMLP(nn.Module):
    """v_theta(s, x_t, t, c): predicts the flow velocity dx_t/dt of the action at time t."""

    def __init__(self, config: FlowPolicyConfig):
        super().__init__()
        self.config = config
        if config.time_embedding == "sinusoidal":
            self.time_embed = SinusoidalTimeEmbedding(config.time_embed_dim)
        else:
            self.time_embed = ScalarTime()
        if config.condition == "label":
            self.cond_embed = LabelEmbedding(config.num_labels, config.label_embed_dim)
        else:
            self.cond_embed = GoalEmbedding(config.goal_dim)
        width = config.obs_dim + config.action_dim + self.time_embed.dim + self.cond_embed.dim
        self.mlp = mlp(width, config.hidden_dims, config.action_dim, config.activation, config.layer_norm,
                       config.init)

    def forward(
        self,
        obs: torch.Tensor,
        x_t: torch.Tensor,
        t: torch.Tensor,
        cond: torch.Tensor,
        null: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """obs (B, obs_dim), x_t (B, action_dim), t (B,), cond (B,) labels or (B, goal_dim); null (B,) bool."""
        h = torch.cat([obs, x_t, self.time_embed(t), self.cond_embed(cond, null)], dim=-1)
        return self.mlp(h)
