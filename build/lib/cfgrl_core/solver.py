"""ODE solvers that carry noise x_0 ~ N(0, I) to an action x_1 along a velocity field."""
from __future__ import annotations

from typing import Callable

import torch

VelocityField = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def euler_solve(velocity: VelocityField, x0: torch.Tensor, steps: int, return_path: bool = False):
    """Forward Euler on [0, 1]:  x_{k+1} = x_k + (1/N) v(x_k, t_k),  t_k = k/N,  k = 0..N-1.

    ``velocity(x, t)`` gets t as a tensor of shape (B,). Returns x_N, or (x_N, path) with path of
    shape (N + 1, *x0.shape) when ``return_path`` is set.
    """
    x = x0
    dt = 1.0 / steps
    path = [x0] if return_path else None
    for k in range(steps):
        t = torch.full((x0.shape[0],), k * dt, device=x0.device, dtype=x0.dtype)
        x = x + dt * velocity(x, t)
        if return_path:
            path.append(x)
    return (x, torch.stack(path)) if return_path else x
