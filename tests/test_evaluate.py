"""Vectorised evaluation gives the same returns as stepping one environment at a time."""
import numpy as np
import torch

from cfgrl_core import FlowPolicy, FlowPolicyConfig
from cfgrl_core.envs import flat_observation, make_env
from cfgrl_core.evaluate import evaluate, flow_policy_actor


def single_rollout(domain, task, seed, policy_fn):
    env = make_env(domain, task, seed)
    ts, total = env.reset(), 0.0
    while not ts.last():
        ts = env.step(policy_fn(flat_observation(ts.observation)))
        total += ts.reward
    return total


def test_vectorised_returns_equal_single_env_rollouts():
    gains = np.array([0.0, 0.5])   # setting k acts with a = clip(gains[k] * obs[:6])

    def act(obs, setting):
        return np.clip(gains[setting.numpy()][:, None] * obs[:, :6].numpy(), -1, 1)

    returns = evaluate(act, "cheetah", "run", num_settings=2, seeds=[3, 4])
    assert returns.shape == (2, 2)
    for k in range(2):
        for j, seed in enumerate([3, 4]):
            expected = single_rollout("cheetah", "run", seed, lambda o: np.clip(gains[k] * o[:6], -1, 1))
            assert np.isclose(returns[k, j], expected, rtol=1e-6)


def test_flow_policy_actor_routes_each_setting_to_its_w():
    torch.manual_seed(0)
    policy = FlowPolicy(FlowPolicyConfig(obs_dim=17, action_dim=6, hidden_dims=(16,), sample_steps=2), device="cpu")
    act = flow_policy_actor(policy, [0.0, 1.0, 3.0], seed=0)
    obs = torch.randn(3, 17)
    out = act(obs, torch.tensor([0, 1, 2]))
    ref = policy.sample(obs, 1, torch.tensor([0.0, 1.0, 3.0]), generator=torch.Generator().manual_seed(0))
    assert torch.equal(out, ref)


def test_evaluation_in_chunks_keeps_every_episode_in_its_place():
    """Chunked (max_envs) and unchunked evaluation of a deterministic policy give the same returns, per setting and
    seed."""
    import numpy as np
    import torch

    from cfgrl_core.evaluate import evaluate

    def act(obs, setting):      # a different constant action per setting
        return torch.stack([torch.full((6,), 0.5 * float(s) - 0.5) for s in setting])

    whole = evaluate(act, "cheetah", "run", 3, [1, 2, 3], max_steps=15)
    chunked = evaluate(act, "cheetah", "run", 3, [1, 2, 3], max_steps=15, max_envs=4)
    assert whole.shape == (3, 3) and np.array_equal(whole, chunked)


def test_sharded_evaluation_keeps_every_episode_in_its_place_and_gives_each_shard_its_stream():
    """Two forked workers return the one-process returns of a deterministic policy, in seed order; ``make_act`` is
    called once per shard with the shard's index; one worker is exactly ``evaluate(make_act(0), ...)``."""
    from cfgrl_core.evaluate import evaluate_sharded

    def make_act(shard):
        def act(obs, setting):      # a constant action per setting, the same in every shard
            return torch.stack([torch.full((6,), 0.5 * float(s) - 0.5) for s in setting])
        return act

    one = evaluate(make_act(0), "cheetah", "run", 3, [1, 2, 3], max_steps=15)
    assert np.array_equal(evaluate_sharded(make_act, "cheetah", "run", 3, [1, 2, 3], workers=1, max_steps=15), one)
    two = evaluate_sharded(make_act, "cheetah", "run", 3, [1, 2, 3], workers=2, max_steps=15)
    assert two.shape == (3, 3) and np.array_equal(two, one)

    def noisy(shard):               # a random action from a stream seeded by the shard
        g = torch.Generator().manual_seed(shard)
        return lambda obs, setting: torch.rand(len(setting), 6, generator=g) * 2 - 1

    a = evaluate_sharded(noisy, "cheetah", "run", 1, [5, 5], workers=2, max_steps=30)
    assert a[0, 0] != a[0, 1]       # same seed (same initial state), other shard: other noise


def test_sharded_evaluation_reports_a_failing_worker():
    import pytest

    from cfgrl_core.evaluate import evaluate_sharded

    def make_act(shard):
        if shard == 1:
            raise KeyError("shard one is broken")
        return lambda obs, setting: torch.zeros(len(setting), 6)

    with pytest.raises(RuntimeError, match=r"(?s)worker 1 failed.*shard one is broken"):
        evaluate_sharded(make_act, "cheetah", "run", 1, [1, 2], workers=2, max_steps=5)
    with pytest.raises(ValueError, match="workers"):
        evaluate_sharded(make_act, "cheetah", "run", 1, [1, 2], workers=0)


def test_sharded_evaluation_refuses_forked_workers_once_cuda_is_in_use(monkeypatch):
    import pytest

    from cfgrl_core.evaluate import evaluate_sharded

    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    with pytest.raises(ValueError, match="cannot use CUDA"):
        evaluate_sharded(lambda k: None, "cheetah", "run", 1, [1, 2], workers=2)
