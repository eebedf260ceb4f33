"""cfgrl_core: classifier-free guidance as a policy improvement operator (Frans, Park, Abbeel, Levine, 2025).

    pi_w(a|s)  ∝  pi_hat(a|s) p(o|s,a)^w

One flow-matching network, conditioned on an optimality label o (or a goal) with a learned null condition,
is sampled with classifier-free guidance; the guidance weight w sets how far the policy moves from the data's.

The pipeline, module by module: data (``collect``, ``relabel``, ``dataset``) -> critic (``agents.iql``) -> labels and
actors (``agents.cfgrl``, ``agents.awr``) -> sampler (``networks``, ``flow``, ``policy``) -> evaluation (``evaluate``,
``run``, ``results``) -> the book's views (``slider``, ``video``, ``diagnostics``, ``sparsity``).
"""
from .bandit import GaussianBandit, make_bandit
from .checkpoint import CheckpointError, load_policy, save_policy
from .flow import (LOSSES, check_guidance_weight, dropout_cfg_loss, euler_solve, guided_velocity, linear_path,
                   official_cfgrl_loss, sample_time)
from .networks import FlowPolicyConfig, VelocityMLP, default_device
from .policy import FlowPolicy
from .train import train_flow_policy

__version__ = "0.2.0"

__all__ = [
    "CheckpointError", "FlowPolicy", "FlowPolicyConfig", "GaussianBandit", "LOSSES", "VelocityMLP",
    "check_guidance_weight", "default_device", "dropout_cfg_loss", "euler_solve", "guided_velocity", "linear_path",
    "load_policy", "make_bandit", "official_cfgrl_loss", "sample_time", "save_policy", "train_flow_policy",
]
