"""Classifier-free guidance: mixing conditional and unconditional velocities.

With scores, guidance samples  pi_w(a|s) ∝ pi_hat(a|s) p(o|s,a)^w  (paper, Eq. 11):
    grad log pi_w = grad log pi_hat(a|s) + w (grad log pi_hat(a|s,o) - grad log pi_hat(a|s)).
For flows we apply the same mixing to velocities (an approximation; chapter 2 measures it):
    v_w = v_uncond + w (v_cond - v_uncond).
"""
from __future__ import annotations

import math
import numbers

import numpy as np
import torch


def check_guidance_weight(w, batch: int, device: torch.device) -> torch.Tensor:
    """Validate w (a number, or one per state) and return it as a float tensor of shape (batch,).

    Raises ValueError unless every w is finite and >= 0 (w = 0: unconditional, 1: conditional, > 1: extrapolate).
    """
    if isinstance(w, bool):
        raise ValueError(f"w must be a finite number >= 0 (or a 1-D tensor of them), got a bool {w!r}")
    if isinstance(w, numbers.Real):
        wf = float(w)
        if not math.isfinite(wf) or wf < 0:
            raise ValueError(f"w must be a finite number >= 0, got {w!r}")
        return torch.full((batch,), wf, device=device)
    if isinstance(w, np.ndarray):
        w = torch.from_numpy(w)
    if not isinstance(w, torch.Tensor):
        raise ValueError(f"w must be a number or a 1-D tensor/array of numbers, got {type(w).__name__}")
    if w.dtype == torch.bool or w.is_complex():
        raise ValueError(f"w must be real-valued, got dtype {w.dtype}")
    if w.ndim == 0:
        return check_guidance_weight(float(w), batch, device)
    if w.shape != (batch,):
        raise ValueError(f"w given per state must have shape ({batch},) (one per state), got {tuple(w.shape)}")
    w = w.to(device=device, dtype=torch.float32)
    if not bool(torch.isfinite(w).all()):
        raise ValueError("w must be finite: got NaN or infinite values")
    if bool((w < 0).any()):
        raise ValueError(f"w must be >= 0, got a minimum of {float(w.min())}")
    return w


def guided_velocity(v_cond: torch.Tensor, v_uncond: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """v_w = v_uncond + w (v_cond - v_uncond), written as (1 - w) v_uncond + w v_cond so w=0, w=1 are exact.

    ``w`` broadcasts from the left: shape (B,) for v of shape (B, action_dim).
    """
    w = w.reshape(w.shape + (1,) * (v_cond.ndim - w.ndim))
    return (1.0 - w) * v_uncond + w * v_cond
