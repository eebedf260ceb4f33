"""A trained toy flow policy samples what the theory says it should (statistical, fixed seeds).

Toy: pi_hat = 0.7 N(-0.5, 0.1^2) + 0.3 N(0.5, 0.1^2) on [-1, 1]; labels o ~ Bernoulli(0.2) on the left mode,
Bernoulli(0.8) on the right one. Then
  pi_hat(a | o=1)  has right-mode mass 0.3*0.8 / (0.3*0.8 + 0.7*0.2) = 0.6316,
  pi_w ∝ pi_hat p(o=1|a)^w  has right-mode mass 0.3*0.8^w / (0.3*0.8^w + 0.7*0.2^w)  (0.965 at w = 3).
Tolerances: 0.05 on mode masses and on quantiles of each mode (sampling error with 4000 samples is ~0.008;
the rest is left for the network's approximation error).
"""
import numpy as np
import pytest
import torch

from cfgrl_core import FlowPolicy, FlowPolicyConfig, train_flow_policy

P_RIGHT, P_OPT = 0.3, {"left": 0.2, "right": 0.8}


def right_mass(w):
    r, l = P_RIGHT * P_OPT["right"] ** w, (1 - P_RIGHT) * P_OPT["left"] ** w
    return r / (r + l)


@pytest.fixture(scope="module")
def trained():
    rng = np.random.default_rng(0)
    n = 20_000
    right = rng.random(n) < P_RIGHT
    a = np.where(right, 0.5, -0.5) + 0.1 * rng.standard_normal(n)
    o = (rng.random(n) < np.where(right, P_OPT["right"], P_OPT["left"])).astype(np.int64)
    torch.manual_seed(0)
    policy = FlowPolicy(FlowPolicyConfig(obs_dim=0, action_dim=1, hidden_dims=(64, 64, 64), sample_steps=32),
                        device="cpu")
    train_flow_policy(policy, torch.zeros(n, 0), a[:, None].astype(np.float32), o, loss="official",
                      steps=2500, batch_size=256, lr=2e-3, seed=0, progress=False, cosine_decay=True)
    return policy


def draw(policy, w, n=4000):
    return policy.sample(torch.zeros(1, 0), 1, w, num_samples=n, seed=1).numpy().ravel()


def test_w1_matches_the_conditional_distribution(trained):
    s = draw(trained, 1.0)
    assert abs((s > 0).mean() - right_mass(1.0)) < 0.05
    for side, centre in ((s > 0, 0.5), (s <= 0, -0.5)):
        q = np.quantile(s[side], [0.1, 0.5, 0.9])
        expected = centre + 0.1 * np.array([-1.2816, 0.0, 1.2816])   # N(centre, 0.1^2) quantiles
        assert np.all(np.abs(q - expected) < 0.05), (q, expected)


def test_w0_matches_the_data_distribution(trained):
    s = draw(trained, 0.0)
    assert abs((s > 0).mean() - P_RIGHT) < 0.05
    assert abs(s.mean() - (P_RIGHT * 0.5 - (1 - P_RIGHT) * 0.5)) < 0.05


def test_larger_w_puts_more_mass_on_the_optimal_mode(trained):
    masses = [(draw(trained, w) > 0).mean() for w in (0.0, 1.0, 3.0)]
    assert masses[0] < masses[1] - 0.2 and masses[1] < masses[2] - 0.15, masses
    assert masses[2] > 0.9, masses   # exact product: right_mass(3) = 0.965
