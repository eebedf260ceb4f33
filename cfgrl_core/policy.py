"""The guided flow policy: one velocity network, sampled with classifier-free guidance.

    pi_w(a|s, c)  ∝  pi_hat(a|s) * p(c|s, a)^w       (CFGRL, Eqs. 11 and 19)

sampled by Euler integration of  v_w = v(s, x, t, null) + w (v(s, x, t, c) - v(s, x, t, null))
from x_0 ~ N(0, I), then clipped to the action bounds.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from .flow import check_guidance_weight, euler_solve, guided_velocity
from .networks import FlowPolicyConfig, VelocityMLP, default_device


def _as_tensor(x, name: str) -> torch.Tensor:
    if isinstance(x, np.ndarray):
        return torch.from_numpy(x)
    if isinstance(x, torch.Tensor):
        return x
    raise ValueError(f"{name} must be a torch.Tensor or numpy array, got {type(x).__name__}")


class FlowPolicy(nn.Module):
    """A conditional flow-matching policy with a learned null condition.

    >>> policy = FlowPolicy(FlowPolicyConfig(obs_dim=24, action_dim=6))
    >>> actions = policy.sample(obs, cond=1, w=3.0, num_samples=8, seed=0)   # (B, 8, 6)
    """

    KIND = "flow_policy"

    def __init__(self, config: FlowPolicyConfig, device: str | torch.device | None = None):
        super().__init__()
        self.config = config
        self.net = VelocityMLP(config)
        self.to(default_device(device))

    def spec(self) -> dict:
        """What rebuilds this policy (see :mod:`cfgrl_core.checkpoint`)."""
        return {"config": self.config.to_dict()}

    @classmethod
    def from_spec(cls, spec: dict, device=None) -> "FlowPolicy":
        return cls(FlowPolicyConfig.from_dict(spec["config"]), device=device)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def velocity(self, obs, x_t, t, cond, null=None) -> torch.Tensor:
        """v_theta(s, x_t, t, c), with c replaced by the learned null where ``null`` is True."""
        return self.net(obs, x_t, t, cond, null)

    # ----------------------------------------------------------------- input checks
    def check_obs(self, obs) -> torch.Tensor:
        obs = _as_tensor(obs, "obs")
        if not obs.is_floating_point():
            raise ValueError(f"obs must have a floating-point dtype, got {obs.dtype}")
        if obs.ndim != 2 or obs.shape[1] != self.config.obs_dim:
            raise ValueError(f"obs must have shape (batch, {self.config.obs_dim}), got {tuple(obs.shape)}")
        if obs.shape[0] < 1:
            raise ValueError("obs must hold at least one state (batch >= 1)")
        if not bool(torch.isfinite(obs).all()):
            raise ValueError("obs contains NaN or infinite values")
        return obs.to(self.device, torch.float32)

    def check_cond(self, cond, batch: int) -> torch.Tensor:
        """Labels: an int or an integer tensor (batch,) in {0..num_labels-1}.
        Goals: a float tensor (batch, goal_dim) or (goal_dim,) shared by all states.
        (No condition at all is asked for with w = 0, which samples through the learned null condition.)"""
        cfg = self.config
        if cfg.condition == "label":
            if isinstance(cond, (int, np.integer)) and not isinstance(cond, bool):
                cond = torch.full((batch,), int(cond), dtype=torch.long)
            cond = _as_tensor(cond, "cond")
            if cond.is_floating_point() or cond.dtype == torch.bool or cond.is_complex():
                raise ValueError(f"cond (labels) must have an integer dtype, got {cond.dtype}")
            if cond.shape != (batch,):
                raise ValueError(f"cond (labels) must have shape ({batch},), got {tuple(cond.shape)}")
            bad = (cond < 0) | (cond >= cfg.num_labels)
            if bool(bad.any()):
                raise ValueError(f"cond (labels) must lie in 0..{cfg.num_labels - 1}, got {cond[bad][0].item()}")
            return cond.to(self.device, torch.long)
        cond = _as_tensor(cond, "cond")
        if not cond.is_floating_point():
            raise ValueError(f"cond (goals) must have a floating-point dtype, got {cond.dtype}")
        if cond.ndim == 1 and cond.shape[0] == cfg.goal_dim:
            cond = cond.expand(batch, -1)
        if cond.shape != (batch, cfg.goal_dim):
            raise ValueError(f"cond (goals) must have shape ({batch}, {cfg.goal_dim}), got {tuple(cond.shape)}")
        if not bool(torch.isfinite(cond).all()):
            raise ValueError("cond (goals) contains NaN or infinite values")
        return cond.to(self.device, torch.float32)

    # ----------------------------------------------------------------- sampling
    @torch.no_grad()
    def sample(
        self,
        obs,
        cond=1,
        w=1.0,
        *,
        num_samples: int | None = None,
        steps: int | None = None,
        seed: int | None = None,
        generator: torch.Generator | None = None,
        clip: bool = True,
        return_path: bool = False,
        noise_scale: float = 1.0,
    ):
        """Sample actions from the guided policy pi_w(a|s, c) ∝ pi_hat(a|s) p(c|s,a)^w.

        obs: (B, obs_dim). cond: labels (int or (B,)) or goals ((B, goal_dim) or (goal_dim,)).
        w: a number or a tensor (B,) of per-state weights, finite and >= 0. w = 0 samples the
        unconditional policy pi_hat (flow BC), w = 1 the conditional pi_hat(a|s, c) exactly.
        num_samples: K actions per state -> output (B, K, action_dim); None -> (B, action_dim).
        steps: Euler steps (default ``config.sample_steps``). seed or generator: the noise source.
        Conditional and unconditional velocities come from ONE batched forward pass of 2 B K rows;
        when every w is 0 (or every w is 1) only the branch needed is evaluated.
        noise_scale: x_0 ~ N(0, noise_scale^2 I); 1 samples the policy, 0 integrates from x_0 = 0 and gives one
        deterministic action per state (a "mode-seeking" evaluation, the flow's analogue of a Gaussian's mean).
        """
        obs = self.check_obs(obs)
        batch = obs.shape[0]
        cond = self.check_cond(cond, batch)
        w = check_guidance_weight(w, batch, self.device)
        steps = self.config.sample_steps if steps is None else steps
        if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
            raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
        k = 1 if num_samples is None else num_samples
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"num_samples must be an integer >= 1 or None, got {num_samples!r}")
        if seed is not None and generator is not None:
            raise ValueError("pass either seed or generator, not both")
        if isinstance(noise_scale, bool) or not isinstance(noise_scale, (int, float)) or not (
                math.isfinite(noise_scale) and noise_scale >= 0):
            raise ValueError(f"noise_scale must be a finite number >= 0, got {noise_scale!r}")
        if seed is not None:
            generator = torch.Generator(device=self.device).manual_seed(int(seed))

        # one row per (state, sample): state-major order, so row i*K + j is sample j of state i
        obs_r = obs.repeat_interleave(k, dim=0)
        cond_r = cond.repeat_interleave(k, dim=0)
        w_r = w.repeat_interleave(k, dim=0)
        n = batch * k
        x0 = torch.randn(n, self.config.action_dim, generator=generator, device=self.device) * noise_scale

        if bool((w_r == 0).all()):
            null = torch.ones(n, dtype=torch.bool, device=self.device)
            field = lambda x, t: self.net(obs_r, x, t, cond_r, null)  # noqa: E731
        elif bool((w_r == 1).all()):
            field = lambda x, t: self.net(obs_r, x, t, cond_r, None)  # noqa: E731
        else:
            obs2 = torch.cat([obs_r, obs_r])
            cond2 = torch.cat([cond_r, cond_r])
            null2 = torch.cat([torch.zeros(n, dtype=torch.bool), torch.ones(n, dtype=torch.bool)]).to(self.device)

            def field(x, t):
                v = self.net(obs2, torch.cat([x, x]), torch.cat([t, t]), cond2, null2)
                return guided_velocity(v[:n], v[n:], w_r)

        out = euler_solve(field, x0, int(steps), return_path=return_path)
        x, path = out if return_path else (out, None)
        if clip:
            x = x.clamp(self.config.action_low, self.config.action_high)
        shape = (batch, self.config.action_dim) if num_samples is None else (batch, k, self.config.action_dim)
        x = x.reshape(shape)
        if return_path:
            return x, path.reshape((path.shape[0],) + shape)
        return x
