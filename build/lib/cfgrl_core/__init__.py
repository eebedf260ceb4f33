"""cfgrl_core: classifier-free guidance as a policy improvement operator (Frans, Park, Abbeel, Levine, 2025).

    pi_w(a|s)  ∝  pi_hat(a|s) p(o|s,a)^w

One flow-matching network, conditioned on an optimality label o (or a goal) with a learned null condition,
is sampled with classifier-free guidance; the guidance weight w sets how far the policy moves from the data's.
"""
from .bandit import GaussianBandit, make_bandit
from .checkpoint import CheckpointError, load_policy, save_policy
from .device import default_device
from .embeddings import NULL_LABEL
from .guidance import check_guidance_weight, guided_velocity
from .losses import LOSSES, dropout_cfg_loss, official_cfgrl_loss
from .network import FlowPolicyConfig, VelocityMLP
from .path import linear_path, sample_time
from .policy import FlowPolicy
from .solver import euler_solve
from .train import train_flow_policy

__version__ = "0.1.0"

__all__ = [
    "CheckpointError", "FlowPolicy", "FlowPolicyConfig", "GaussianBandit", "LOSSES", "NULL_LABEL", "VelocityMLP",
    "check_guidance_weight", "default_device", "dropout_cfg_loss", "euler_solve", "guided_velocity", "linear_path",
    "load_policy", "make_bandit", "official_cfgrl_loss", "sample_time", "save_policy", "train_flow_policy",
]
