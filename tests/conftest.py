import os

import pytest
import torch

os.environ.setdefault("MUJOCO_GL", "egl")
torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture
def label_policy():
    from cfgrl_core import FlowPolicy, FlowPolicyConfig

    torch.manual_seed(0)
    return FlowPolicy(FlowPolicyConfig(obs_dim=5, action_dim=3, hidden_dims=(32, 32)), device="cpu")


@pytest.fixture
def goal_policy():
    from cfgrl_core import FlowPolicy, FlowPolicyConfig

    torch.manual_seed(0)
    cfg = FlowPolicyConfig(obs_dim=4, action_dim=2, condition="goal", goal_dim=3, hidden_dims=(32, 32, 32, 32),
                           activation="gelu", layer_norm=False, time_embedding="scalar", init="xavier_uniform")
    return FlowPolicy(cfg, device="cpu")


def make_batch(n=64, obs=5, act=2, seed=0):
    """A random offline-RL batch (observations, actions in [-1, 1], rewards, next observations, masks)."""
    g = torch.Generator().manual_seed(seed)
    return {"observations": torch.randn(n, obs, generator=g), "actions": torch.rand(n, act, generator=g) * 2 - 1,
            "rewards": torch.rand(n, generator=g), "next_observations": torch.randn(n, obs, generator=g),
            "masks": torch.ones(n)}


@pytest.fixture
def batch():
    return make_batch()


@pytest.fixture
def small_agents():
    """A small IQL critic, CFGRL actor and AWR actor for 5-d states and 2-d actions, on the CPU."""
    from cfgrl_core.agents.awr import AWRAgent
    from cfgrl_core.agents.cfgrl import CFGRLAgent
    from cfgrl_core.agents.iql import IQLAgent

    torch.manual_seed(0)
    small = {"hidden_dims": (32, 32)}
    return (IQLAgent(5, 2, small, "cpu"), CFGRLAgent(5, 2, {**small, "sample_steps": 4}, "cpu"),
            AWRAgent(5, 2, small, "cpu"))
