"""IQL critic and AWR actor: the losses compute what their docstrings say, on problems with known answers."""
import numpy as np
import pytest
import torch

from cfgrl_core.awr import GaussianActor, awr_weights
from cfgrl_core.iql import IQLCritic, expectile_loss
from cfgrl_core.train import make_adam


def numeric_expectile(x, kappa):
    lo, hi = x.min(), x.max()
    for _ in range(100):   # the expectile m solves kappa E[(x-m)+] = (1-kappa) E[(m-x)+]
        m = (lo + hi) / 2
        g = kappa * np.clip(x - m, 0, None).mean() - (1 - kappa) * np.clip(m - x, 0, None).mean()
        lo, hi = (m, hi) if g > 0 else (lo, m)
    return m


def test_expectile_loss_is_minimised_at_the_expectile():
    x = torch.from_numpy(np.random.default_rng(0).standard_normal(2000))
    m = torch.zeros((), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([m], lr=0.05)
    for _ in range(600):
        loss = expectile_loss(x - m, 0.9)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert abs(m.item() - numeric_expectile(x.numpy(), 0.9)) < 1e-2
    assert torch.isclose(expectile_loss(x, 0.5), 0.5 * (x**2).mean())


def batch_of(obs, act, rew, nxt):
    f = lambda a: torch.as_tensor(a, dtype=torch.float32)  # noqa: E731
    return {"observations": f(obs), "actions": f(act), "rewards": f(rew), "next_observations": f(nxt),
            "masks": torch.ones(len(rew))}


def train_critic(critic, data, steps, seed=0):
    torch.manual_seed(seed)
    opt = make_adam(critic.parameters(), 1e-3)
    n = len(data["rewards"])
    for _ in range(steps):
        idx = torch.randint(0, n, (256,))
        loss, _ = critic.loss({k: v[idx] for k, v in data.items()})
        opt.zero_grad()
        loss.backward()
        opt.step()
        critic.update_target()


def test_iql_learns_the_discounted_value_of_a_constant_reward():
    """One state, reward 1 forever, gamma 0.5: Q = V = 1 / (1 - gamma) = 2."""
    torch.manual_seed(0)
    n = 2048
    data = batch_of(np.ones((n, 2)), np.random.default_rng(0).uniform(-1, 1, (n, 1)), np.ones(n), np.ones((n, 2)))
    critic = IQLCritic(2, 1, hidden_dims=(32, 32), activation="relu", gamma=0.5, tau=0.05)
    train_critic(critic, data, 800)
    v = critic.value(data["observations"][:8]).mean().item()
    assert abs(v - 2.0) < 0.1, v


def test_iql_advantage_ranks_actions_by_reward():
    """gamma = 0 bandit with r = -|a|: A(s, a) must order actions like the reward, and o = 1[A >= 0] is a minority
    for an upper expectile (V sits near the 0.9-expectile of Q over the data's actions)."""
    torch.manual_seed(0)
    rng = np.random.default_rng(1)
    n = 4096
    a = rng.uniform(-1, 1, (n, 1))
    data = batch_of(np.zeros((n, 1)), a, -np.abs(a[:, 0]), np.zeros((n, 1)))
    critic = IQLCritic(1, 1, hidden_dims=(64, 64), activation="relu", gamma=0.0, tau=0.05)
    train_critic(critic, data, 800)
    adv = critic.advantage(data["observations"], data["actions"]).numpy()
    assert np.corrcoef(adv, -np.abs(a[:, 0]))[0, 1] > 0.95
    assert 0.05 < (adv >= 0).mean() < 0.5


def test_bad_critic_and_actor_config():
    with pytest.raises(ValueError, match="expectile must lie in"):
        IQLCritic(3, 2, expectile=1.0)
    with pytest.raises(ValueError, match="unknown IQL config keys"):
        IQLCritic(3, 2, expectiles=0.9)
    with pytest.raises(ValueError, match="temperature must be a finite number >= 0"):
        GaussianActor(3, 2, temperature=float("nan"))


def test_awr_weights_are_clipped_exponentials():
    adv = torch.tensor([-1.0, 0.0, 0.5, 10.0])
    torch.testing.assert_close(awr_weights(adv, 3.0), torch.tensor([np.exp(-3.0), 1.0, np.exp(1.5), 100.0]).float())


def test_awr_with_temperature_zero_is_behaviour_cloning_and_higher_t_moves_to_the_best_actions():
    rng = np.random.default_rng(0)
    n = 1024
    a = torch.as_tensor(rng.uniform(-1, 1, (n, 1)), dtype=torch.float32)
    obs = torch.zeros(n, 1)
    adv = -(a[:, 0] - 0.6).abs()         # best action 0.6
    means = {}
    for t in (0.0, 10.0):
        torch.manual_seed(0)
        actor = GaussianActor(1, 1, hidden_dims=(32,), activation="relu", temperature=t)
        opt = make_adam(actor.parameters(), 1e-2)
        for _ in range(400):   # full batch: the optimum is the (weighted) data mean exactly
            loss, _ = actor.loss(obs, a, adv)
            opt.zero_grad()
            loss.backward()
            opt.step()
        means[t] = actor.act(obs[:1]).item()
    w = awr_weights(adv, 10.0)
    assert abs(means[0.0] - a.mean().item()) < 0.02                        # BC: the data mean
    assert abs(means[10.0] - (w * a[:, 0]).sum().item() / w.sum().item()) < 0.02   # the weighted mean (~0.5)
