"""Input embeddings of the velocity network: flow time and the guidance condition.

The condition is what classifier-free guidance switches on and off. It is either
a discrete label (the optimality variable o of CFGRL, Eq. 15 of the paper) or a
continuous vector (a goal, Eq. 18-19). Both have a learned *null* value that stands
for "no condition", so one network represents pi(a|s) and pi(a|s, o).
"""
from __future__ import annotations

import math

import torch
from torch import nn

#: Integer used in label tensors for the null condition (no label).
NULL_LABEL = -1


class SinusoidalTimeEmbedding(nn.Module):
    """Fixed Fourier features of the flow time t in [0, 1].

    e(t) = [sin(1000 t f_0), ..., sin(1000 t f_{d/2-1}), cos(1000 t f_0), ..., cos(1000 t f_{d/2-1})],
    f_i = max_period^(-i / (d/2)): the transformer positional encoding of 1000 t, as in diffusion models.
    """

    def __init__(self, dim: int = 16, max_period: float = 10_000.0):
        super().__init__()
        if dim < 2 or dim % 2:
            raise ValueError(f"time embedding dim must be an even integer >= 2, got {dim}")
        half = dim // 2
        freqs = 1000.0 * torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32) / half)
        self.register_buffer("freqs", freqs, persistent=False)
        self.dim = dim

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        angles = t[:, None] * self.freqs[None, :]
        return torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1)


class ScalarTime(nn.Module):
    """The raw scalar t as a single feature (the official goal-conditioned actor)."""

    dim = 1

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return t[:, None]


class LabelEmbedding(nn.Module):
    """A table of ``num_labels + 1`` learned vectors; the last row is the null label.

    Labels are integers in {0, ..., num_labels - 1}; :data:`NULL_LABEL` (-1) selects the null row.
    """

    def __init__(self, num_labels: int = 2, dim: int = 32):
        super().__init__()
        self.num_labels = num_labels
        self.table = nn.Embedding(num_labels + 1, dim)
        self.dim = dim

    def forward(self, labels: torch.Tensor, null: torch.Tensor | None = None) -> torch.Tensor:
        index = torch.where(labels == NULL_LABEL, torch.full_like(labels, self.num_labels), labels)
        if null is not None:
            index = torch.where(null, torch.full_like(index, self.num_labels), index)
        return self.table(index)


class GoalEmbedding(nn.Module):
    """The goal vector itself, replaced by a learned null vector where ``null`` is True."""

    def __init__(self, goal_dim: int):
        super().__init__()
        self.null_goal = nn.Parameter(torch.zeros(goal_dim))
        self.dim = goal_dim

    def forward(self, goals: torch.Tensor, null: torch.Tensor | None = None) -> torch.Tensor:
        if null is None:
            return goals
        return torch.where(null[:, None], self.null_goal.expand_as(goals), goals)
