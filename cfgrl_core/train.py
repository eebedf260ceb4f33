"""A compact, seeded training loop for a flow policy on a fixed dataset (s, a, c)."""
from __future__ import annotations

import numpy as np
import torch
from tqdm.auto import tqdm

from .flow import LOSSES
from .policy import FlowPolicy


def make_adam(params, lr: float) -> torch.optim.Adam:
    """Adam with the fused kernel where this torch build has it (about 3x faster steps on CPU)."""
    params = list(params)
    try:
        return torch.optim.Adam(params, lr=lr, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.Adam(params, lr=lr)


def train_flow_policy(
    policy: FlowPolicy,
    obs,
    actions,
    cond,
    *,
    loss: str = "official",
    steps: int = 1000,
    batch_size: int = 256,
    lr: float = 3e-4,
    seed: int = 0,
    cosine_decay: bool = False,
    log_every: int = 50,
    progress: bool = True,
    **loss_kwargs,
) -> dict:
    """Minimise the selected loss (see :mod:`cfgrl_core.losses`) with Adam on minibatches drawn uniformly.

    The dataset is moved to the policy's device once; minibatch indices, noise and times come from one
    seeded generator on that device, so a CPU run is reproducible. Losses are read back to the host only
    every ``log_every`` steps. ``cosine_decay`` anneals the learning rate from ``lr`` to 0 over the run. Returns {"step": [...], "loss": [...], ...metrics} averaged per log window.
    """
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {tuple(LOSSES)}, got {loss!r}")
    for name, value in (("steps", steps), ("batch_size", batch_size), ("log_every", log_every)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    device = policy.device
    obs = policy.check_obs(obs)
    n = obs.shape[0]
    actions = torch.as_tensor(actions, dtype=torch.float32, device=device)
    if actions.shape != (n, policy.config.action_dim):
        raise ValueError(f"actions must have shape ({n}, {policy.config.action_dim}), got {tuple(actions.shape)}")
    cond = policy.check_cond(cond, n)
    loss_fn = LOSSES[loss]

    torch.manual_seed(seed)
    generator = torch.Generator(device=device).manual_seed(seed)
    optimizer = make_adam(policy.parameters(), lr)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps) if cosine_decay else None
    history: dict[str, list] = {"step": []}
    window: dict[str, torch.Tensor] = {}
    policy.train()
    bar = tqdm(range(1, steps + 1), desc=f"flow policy ({loss} loss)", disable=not progress)
    for step in bar:
        idx = torch.randint(0, n, (batch_size,), generator=generator, device=device)
        value, metrics = loss_fn(policy, obs[idx], actions[idx], cond[idx], generator=generator, **loss_kwargs)
        optimizer.zero_grad(set_to_none=True)
        value.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        for key, m in metrics.items():
            window[key] = window.get(key, 0.0) + m
        if step % log_every == 0 or step == steps:
            count = log_every if step % log_every == 0 else step % log_every
            history["step"].append(step)
            for key, total in window.items():
                history.setdefault(key, []).append(float(total) / count)
            window = {}
            bar.set_postfix(loss=f"{history['loss'][-1]:.4f}")
    policy.eval()
    return history
