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
