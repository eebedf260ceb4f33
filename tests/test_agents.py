"""The offline-RL agents: each loss computes what its docstring says, on problems with known answers; the labels
are exactly o = 1[A >= 0] of the critic's advantage; updates change the networks; configs refuse unknown keys."""
import numpy as np
import pytest
import torch

from cfgrl_core.agents.awr import AWRAgent
from cfgrl_core.agents.cfgrl import CFGRLAgent, optimality_labels
from cfgrl_core.agents.iql import IQLAgent, expectile_loss
from cfgrl_core.flow import official_cfgrl_loss


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
    n = len(data["rewards"])
    for _ in range(steps):
        idx = torch.randint(0, n, (256,))
        critic.update({k: v[idx] for k, v in data.items()})


def test_iql_learns_the_discounted_value_of_a_constant_reward():
    """One state, reward 1 forever, gamma 0.5: Q = V = 1 / (1 - gamma) = 2."""
    torch.manual_seed(0)
    n = 2048
    data = batch_of(np.ones((n, 2)), np.random.default_rng(0).uniform(-1, 1, (n, 1)), np.ones(n), np.ones((n, 2)))
    critic = IQLAgent(2, 1, dict(hidden_dims=(32, 32), activation="relu", gamma=0.5, tau=0.05, lr=1e-3), "cpu")
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
    critic = IQLAgent(1, 1, dict(hidden_dims=(64, 64), activation="relu", gamma=0.0, tau=0.05, lr=1e-3), "cpu")
    train_critic(critic, data, 800)
    adv = critic.advantage(data["observations"], data["actions"]).numpy()
    assert np.corrcoef(adv, -np.abs(a[:, 0]))[0, 1] > 0.95
    assert 0.05 < optimality_labels(adv).mean() < 0.5
    on_data = critic.on_dataset(data["observations"], data["actions"], chunk=1000)   # chunks give the same A
    torch.testing.assert_close(on_data["advantage"], torch.from_numpy(adv), rtol=0, atol=1e-6)


def critic_with_advantage_a0(obs_dim=5, act_dim=2):
    """An IQL critic whose advantage is exactly A(s, a) = a_0: both target Q heads compute
    relu(a_0) - relu(-a_0) = a_0 and V outputs 0."""
    critic = IQLAgent(obs_dim, act_dim, dict(hidden_dims=(2,), activation="relu", layer_norm=False), "cpu")
    with torch.no_grad():
        for head in critic.q_target:
            first, last = head[0], head[-1]
            first.weight.zero_(), first.bias.zero_(), last.bias.zero_()
            first.weight[0, obs_dim], first.weight[1, obs_dim] = 1.0, -1.0
            last.weight.copy_(torch.tensor([[1.0, -1.0]]))
        critic.v[-1].weight.zero_(), critic.v[-1].bias.zero_()
    return critic


def test_labels_are_exactly_the_sign_of_the_critics_advantage(batch, monkeypatch):
    from cfgrl_core import run as runner
    import cfgrl_core.agents.cfgrl as cfgrl_module

    critic = critic_with_advantage_a0()
    a0 = batch["actions"][:, 0]
    torch.testing.assert_close(critic.advantage(batch["observations"], batch["actions"]), a0)
    expected = (a0 >= 0).long()
    assert 0 < expected.sum() < len(expected)          # both labels occur in this batch
    assert torch.equal(optimality_labels(a0), expected)
    assert torch.equal(optimality_labels(torch.tensor([-1e-7, 0.0, 1e-7])), torch.tensor([0, 1, 1]))

    seen = []   # the labels the CFGRL actor trains on, when the runner steps it with this critic
    monkeypatch.setattr(cfgrl_module, "official_cfgrl_loss",
                        lambda policy, obs, act, labels, **kw: seen.append(labels) or official_cfgrl_loss(
                            policy, obs, act, labels, **kw))
    actor = CFGRLAgent(5, 2, {"hidden_dims": (16,)}, "cpu")
    metrics = runner.actors_step(critic, {"cfgrl": actor}, batch)
    assert len(seen) == 1 and torch.equal(seen[0], expected)
    assert float(metrics["cfgrl_positive_fraction"]) == pytest.approx(expected.float().mean().item())


def test_joint_step_gives_actors_the_advantage_of_the_critic_before_its_step(batch, monkeypatch):
    from cfgrl_core import run as runner

    critic = IQLAgent(5, 2, {"hidden_dims": (16,)}, "cpu")
    before = critic.advantage(batch["observations"], batch["actions"]).clone()
    seen = []
    actor = AWRAgent(5, 2, {"hidden_dims": (16,)}, "cpu")
    monkeypatch.setattr(actor, "update", lambda b, adv: seen.append(adv.clone()) or {"loss": torch.zeros(())})
    metrics = runner.joint_step(critic, {"awr_T3": actor}, batch)
    assert torch.equal(seen[0], before)
    assert not torch.equal(critic.advantage(batch["observations"], batch["actions"]), before)   # the critic stepped
    assert {"v_loss", "q_loss", "awr_T3_loss"} <= set(metrics)


@pytest.mark.parametrize("which", [1, 2])
def test_update_changes_the_actor(small_agents, batch, which):
    critic, agent = small_agents[0], small_agents[which]
    before = [p.detach().clone() for p in agent.parameters()]
    adv = critic.advantage(batch["observations"], batch["actions"])
    for _ in range(3):
        metrics = agent.update(batch, adv)
    assert all(torch.isfinite(v).all() for v in metrics.values())
    assert sum(not torch.equal(x, y) for x, y in zip(before, agent.parameters())) == len(before)


def test_critic_update_changes_q_v_and_moves_targets_by_polyak(small_agents, batch):
    critic = small_agents[0]
    q0 = [p.detach().clone() for p in critic.q.parameters()]
    tq0 = [p.detach().clone() for p in critic.q_target.parameters()]
    critic.update(batch)
    for p, tp, tp0 in zip(critic.q.parameters(), critic.q_target.parameters(), tq0):
        torch.testing.assert_close(tp, tp0 + 0.005 * (p - tp0))
    assert all(not torch.equal(a, b) for a, b in zip(q0, critic.q.parameters()))


def test_cfgrl_samples_are_guided_and_checked(small_agents):
    agent = small_agents[1]
    obs = torch.randn(3, 5)
    a = agent.sample_actions(obs, torch.tensor([0.0, 1.0, 3.0]), seed=0)
    assert a.shape == (3, 2) and a.abs().max() <= 1.0
    with pytest.raises(ValueError, match="w must be >= 0"):
        agent.sample_actions(obs, torch.tensor([0.0, -1.0, 3.0]))


def test_awr_weights_are_clipped_exponentials():
    agent = AWRAgent(1, 1, {"hidden_dims": (4,), "temperature": 3.0}, "cpu")
    adv = torch.tensor([-1.0, 0.0, 0.5, 10.0])
    torch.testing.assert_close(agent.weights(adv), torch.tensor([np.exp(-3.0), 1.0, np.exp(1.5), 100.0]).float())


def test_awr_with_temperature_zero_is_behaviour_cloning_and_higher_t_moves_to_the_best_actions():
    rng = np.random.default_rng(0)
    n = 1024
    a = torch.as_tensor(rng.uniform(-1, 1, (n, 1)), dtype=torch.float32)
    data = {"observations": torch.zeros(n, 1), "actions": a}
    adv = -(a[:, 0] - 0.6).abs()         # best action 0.6
    means = {}
    for t in (0.0, 10.0):
        torch.manual_seed(0)
        actor = AWRAgent(1, 1, dict(hidden_dims=(32,), activation="relu", temperature=t, lr=1e-2), "cpu")
        for _ in range(400):   # full batch: the optimum is the (weighted) data mean exactly
            actor.update(data, adv)
        means[t] = actor.sample_actions(data["observations"][:1]).item()
    w = torch.exp(10.0 * adv).clamp(max=100.0)
    assert abs(means[0.0] - a.mean().item()) < 0.02                        # BC: the data mean
    assert abs(means[10.0] - (w * a[:, 0]).sum().item() / w.sum().item()) < 0.02   # the weighted mean (~0.5)


def test_per_sample_losses_average_to_the_losses(small_agents, batch):
    critic, cfgrl, awr = small_agents
    adv = critic.advantage(batch["observations"], batch["actions"])
    loss, _ = awr.actor_loss(batch, adv)
    torch.testing.assert_close(awr.per_sample_loss(batch, adv).mean(), loss)
    state = cfgrl.generator.get_state()
    loss, _ = cfgrl.actor_loss(batch, adv)
    cfgrl.generator.set_state(state)     # the same (x_0, t) draws
    torch.testing.assert_close(cfgrl.per_sample_loss(batch, adv).mean(), loss)


def test_bad_agent_configs():
    with pytest.raises(ValueError, match="expectile must lie in"):
        IQLAgent(3, 2, {"expectile": 1.0})
    with pytest.raises(ValueError, match=r"unknown IQL config keys \['expectiles'\]"):
        IQLAgent(3, 2, {"expectiles": 0.9})
    with pytest.raises(ValueError, match="temperature must be a finite number >= 0"):
        AWRAgent(3, 2, {"temperature": float("nan")})
    for cls in (CFGRLAgent, AWRAgent):
        with pytest.raises(ValueError, match="unknown .* config keys"):
            cls(5, 2, {"lr_actor": 1e-3})


# ------------------------------------------------------------------------------------------ compiled losses
def _clones(seed=0):
    """Two identical critics and actor sets (one to run eagerly, one compiled) on a fixed batch."""
    from tests.conftest import make_batch

    b = make_batch(128, 5, 2, seed)
    make = lambda: (IQLAgent(5, 2, dict(hidden_dims=(32, 32)), "cpu"),  # noqa: E731
                    {"cfgrl": CFGRLAgent(5, 2, dict(hidden_dims=(32, 32), sample_steps=2), "cpu",
                                         generator=torch.Generator().manual_seed(seed)),
                     "awr": AWRAgent(5, 2, dict(hidden_dims=(32, 32), temperature=3.0), "cpu")})
    torch.manual_seed(seed)
    eager = make()
    torch.manual_seed(seed)
    fast = make()
    fast[0].compile()
    for a in fast[1].values():
        a.compile()
    return b, eager, fast


def test_compiled_updates_follow_the_eager_ones():
    """Same maths compiled: after 5 steps every loss and every parameter agrees with eager mode to float rounding,
    and the compiled CFGRL step draws (x_0, t) from its generator exactly as the eager one does."""
    b, (ce, ae), (cf, af) = _clones()
    for _ in range(5):
        me, mf = ce.update(b), cf.update(b)
        adv_e, adv_f = ce.advantage(b["observations"], b["actions"]), cf.advantage(b["observations"], b["actions"])
        for k in me:
            assert torch.allclose(me[k], mf[k], rtol=1e-4, atol=1e-5), (k, me[k], mf[k])
        for name in ae:
            le, lf = ae[name].update(b, adv_e)["loss"], af[name].update(b, adv_f)["loss"]
            assert torch.allclose(le, lf, rtol=1e-4, atol=1e-5), (name, le, lf)
    for e, f in ((ce, cf), (ae["cfgrl"], af["cfgrl"]), (ae["awr"], af["awr"])):
        for (k, pe), pf in zip(e.state_dict().items(), f.state_dict().values()):
            assert torch.allclose(pe, pf, rtol=1e-3, atol=1e-5), k
    assert torch.equal(ae["cfgrl"].generator.get_state(), af["cfgrl"].generator.get_state())


def test_compile_falls_back_to_eager_with_one_warning(monkeypatch):
    from cfgrl_core import networks

    def broken_compile(fn, **kw):
        def call(*a, **k):
            raise RuntimeError("no C++ compiler here")
        return call

    monkeypatch.setattr(networks.torch, "compile", broken_compile)
    f = networks.compiled(lambda x: x * 2, "doubling")
    with pytest.warns(RuntimeWarning, match="doubling failed.*no C\\+\\+ compiler"):
        assert f(torch.ones(2)).tolist() == [2.0, 2.0]
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert f(torch.ones(1)).tolist() == [2.0]    # eager from now on, silently
