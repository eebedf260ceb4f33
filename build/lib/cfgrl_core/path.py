"""The probability path of flow matching: where x_t sits between noise and data, and its velocity.

Linear (rectified-flow / conditional OT) path:  x_t = (1 - t) x_0 + t a,  with x_0 ~ N(0, I),
and target velocity  u_t = dx_t/dt = a - x_0.  The velocity network regresses u_t.
"""
from __future__ import annotations

import torch


def linear_path(x0: torch.Tensor, x1: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (x_t, u_t) with x_t = (1 - t) x0 + t x1 and u_t = x1 - x0, for t of shape (B,)."""
    tt = t[:, None]
    return (1.0 - tt) * x0 + tt * x1, x1 - x0


def sample_time(
    batch: int, *, generator: torch.Generator | None, device: torch.device, time_bins: int | None = None
) -> torch.Tensor:
    """Training times: t ~ U[0, 1), or, with ``time_bins=K``, t uniform on {0, 1/K, ..., 1} (official: K=32)."""
    if time_bins is None:
        return torch.rand(batch, generator=generator, device=device)
    k = torch.randint(0, time_bins + 1, (batch,), generator=generator, device=device)
    return k.float() / time_bins
