"""The guided sampler: shapes, the meaning of w = 0 and w = 1, determinism, guidance arithmetic."""
import numpy as np
import pytest
import torch

from cfgrl_core import euler_solve, guided_velocity


def reference_euler(policy, obs, cond, null, x0, steps):
    """An independent Euler loop over one branch of the network (what 'the conditional sampler' means)."""
    x, dt = x0.clone(), 1.0 / steps
    with torch.no_grad():
        for k in range(steps):
            t = torch.full((x.shape[0],), k * dt)
            x = x + dt * policy.velocity(obs, x, t, cond, null)   # x_{k+1} = x_k + (1/N) v(x_k, k/N)
    return x.clamp(-1, 1)


def test_shapes(label_policy, goal_policy):
    obs = torch.randn(7, 5)
    assert label_policy.sample(obs, 1, 2.0, seed=0).shape == (7, 3)
    assert label_policy.sample(obs, 1, 2.0, num_samples=4, seed=0).shape == (7, 4, 3)
    labels = torch.tensor([0, 1, 0, 1, 0, 1, 1])
    assert label_policy.sample(obs, labels, 0.5, num_samples=2, seed=0).shape == (7, 2, 3)
    goal_obs = torch.randn(6, 4)
    assert goal_policy.sample(goal_obs, torch.randn(6, 3), 3.0, num_samples=5, seed=0).shape == (6, 5, 2)
    assert goal_policy.sample(goal_obs, torch.randn(3), 3.0, seed=0).shape == (6, 2)  # one goal for all
    acts, path = label_policy.sample(obs, 1, 2.0, num_samples=4, steps=8, seed=0, return_path=True)
    assert path.shape == (9, 7, 4, 3)
    assert torch.allclose(path[-1].clamp(-1, 1), acts)


def test_actions_are_clipped_to_bounds(label_policy):
    with torch.no_grad():  # make the network push far outside the box
        label_policy.net.mlp[-1].bias.fill_(50.0)
    a = label_policy.sample(torch.randn(4, 5), 1, 3.0, num_samples=8, seed=0)
    assert a.max().item() == 1.0 and a.min().item() >= -1.0
    raw = label_policy.sample(torch.randn(4, 5), 1, 3.0, num_samples=8, seed=0, clip=False)
    assert raw.max().item() > 1.0


@pytest.mark.parametrize("k", [1, 3])
def test_w0_is_exactly_the_unconditional_sampler(label_policy, k):
    obs = torch.randn(4, 5)
    steps = 6
    out = label_policy.sample(obs, 1, 0.0, num_samples=k, steps=steps, seed=3)
    x0 = torch.randn(4 * k, 3, generator=torch.Generator().manual_seed(3))
    ref = reference_euler(label_policy, obs.repeat_interleave(k, 0), torch.ones(4 * k, dtype=torch.long),
                          torch.ones(4 * k, dtype=torch.bool), x0, steps)
    assert torch.equal(out.reshape(4 * k, 3), ref)


def test_w1_is_exactly_the_conditional_sampler(label_policy, goal_policy):
    obs = torch.randn(4, 5)
    out = label_policy.sample(obs, 1, 1.0, steps=5, seed=11)
    x0 = torch.randn(4, 3, generator=torch.Generator().manual_seed(11))
    assert torch.equal(out, reference_euler(label_policy, obs, torch.ones(4, dtype=torch.long), None, x0, 5))
    gobs, goals = torch.randn(4, 4), torch.randn(4, 3)
    out = goal_policy.sample(gobs, goals, 1.0, steps=5, seed=11)
    x0 = torch.randn(4, 2, generator=torch.Generator().manual_seed(11))
    assert torch.equal(out, reference_euler(goal_policy, gobs, goals, None, x0, 5))


def test_guided_sampler_matches_separate_branches(label_policy):
    """For 0 < w != 1 the one-pass batched sampler equals two separate passes mixed by v_u + w (v_c - v_u)."""
    obs, w, steps = torch.randn(3, 5), 2.5, 7
    out = label_policy.sample(obs, 1, w, steps=steps, seed=5)
    cond = torch.ones(3, dtype=torch.long)
    x = torch.randn(3, 3, generator=torch.Generator().manual_seed(5))
    for k in range(steps):
        t = torch.full((3,), k / steps)
        vc = label_policy.velocity(obs, x, t, cond, None)
        vu = label_policy.velocity(obs, x, t, cond, torch.ones(3, dtype=torch.bool))
        x = x + (vu + w * (vc - vu)) / steps
    torch.testing.assert_close(out, x.clamp(-1, 1), rtol=1e-5, atol=1e-5)


def test_per_state_w_equals_scalar_w(label_policy):
    obs = torch.randn(3, 5)
    ws = torch.tensor([0.0, 1.0, 4.0])
    both = label_policy.sample(obs, 1, ws, num_samples=2, steps=4, seed=0)
    for i, w in enumerate(ws.tolist()):
        # same noise rows: state i's samples are rows 2i, 2i+1 of the full noise draw
        single = label_policy.sample(obs, 1, w, num_samples=2, steps=4, seed=0)
        torch.testing.assert_close(both[i], single[i], rtol=1e-5, atol=1e-5)


def test_guided_velocity_formula():
    vc, vu = torch.randn(5, 2), torch.randn(5, 2)
    assert torch.equal(guided_velocity(vc, vu, torch.zeros(5)), vu)
    assert torch.equal(guided_velocity(vc, vu, torch.ones(5)), vc)
    torch.testing.assert_close(guided_velocity(vc, vu, torch.full((5,), 3.0)), vu + 3 * (vc - vu))


@pytest.mark.parametrize("steps", [1, 4, 16])
def test_euler_uses_the_time_grid_k_over_n(steps):
    """dx/dt = t from x = 0: N Euler steps give sum_k (1/N)(k/N) = (N - 1) / (2N), not the ODE's 1/2; the answer pins
    the grid t_k = k/N, k = 0..N-1 (a grid shifted by one step, or the ODE solved exactly, would give another)."""
    x0 = torch.zeros(4, 2)
    x1, path = euler_solve(lambda x, t: t[:, None].expand_as(x), x0, steps=steps, return_path=True)
    torch.testing.assert_close(x1, torch.full((4, 2), (steps - 1) / (2 * steps)))
    assert path.shape == (steps + 1, 4, 2) and torch.equal(path[0], x0) and torch.equal(path[-1], x1)


def test_same_seed_same_actions_different_seed_different(label_policy):
    obs = torch.randn(4, 5)
    a = label_policy.sample(obs, 1, 3.0, num_samples=8, seed=123)
    b = label_policy.sample(obs, 1, 3.0, num_samples=8, seed=123)
    c = label_policy.sample(obs, 1, 3.0, num_samples=8, seed=124)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    g1, g2 = torch.Generator().manual_seed(9), torch.Generator().manual_seed(9)
    assert torch.equal(label_policy.sample(obs, 1, 2.0, generator=g1), label_policy.sample(obs, 1, 2.0, generator=g2))


def test_numpy_inputs_are_accepted(label_policy):
    obs = np.random.default_rng(0).standard_normal((2, 5)).astype(np.float32)
    out = label_policy.sample(obs, np.array([1, 0]), np.array([1.0, 2.0]), seed=0)
    assert out.shape == (2, 3)


def test_conditioning_changes_the_output(label_policy, goal_policy):
    obs = torch.randn(4, 5)
    a1 = label_policy.sample(obs, 1, 1.0, seed=0)
    a0 = label_policy.sample(obs, 0, 1.0, seed=0)
    assert not torch.equal(a0, a1)
    gobs = torch.randn(4, 4)
    assert not torch.equal(goal_policy.sample(gobs, torch.ones(3), 1.0, seed=0),
                           goal_policy.sample(gobs, torch.ones(3), 0.0, seed=0))


def test_device_override_and_env(monkeypatch):
    from cfgrl_core import default_device

    assert default_device("cpu") == torch.device("cpu")
    monkeypatch.setenv("CFGRL_DEVICE", "cpu")
    assert default_device() == torch.device("cpu")
    monkeypatch.delenv("CFGRL_DEVICE")
    assert default_device().type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            default_device("cuda")


def test_fast_mish_matches_torch_values_and_gradients():
    from cfgrl_core.networks import Mish
    x = torch.linspace(-40, 40, 20001, dtype=torch.float64, requires_grad=True)
    ours, ref = Mish()(x), torch.nn.functional.mish(x)
    assert torch.allclose(ours, ref, atol=1e-12)
    g_ours, = torch.autograd.grad(ours.sum(), x)
    g_ref, = torch.autograd.grad(ref.sum(), x)
    assert torch.allclose(g_ours, g_ref, atol=1e-10)
    assert torch.autograd.gradcheck(Mish(), (torch.randn(8, dtype=torch.float64, requires_grad=True),))


def test_noise_scale_zero_gives_one_deterministic_action(label_policy):
    policy = label_policy
    obs = torch.randn(4, 5)
    a = policy.sample(obs, 1, 2.0, num_samples=5, seed=0, noise_scale=0.0)
    b = policy.sample(obs, 1, 2.0, num_samples=5, seed=1, noise_scale=0.0)
    assert torch.equal(a, b) and torch.allclose(a, a[:, :1].expand_as(a))
    assert not torch.equal(policy.sample(obs, 1, 2.0, seed=0), policy.sample(obs, 1, 2.0, seed=1))
    for bad in (-1.0, float("nan"), True):
        with pytest.raises(ValueError, match="noise_scale must be a finite number >= 0"):
            policy.sample(obs, 1, 2.0, noise_scale=bad)
