"""Saving and loading trained policies: config + weights, atomic writes, safe loads.

Files are written to a temporary file in the same directory, flushed, fsync'ed and renamed over the
target, so an interrupted save never leaves a half-written checkpoint. Loading uses
``torch.load(..., weights_only=True)``: nothing is unpickled.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

from .atomic import atomic_write
from .device import default_device
from .network import FlowPolicyConfig
from .policy import FlowPolicy

FORMAT = "cfgrl_core.flow_policy"
FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint file is corrupted, of another format, or does not match its config."""


def atomic_torch_save(obj, path: str | os.PathLike) -> Path:
    """torch.save to ``path`` atomically (see :mod:`cfgrl_core.atomic`)."""
    return atomic_write(path, lambda f: torch.save(obj, f))


def save_policy(policy: FlowPolicy, path: str | os.PathLike, metadata: dict | None = None) -> Path:
    """Write {format, version, config, state_dict, metadata} to ``path`` atomically."""
    state = {k: v.detach().cpu() for k, v in policy.state_dict().items()}
    payload = {"format": FORMAT, "version": FORMAT_VERSION, "config": policy.config.to_dict(),
               "state_dict": state, "metadata": dict(metadata or {})}
    return atomic_torch_save(payload, path)


def load_policy(path: str | os.PathLike, device: str | torch.device | None = None) -> FlowPolicy:
    """Load a policy saved by :func:`save_policy` (its metadata lands in ``policy.metadata``).

    Raises FileNotFoundError for a missing file and CheckpointError naming the file and the problem otherwise.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated zip, random bytes, a pickle needing code, ...
        raise CheckpointError(f"checkpoint {path} is corrupted or not a torch file: {type(e).__name__}: {e}") from e
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint {path} is not a {FORMAT} file")
    if payload.get("version") != FORMAT_VERSION:
        raise CheckpointError(f"checkpoint {path} has format version {payload.get('version')!r}, "
                              f"this cfgrl_core reads version {FORMAT_VERSION}")
    try:
        config = FlowPolicyConfig.from_dict(payload["config"])
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"checkpoint {path} has an invalid config: {e}") from e
    policy = FlowPolicy(config, device="cpu")
    try:
        policy.load_state_dict(payload["state_dict"], strict=True)
    except (KeyError, RuntimeError) as e:
        raise CheckpointError(f"checkpoint {path}: weights do not match its config: {e}") from e
    policy.metadata = payload.get("metadata", {})
    return policy.to(default_device(device))
