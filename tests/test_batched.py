"""The batched training path (``batched`` presets): the same maths as the networks one by one, one state_dict format,
and runs that resume exactly. Tolerances are float rounding: a batched matmul sums in another order."""
import copy

import pytest
import torch
from torch import nn

from cfgrl_core.agents.awr import AWRAgent, AWRSweep
from cfgrl_core.agents.iql import IQLAgent
from cfgrl_core.networks import EnsembleMLP, mlp
from cfgrl_core.run import resolve_config, run

SHAPE = (13, (32, 32), 1, "mish", True)


def batch(n=64, obs=5, act=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"observations": torch.randn(n, obs, generator=g), "actions": torch.rand(n, act, generator=g) * 2 - 1,
            "rewards": torch.rand(n, generator=g), "next_observations": torch.randn(n, obs, generator=g),
            "masks": torch.ones(n)}


def test_ensemble_is_its_members_with_their_state_dict():
    torch.manual_seed(0)
    members = nn.ModuleList([mlp(*SHAPE) for _ in range(3)])
    torch.manual_seed(0)
    ens = EnsembleMLP(3, *SHAPE)                      # the same draws as three mlp() in a row
    x = torch.randn(7, 13)
    out = ens(x)
    assert out.shape == (3, 7, 1)
    for k in range(3):
        torch.testing.assert_close(out[k], members[k](x), rtol=1e-5, atol=1e-6)
    sd = ens.state_dict()
    assert {k: v.shape for k, v in sd.items()} == {k: v.shape for k, v in members.state_dict().items()}
    other = nn.ModuleList([mlp(*SHAPE) for _ in range(3)])
    other.load_state_dict(sd)                          # ensemble -> separate networks
    again = EnsembleMLP(3, *SHAPE)
    again.load_state_dict(members.state_dict())        # separate networks -> ensemble
    torch.testing.assert_close(again(x), out, rtol=0, atol=0)
    torch.testing.assert_close(other[2](x), members[2](x), rtol=0, atol=0)
    views = ens.member_parameters(1)
    assert {n: v.shape for n, v in views.items()} == {n: p.shape for n, p in members[1].named_parameters()}
    with pytest.raises(ValueError, match="at least one member"):
        EnsembleMLP(0, *SHAPE)


def test_batched_critic_shares_the_format_and_steps_like_the_unbatched_one():
    cfg = dict(hidden_dims=(32, 32))
    torch.manual_seed(0)
    plain = IQLAgent(5, 2, cfg, "cpu")
    torch.manual_seed(0)
    fused = IQLAgent(5, 2, {**cfg, "batched_heads": True}, "cpu")
    assert isinstance(fused.q, EnsembleMLP) and isinstance(plain.q, nn.ModuleList)
    assert {k: v.shape for k, v in fused.state_dict().items()} == {k: v.shape for k, v in plain.state_dict().items()}
    fused_sd = fused.state_dict()
    for k, v in plain.state_dict().items():
        assert torch.equal(v, fused_sd[k]), k          # same initial weights from the same seed
    b = batch()
    for _ in range(5):
        mp, mf = plain.update(b), fused.update(b)
        for k in mp:
            torch.testing.assert_close(mf[k], mp[k], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(fused.advantage(b["observations"], b["actions"]),
                               plain.advantage(b["observations"], b["actions"]), rtol=1e-4, atol=1e-5)
    reloaded = IQLAgent(5, 2, {**cfg, "batched_heads": True}, "cpu")
    reloaded.load_state_dict(plain.state_dict())       # an unbatched checkpoint loads into the batched critic
    torch.testing.assert_close(reloaded.q_values(b["observations"], b["actions"]),
                               plain.q_values(b["observations"], b["actions"]), rtol=1e-5, atol=1e-6)


def awr_agents():
    torch.manual_seed(0)
    return {f"awr_T{T:g}": AWRAgent(5, 2, {"hidden_dims": (32, 32), "temperature": T, "weighting": w}, "cpu")
            for T, w in ((1.0, "exp"), (10.0, "exp"), (1.0, "binary"))}


def test_awr_sweep_steps_like_the_agents_one_by_one_and_writes_back():
    agents, alone = awr_agents(), awr_agents()
    sweep = AWRSweep(agents)
    data = [(batch(seed=s), torch.randn(64, generator=torch.Generator().manual_seed(100 + s))) for s in range(8)]
    for b, adv in data[:4]:
        m = sweep.update(b, adv)
        ref = {f"{n}_{k}": v for n, a in alone.items() for k, v in a.update(b, adv).items()}
        assert set(m) == set(ref)
        for k in ref:
            torch.testing.assert_close(m[k], ref[k], rtol=1e-4, atol=1e-5)
    sweep.write_back()
    for name in agents:
        theirs = alone[name].state_dict()
        for k, p in agents[name].state_dict().items():
            torch.testing.assert_close(p, theirs[k], rtol=1e-4, atol=1e-6)
        mine, theirs = agents[name].optimizer.state_dict()["state"], alone[name].optimizer.state_dict()["state"]
        assert mine.keys() == theirs.keys()
        for i in theirs:
            assert float(mine[i]["step"]) == float(theirs[i]["step"]) == 4
            torch.testing.assert_close(mine[i]["exp_avg"], theirs[i]["exp_avg"], rtol=1e-3, atol=1e-6)
    # a new sweep built from the written-back agents (a resumed run) continues exactly as the first one
    resumed = AWRSweep(copy.deepcopy(agents))
    for b, adv in data[4:]:
        m1, m2 = sweep.update(b, adv), resumed.update(b, adv)
        for k in m1:
            assert torch.equal(m1[k], m2[k]), k


def test_awr_sweep_refuses_agents_of_different_shapes_or_steps():
    torch.manual_seed(0)
    a = AWRAgent(5, 2, {"hidden_dims": (32, 32)}, "cpu")
    with pytest.raises(ValueError, match="one shape"):
        AWRSweep({"a": a, "b": AWRAgent(5, 2, {"hidden_dims": (16, 16)}, "cpu")})
    b = copy.deepcopy(a)
    a.update(batch(), torch.zeros(64))
    with pytest.raises(ValueError, match="same number of Adam steps"):
        AWRSweep({"a": a, "b": b})


def test_batched_config_is_a_boolean_and_the_presets_set_it():
    with pytest.raises(ValueError, match="batched must be true or false"):
        resolve_config({"batched": 1})
    assert resolve_config("smoke")["batched"] is False and resolve_config("smoke")["critic"]["batched_heads"] is False
    for preset in ("quick", "book", "paper"):
        cfg = resolve_config(preset)
        assert cfg["batched"] and cfg["critic"]["batched_heads"], preset


def test_batched_run_resumes_identically_and_follows_the_unbatched_one(tmp_path_factory):
    """A batched smoke run, killed after a checkpoint inside the actors phase, resumes to the same results; and its
    first logged losses agree with the unbatched run's to float rounding (the frozen advantages computed once)."""
    import cfgrl_core.run as runner

    data_root = tmp_path_factory.mktemp("data")
    cfg = {"batched": True, "critic": {"batched_heads": True}, "critic_steps": 20, "actor_steps": 40,
           "checkpoint_every": 10, "log_every": 10}
    reference = run("walker-run", 0, cfg, tmp_path_factory.mktemp("ref"), data_root, device="cpu", progress=False)
    killed = tmp_path_factory.mktemp("killed")
    saves, original = [], runner.save_checkpoint

    class Killed(Exception):
        pass

    def save_then_die(*args, **kwargs):   # critic phase: step 10 and its end; actors phase: step 10, then dies
        original(*args, **kwargs)
        saves.append(1)
        if len(saves) == 3:
            raise Killed

    runner.save_checkpoint = save_then_die
    try:
        with pytest.raises(Killed):
            run("walker-run", 0, cfg, killed, data_root, device="cpu", progress=False)
    finally:
        runner.save_checkpoint = original
    resumed = run("walker-run", 0, cfg, killed, data_root, device="cpu", progress=False)
    for key in ("cfgrl_val", "cfgrl_test", "awr_val", "awr_test", "curves", "positive_fraction"):
        assert resumed[key] == reference[key], key
    plain = run("walker-run", 0, {k: v for k, v in cfg.items() if k not in ("batched", "critic")},
                tmp_path_factory.mktemp("plain"), data_root, device="cpu", progress=False)
    first = lambda r, phase: r["curves"][phase][0]
    for phase in ("critic", "actors"):
        for k, v in first(plain, phase).items():
            assert first(reference, phase)[k] == pytest.approx(v, rel=1e-3, abs=1e-4), (phase, k)
