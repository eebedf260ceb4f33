"""The multilayer perceptron every network in cfgrl_core is built from."""
from __future__ import annotations

from torch import nn

ACTIVATIONS = {"mish": nn.Mish, "gelu": nn.GELU, "relu": nn.ReLU, "silu": nn.SiLU, "tanh": nn.Tanh}


def mlp(in_dim: int, hidden_dims, out_dim: int, activation: str = "mish", layer_norm: bool = False,
        init: str = "default") -> nn.Sequential:
    """[Linear -> activation -> (LayerNorm)] per hidden width, then a Linear to ``out_dim``.

    ``init="xavier_uniform"`` sets Xavier-uniform weights and zero biases (the official goal-conditioned actor).
    """
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {tuple(ACTIVATIONS)}, got {activation!r}")
    layers: list[nn.Module] = []
    width = in_dim
    for hidden in hidden_dims:
        layers += [nn.Linear(width, hidden), ACTIVATIONS[activation]()]
        if layer_norm:
            layers.append(nn.LayerNorm(hidden))
        width = hidden
    layers.append(nn.Linear(width, out_dim))
    net = nn.Sequential(*layers)
    if init == "xavier_uniform":
        for m in net:
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
    return net
