"""Every bad input gets one ValueError that names the argument and what was expected."""
import math

import numpy as np
import pytest
import torch

from cfgrl_core import FlowPolicyConfig, train_flow_policy


@pytest.mark.parametrize("w, match", [
    (float("nan"), "w must be a finite number >= 0"),
    (math.inf, "w must be a finite number >= 0"),
    (-0.5, "w must be a finite number >= 0"),
    (torch.tensor([1.0, float("nan"), 1.0, 1.0]), "w must be finite"),
    (torch.tensor([1.0, -1.0, 1.0, 1.0]), "w must be >= 0"),
    (torch.tensor([1.0, 2.0]), r"w given per state must have shape \(4,\)"),
    ("3", "w must be a number"),
    (True, "w must be a finite number"),
])
def test_bad_w(label_policy, w, match):
    with pytest.raises(ValueError, match=match):
        label_policy.sample(torch.randn(4, 5), 1, w)


@pytest.mark.parametrize("obs, match", [
    (torch.randn(4, 6), r"obs must have shape \(batch, 5\)"),
    (torch.randn(5), r"obs must have shape \(batch, 5\)"),
    (torch.zeros(4, 5, dtype=torch.long), "obs must have a floating-point dtype"),
    (torch.full((4, 5), float("nan")), "obs contains NaN"),
    ([[0.0] * 5], "obs must be a torch.Tensor or numpy array"),
    (torch.randn(0, 5), "at least one state"),
])
def test_bad_obs(label_policy, obs, match):
    with pytest.raises(ValueError, match=match):
        label_policy.sample(obs, 1, 1.0)


@pytest.mark.parametrize("cond, match", [
    (torch.tensor([1.0, 0.0, 1.0, 1.0]), "must have an integer dtype"),
    (torch.tensor([1, 0]), r"must have shape \(4,\)"),
    (torch.tensor([1, 2, 0, 0]), r"must lie in 0..1, got 2"),
    (torch.tensor([True, False, True, True]), "integer dtype"),
])
def test_bad_labels(label_policy, cond, match):
    with pytest.raises(ValueError, match=match):
        label_policy.sample(torch.randn(4, 5), cond, 1.0)


@pytest.mark.parametrize("cond, match", [
    (torch.randn(4, 2), r"cond \(goals\) must have shape \(4, 3\)"),
    (torch.zeros(4, 3, dtype=torch.long), "floating-point dtype"),
    (torch.full((4, 3), float("inf")), "NaN or infinite"),
])
def test_bad_goals(goal_policy, cond, match):
    with pytest.raises(ValueError, match=match):
        goal_policy.sample(torch.randn(4, 4), cond, 1.0)


@pytest.mark.parametrize("kwargs, match", [
    ({"steps": 0}, "steps must be an integer >= 1"),
    ({"steps": 2.5}, "steps must be an integer >= 1"),
    ({"num_samples": 0}, "num_samples must be an integer >= 1"),
    ({"seed": 1, "generator": torch.Generator()}, "either seed or generator"),
])
def test_bad_sampler_arguments(label_policy, kwargs, match):
    with pytest.raises(ValueError, match=match):
        label_policy.sample(torch.randn(2, 5), 1, 1.0, **kwargs)


@pytest.mark.parametrize("kwargs, match", [
    ({"obs_dim": -1}, "obs_dim must be an integer >= 0"),
    ({"action_dim": 0}, "action_dim must be an integer >= 1"),
    ({"condition": "text"}, "condition must be one of"),
    ({"condition": "goal"}, "goal_dim must be >= 1"),
    ({"activation": "swish2"}, "activation must be one of"),
    ({"hidden_dims": ()}, "hidden_dims must be a non-empty tuple"),
    ({"action_low": 1.0, "action_high": -1.0}, "action_low must be < action_high"),
    ({"sample_steps": 0}, "sample_steps must be an integer >= 1"),
])
def test_bad_config(kwargs, match):
    base = {"obs_dim": 3, "action_dim": 2}
    with pytest.raises(ValueError, match=match):
        FlowPolicyConfig(**{**base, **kwargs})


def test_bad_training_arguments(label_policy):
    obs, acts, labels = torch.randn(10, 5), torch.rand(10, 3), torch.ones(10, dtype=torch.long)
    with pytest.raises(ValueError, match="loss must be one of"):
        train_flow_policy(label_policy, obs, acts, labels, loss="l2", steps=1, progress=False)
    with pytest.raises(ValueError, match=r"actions must have shape \(10, 3\)"):
        train_flow_policy(label_policy, obs, acts[:, :2], labels, steps=1, progress=False)
    with pytest.raises(ValueError, match="steps must be an integer >= 1"):
        train_flow_policy(label_policy, obs, acts, labels, steps=0, progress=False)
    with pytest.raises(ValueError, match="p_null must lie in"):
        train_flow_policy(label_policy, obs, acts, labels, loss="dropout", steps=1, p_null=1.5, progress=False)


def test_official_loss_needs_labels(goal_policy):
    with pytest.raises(ValueError, match="needs a label-conditioned policy"):
        train_flow_policy(goal_policy, torch.randn(8, 4), torch.rand(8, 2), torch.randn(8, 3),
                          loss="official", steps=1, progress=False)


def test_product_policy_rejects_bad_w():
    from cfgrl_core.product_policy import product_policy

    for w in (float("nan"), -1.0, float("inf")):
        with pytest.raises(ValueError, match="w must be a finite number >= 0"):
            product_policy(np.full(4, 0.25), np.ones(4), w)
