"""Where tensors live: CUDA when present, CPU otherwise, overridable."""
from __future__ import annotations

import os

import torch

DEVICE_ENV = "CFGRL_DEVICE"


def default_device(device: str | torch.device | None = None) -> torch.device:
    """Resolve a device: the argument if given, else ``$CFGRL_DEVICE``, else CUDA when available, else CPU."""
    choice = device if device is not None else os.environ.get(DEVICE_ENV)
    if choice is None or choice == "":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(choice)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {str(choice)!r} was requested but CUDA is not available on this machine")
    return resolved
