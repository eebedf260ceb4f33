"""The offline-RL agents' joint updates run, change the networks, and reject unknown config keys."""
import pytest
import torch

from cfgrl_core.agents.awr import AWRAgent
from cfgrl_core.agents.cfgrl import CFGRLAgent

SMALL = dict(actor_hidden=(32, 32), critic_hidden=(32, 32))


def batch(n=64, obs=5, act=2):
    g = torch.Generator().manual_seed(0)
    return {"observations": torch.randn(n, obs, generator=g), "actions": torch.rand(n, act, generator=g) * 2 - 1,
            "rewards": torch.rand(n, generator=g), "next_observations": torch.randn(n, obs, generator=g),
            "masks": torch.ones(n)}


@pytest.mark.parametrize("cls", [CFGRLAgent, AWRAgent])
def test_update_changes_critic_and_actor(cls):
    agent = cls(5, 2, config=SMALL, device="cpu")
    actor = agent.policy if cls is CFGRLAgent else agent.actor
    before = [p.detach().clone() for p in list(agent.critic.parameters()) + list(actor.parameters())]
    b = batch()
    for _ in range(3):
        metrics = agent.update(b)
    assert all(torch.isfinite(v).all() for v in metrics.values())
    after = list(agent.critic.parameters()) + list(actor.parameters())
    assert sum(not torch.equal(x, y) for x, y in zip(before, after)) > len(after) // 2


def test_cfgrl_labels_come_from_the_critic_and_act_is_guided():
    agent = CFGRLAgent(5, 2, config=SMALL, device="cpu")
    metrics = agent.update(batch())
    assert 0.0 <= float(metrics["positive_fraction"]) <= 1.0
    obs = torch.randn(3, 5)
    a = agent.act(obs, torch.tensor([0.0, 1.0, 3.0]), seed=0)
    assert a.shape == (3, 2) and a.abs().max() <= 1.0
    with pytest.raises(ValueError, match="w must be >= 0"):
        agent.act(obs, torch.tensor([0.0, -1.0, 3.0]))


@pytest.mark.parametrize("cls", [CFGRLAgent, AWRAgent])
def test_unknown_config_keys(cls):
    with pytest.raises(ValueError, match="unknown .* config keys"):
        cls(5, 2, config={"lr_actor": 1e-3})
