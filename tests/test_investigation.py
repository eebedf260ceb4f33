"""Chapter 4's investigation tools: critic convergence curves, and policy extraction on one frozen critic."""
import json

import numpy as np
import pytest
import torch

from conftest import make_batch


def test_spearman_and_behaviour_groups():
    from cfgrl_core.critic_convergence import behaviour_groups, spearman

    x = np.array([0.1, 0.5, 0.2, 0.9])
    assert spearman(x, 10 * x + 3) == pytest.approx(1.0)
    assert spearman(x, -x) == pytest.approx(-1.0)
    assert spearman(np.array([1.0, 1.0, 2.0]), np.array([1.0, 2.0, 3.0])) == pytest.approx(np.sqrt(3) / 2)
    returns = np.array([5.0, 900.0, 300.0, 10.0, 600.0, 0.5, 2.0])
    random_episodes = np.array([False, False, False, False, False, True, True])
    g = behaviour_groups(returns, random_episodes)
    assert list(g["random actions"]) == [5, 6]
    together = np.sort(np.concatenate([g["low third"], g["mid third"], g["high third"]]))
    assert list(together) == [0, 1, 2, 3, 4]                          # a partition of the other episodes
    assert max(returns[g["low third"]]) < min(returns[g["high third"]])


def test_binary_and_zero_temperature_gaussians():
    from cfgrl_core.agents.awr import AWRAgent

    adv = torch.tensor([-0.5, 0.0, 0.2, -1e-6])
    assert AWRAgent(5, 2, {"hidden_dims": (8,), "weighting": "binary"}).weights(adv).tolist() == [0, 1, 1, 0]
    assert AWRAgent(5, 2, {"hidden_dims": (8,), "temperature": 0.0}).weights(adv).tolist() == [1, 1, 1, 1]
    with pytest.raises(ValueError, match="weighting"):
        AWRAgent(5, 2, {"weighting": "softmax"})


def test_flow_with_exponential_weights_weights_the_conditional_branch():
    from cfgrl_core.agents.cfgrl import CFGRLAgent
    from cfgrl_core.flow import official_cfgrl_terms

    torch.manual_seed(0)
    agent = CFGRLAgent(5, 2, {"hidden_dims": (16,), "weighting": "exp", "temperature": 3.0, "max_weight": 2.0})
    b, adv = make_batch(), torch.linspace(-1, 1, 64)
    w = agent.condition_weights(adv)
    assert torch.allclose(w, torch.exp(3 * adv).clamp(max=2.0)) and w.max() == 2.0
    agent.generator.manual_seed(5)
    loss = agent.per_sample_loss(b, adv)
    agent.generator.manual_seed(5)
    _, cond_err, uncond_err = official_cfgrl_terms(agent.policy, b["observations"], b["actions"], (adv >= 0).long(),
                                                   generator=agent.generator)
    assert torch.allclose(loss, w * cond_err + 0.1 * uncond_err)
    binary = CFGRLAgent(5, 2, {"hidden_dims": (16,)})
    assert binary.condition_weights(adv).tolist() == (adv >= 0).float().tolist()
    with pytest.raises(ValueError, match="weighting"):
        CFGRLAgent(5, 2, {"weighting": "soft"})


def test_critic_convergence_resumes_identically_and_extraction_runs(tmp_path):
    from cfgrl_core.critic_convergence import converge
    from cfgrl_core.extraction import extract

    data = tmp_path / "data"
    straight = converge("cheetah-run", 0, 40, 20, 0.9, "smoke", tmp_path / "a", data, "cpu", 1, progress=False)
    converge("cheetah-run", 0, 20, 20, 0.9, "smoke", tmp_path / "b", data, "cpu", 1, progress=False)
    resumed = converge("cheetah-run", 0, 40, 20, 0.9, "smoke", tmp_path / "b", data, "cpu", 1, progress=False)
    assert resumed["curve"] == straight["curve"]           # bit for bit: the labels' flips included
    first, second = straight["curve"]
    assert first["flipped_fraction"] is None and 0.0 <= second["flipped_fraction"] <= 1.0
    assert second["td_rmse"] > 0 and 0.0 < second["positive_fraction"] < 1.0
    saved = json.loads((tmp_path / "a" / "cheetah-run" / "expectile0.9" / "seed0" / "convergence.json").read_text())
    assert saved["curve"] == straight["curve"] and saved["provenance"]["versions"]["torch"]

    critic = tmp_path / "a" / "cheetah-run" / "expectile0.9" / "seed0" / "critic_40.pt"
    r = extract("cheetah-run", critic, 0, 10, "smoke", ["gauss_binary", "flow_exp_T3"], tmp_path / "x", data,
                "cpu", 1, progress=False, w_values=(0.0, 1.0), eval_max_steps=5)
    assert set(r["summary"]) == {"gauss_binary | mean", "gauss_binary | sample", "flow_exp_T3 | sample",
                                 "flow_exp_T3 | x0=0"}
    assert set(r["returns"]["flow_exp_T3"]["sample"]["test"]) == {"0", "1"}
    from cfgrl_core.results import extraction_table, plot_convergence
    assert len(extraction_table(r).splitlines()) == 2 + 4
    assert len(plot_convergence({"cheetah-run/convergence": straight}).axes) == 4
    longer = extract("cheetah-run", critic, 0, 20, "smoke", ["gauss_binary", "flow_exp_T3"], tmp_path / "x", data,
                     "cpu", 1, progress=False, w_values=(0.0, 1.0), eval_max_steps=5)
    run_dir = tmp_path / "x" / "cheetah-run" / "expectile0.9_critic_40" / "seed0"
    assert longer["steps"] == 20 and {p.name for p in run_dir.glob("extraction_*.json")} == {
        "extraction_10.json", "extraction_20.json"}   # a budget curve: one file per budget
    with pytest.raises(ValueError, match="already trained"):
        extract("cheetah-run", critic, 0, 10, "smoke", ["gauss_binary", "flow_exp_T3"], tmp_path / "x", data,
                "cpu", 1, progress=False, w_values=(0.0, 1.0), eval_max_steps=5)


def test_label_stability_and_averaged_critics(tmp_path):
    from cfgrl_core.checkpoint import load_module
    from cfgrl_core.critic_convergence import converge, label_stability
    from cfgrl_core.extraction import AveragedCritic

    data = tmp_path / "data"
    converge("cheetah-run", 0, 60, 20, 0.9, "smoke", tmp_path, data, "cpu", 1, progress=False)
    run_dir = tmp_path / "cheetah-run" / "expectile0.9" / "seed0"
    r = label_stability("cheetah-run", run_dir, 2, "smoke", data, "cpu", 1, progress=False)
    assert [row["step"] for row in r["rows"]] == [20, 40, 60]
    assert [row["averaged_over"] for row in r["rows"]] == [1, 2, 2]
    first, second = r["rows"][:2]
    assert first["single"] == first["averaged"]                 # one critic: nothing to average
    assert second["single"]["flipped_fraction"] == converge(
        "cheetah-run", 0, 60, 20, 0.9, "smoke", tmp_path, data, "cpu", 1, progress=False)["curve"][1]["flipped_fraction"]
    critics = [load_module(run_dir / f"critic_{k}.pt") for k in (20, 40)]
    b = make_batch(obs=17, act=6)
    mean = (critics[0].advantage(b["observations"], b["actions"]) + critics[1].advantage(b["observations"],
                                                                                          b["actions"])) / 2
    assert torch.allclose(AveragedCritic(critics).advantage(b["observations"], b["actions"]), mean)

    from cfgrl_core.results import labels_table
    lines = labels_table(r, last=2).splitlines()
    assert len(lines) == 2 + 3 * 2 and "A averaged over 2 critics" in lines[4]
    assert lines[2].split(" | ")[2] == f"{second['single']['flipped_fraction']:.0%}"
    assert labels_table(r, last=3).splitlines()[2].split(" | ")[2] == "–"   # the first critic: nothing to flip from



def test_critic_settled_finds_the_first_calm_step():
    from cfgrl_core.results import critic_settled

    def curve(vs, tds, flips):
        return [{"step": 5000 * (i + 1), "v_mean": v, "td_rmse": td, "flipped_fraction": f}
                for i, (v, td, f) in enumerate(zip(vs, tds, flips))]

    rising = curve([1, 2, 3, 4, 5, 6], [0.3] * 6, [None, .3, .3, .3, .3, .3])
    assert critic_settled(rising) == {"step": None, "max_flipped_after": None}
    # V moves 5% from 10k to 20k, then less than 2% per 10k steps from 15k on
    c = curve([9.0, 9.5, 9.9, 10.0, 10.05, 10.1], [0.3] * 6, [None, .4, .2, .08, .06, .05])
    assert critic_settled(c) == {"step": 15_000, "max_flipped_after": 0.08}
    # a TD RMSE that jumps by 10% late undoes the calm before it
    c = curve([10.0] * 6, [0.3, 0.3, 0.3, 0.3, 0.3, 0.34], [None] + [0.01] * 5)
    assert critic_settled(c)["step"] is None


def test_decision_rule_and_publishing(tmp_path):
    from cfgrl_core.results import best_awr, publish_investigation, separated, test_returns

    a, b = np.array([100.0, 110, 90, 105, 95]), np.array([50.0, 60, 40, 55, 45])
    s = separated(a, b)
    assert s["diff"] == pytest.approx(50.0) and s["verdict"] == "above"
    assert s["se"] == pytest.approx(np.sqrt(a.var(ddof=1) / 5 + b.var(ddof=1) / 5))
    assert separated(b, a)["verdict"] == "below"
    assert separated(a, a + 5)["verdict"] == "not separated"
    r = {"summary": {"flow | sample": {"chosen": "3"}},
         "returns": {"flow": {"sample": {"test": {"3": [1.0, 2.0], "0": [5.0, 5.0]}}}}}
    assert test_returns(r, "flow | sample").tolist() == [1.0, 2.0]
    assert test_returns(r, "flow | sample", "0").tolist() == [5.0, 5.0]
    awr = {"summary": {"awr_T1 | mean": {}, "awr_T10 | mean": {}, "awr_T10 | sample": {}},
           "returns": {"awr_T1": {"mean": {"val": {"-": [3.0, 5.0]}}},
                       "awr_T10": {"mean": {"val": {"-": [4.0, 6.0]}},
                                   "sample": {"val": {"-": [90.0, 90.0]}}}}}
    assert best_awr(awr) == "awr_T10 | mean"      # validation, mean action only
    awr["returns"]["awr_T1"]["mean"]["val"]["-"] = [7.0, 5.0]
    assert best_awr(awr) == "awr_T1 | mean"
    with pytest.raises(ValueError, match="no AWR rows"):
        best_awr(r)

    critic = tmp_path / "critic" / "walker-run" / "expectile0.9" / "seed0"
    critic.mkdir(parents=True)
    (critic / "convergence.json").write_text('{"curve": []}')
    ext = tmp_path / "ext" / "walker-run" / "expectile0.9_critic_100000" / "seed0"
    ext.mkdir(parents=True)
    (ext / "extraction_25000.json").write_text('{"steps": 25000}')
    written = publish_investigation("walker-run", critic, [ext], tmp_path / "pub")
    assert [p.name for p in written] == ["convergence_expectile0.9_seed0.json",
                                         "extraction_expectile0.9_critic_100000_seed0_25000.json"]
    assert json.loads(written[1].read_text()) == {"steps": 25000}


def test_schedule_comparison_reads_h10_from_a_joint_run_and_a_frozen_extraction():
    from cfgrl_core.results import schedule_comparison

    frozen = {"task": "cheetah-run", "seed": 2,
              "summary": {"flow_binary | sample": {"chosen": "3"}, "awr_T1 | mean": {"chosen": "-"},
                          "awr_T10 | mean": {"chosen": "-"}},
              "returns": {"flow_binary": {"sample": {"val": {"0": [1.0], "3": [9.0]},
                                                     "test": {"3": [100.0, 120, 110, 90]}}},
                          "awr_T1": {"mean": {"val": {"-": [300.0]}, "test": {"-": [300.0, 320, 310, 290]}}},
                          "awr_T10": {"mean": {"val": {"-": [10.0]}, "test": {"-": [0.0, 0, 1, 2]}}}}}
    joint = {"task": "cheetah-run", "seed": 2,
             "cfgrl_val": {"0": [5.0], "3": [50.0]}, "cfgrl_test": {"0": [0.0, 1], "3": [150.0, 170]},
             # T = 30 is best on validation but outside the frozen file's set, so T = 10 is chosen
             "awr_val": {"1": [1.0], "10": [9.0], "30": [99.0]},
             "awr_test": {"1": [0.0, 2], "10": [200.0, 220], "30": [999.0, 999]}}
    h = schedule_comparison(joint, frozen)
    assert (h["joint_w"], h["joint_T"], h["frozen_w"], h["frozen_T"]) == ("3", "10", "3", "1")
    assert h["cfgrl"]["diff"] == pytest.approx(160 - 105)
    assert h["awr"]["diff"] == pytest.approx(210 - 305) and h["awr"]["verdict"] == "below"
    assert h["joint_gap"]["diff"] == pytest.approx(-50) and h["frozen_gap"]["diff"] == pytest.approx(-200)
    se = np.hypot(h["joint_gap"]["se"], h["frozen_gap"]["se"])
    assert h["gap_change"]["diff"] == pytest.approx(150) and h["gap_change"]["se"] == pytest.approx(se)
    assert h["gap_change"]["verdict"] == "above"       # 150 against an SE of about 17
    assert h["means"]["cfgrl joint"] == pytest.approx(160)
    with pytest.raises(ValueError, match="one task and seed"):
        schedule_comparison({**joint, "seed": 0}, frozen)
    with pytest.raises(ValueError, match="lacks AWR temperatures"):
        schedule_comparison({**joint, "awr_val": {"10": [1.0], "30": [1.0]}}, frozen)
    with pytest.raises(ValueError, match="w values"):
        schedule_comparison({**joint, "cfgrl_val": {"0": [5.0], "1": [1.0], "3": [50.0]}}, frozen)


def test_batched_extraction_continues_a_budget_like_one_straight_run(tmp_path):
    """With ``batched`` the Gaussians step as one AWRSweep on advantages computed once: continuing 6 -> 12 steps
    (written back into the agents, saved, rebuilt) gives the results of one run straight to 12 steps."""
    from cfgrl_core.critic_convergence import converge
    from cfgrl_core.extraction import extract

    data = tmp_path / "data"
    converge("cheetah-run", 0, 20, 20, 0.9, "smoke", tmp_path / "c", data, "cpu", 1, progress=False)
    critic = tmp_path / "c" / "cheetah-run" / "expectile0.9" / "seed0" / "critic_20.pt"
    preset = {"preset": "smoke", "batched": True}
    names = ["gauss_bc", "gauss_binary", "awr_T3", "flow_binary"]
    kw = dict(progress=False, w_values=(0.0, 1.0), eval_max_steps=5)
    straight = extract("cheetah-run", critic, 0, 12, preset, names, tmp_path / "s", data, "cpu", 1, **kw)
    extract("cheetah-run", critic, 0, 6, preset, names, tmp_path / "r", data, "cpu", 1, **kw)
    continued = extract("cheetah-run", critic, 0, 12, preset, names, tmp_path / "r", data, "cpu", 1, **kw)
    assert continued["batched"] is True and continued["returns"] == straight["returns"]
    assert continued["log"] == straight["log"]
    # the evaluation shared by two forked workers: every row and episode is there, deterministic rows unchanged
    shared = extract("cheetah-run", critic, 0, 12, preset, names, tmp_path / "r", data, "cpu", 1, **kw,
                     eval_workers=2)
    assert shared["eval_workers"] == 2 and straight["eval_workers"] == 1
    for actor, modes in straight["returns"].items():
        for mode, splits in modes.items():
            for split, by_w in splits.items():
                assert {w: len(v) for w, v in shared["returns"][actor][mode][split].items()} == \
                    {w: len(v) for w, v in by_w.items()}
    for split in ("val", "test"):   # other batch sizes per forward pass: equal up to float rounding
        assert np.allclose(shared["returns"]["gauss_bc"]["mean"][split]["-"],
                           straight["returns"]["gauss_bc"]["mean"][split]["-"], rtol=1e-4)


def test_the_seed_rule_uses_a_t_interval_over_seeds():
    from cfgrl_core.results import over_seeds

    v = over_seeds([30.0, 40.0, 50.0])     # mean 40, sd 10: 40 ± 4.303 * 10 / sqrt(3) = 40 ± 24.8
    assert v["verdict"] == "ahead" and v["n"] == 3
    assert abs(v["mean"] - 40) < 1e-9 and abs(v["half_width"] - 4.303 * 10 / 3 ** 0.5) < 1e-6
    assert over_seeds([-30.0, -40.0, -50.0])["verdict"] == "behind"
    assert over_seeds([58.0, -17.0, 20.0])["verdict"] == "not separated"
    assert over_seeds([10.0, 12.0])["verdict"] == "too few seeds"     # the rule asks for 3
    assert over_seeds([10.0, 12.0], min_seeds=2)["verdict"] == "not separated"   # 11 ± 12.706
    assert over_seeds([5.0])["verdict"] == "too few seeds"
    with pytest.raises(ValueError, match="finite"):
        over_seeds([1.0, float("nan"), 2.0])


def test_investigation_on_the_rnd_recipe_lives_apart_and_refuses_mixed_data(tmp_path):
    """Item 6 of #11 runs the same tools on the exploration data: the critic's folder names the recipe, its
    convergence file records it, label groups come from the rnd recipe's own episodes, and an extraction that reads
    other data than its critic was trained on is refused with the reason."""
    from cfgrl_core.collect import episode_recipes
    from cfgrl_core.critic_convergence import converge, critic_run_dir, label_stability
    from cfgrl_core.extraction import critic_data, extract

    data = tmp_path / "data"
    r = converge("walker-run", 0, 20, 20, 0.9, "smoke", tmp_path / "c", data, "cpu", 1, progress=False, data="rnd")
    run_dir = critic_run_dir(tmp_path / "c", "walker-run", 0.9, 0, "rnd")
    assert run_dir.name == "seed0" and run_dir.parent.name == "expectile0.9_rnd"
    assert critic_run_dir(tmp_path, "walker-run", 0.9, 0).parent.name == "expectile0.9"   # td3 folders unchanged
    assert r["data"] == "rnd" and critic_data(run_dir / "critic_20.pt") == "rnd"
    assert (data / "walker" / "rnd" / "buffer").is_dir() and not (data / "walker" / "td3_snapshots").exists()
    n_random = sum(e["sigma"] is None for e in episode_recipes("walker", 3, method="rnd"))
    assert r["groups"]["random actions"]["episodes"] == n_random
    assert label_stability("walker-run", run_dir, 2, "smoke", data, "cpu", 1, progress=False,
                           data="rnd")["rows"]
    with pytest.raises(ValueError, match="trained on the 'rnd' data"):
        extract("walker-run", run_dir / "critic_20.pt", 0, 5, "smoke", ["gauss_bc"], tmp_path / "x", data, "cpu", 1,
                progress=False, w_values=(0.0,), eval_max_steps=5)
    out = extract("walker-run", run_dir / "critic_20.pt", 0, 5, {"preset": "smoke", "data": "rnd"}, ["gauss_bc"],
                  tmp_path / "x", data, "cpu", 1, progress=False, w_values=(0.0,), eval_max_steps=5)
    assert out["data"] == "rnd" and (tmp_path / "x" / "walker-run" / "expectile0.9_rnd_critic_20").is_dir()


def test_w_sweeps_over_seeds_and_the_recipe_figure():
    """Chapter 4's rnd section: one flow row's whole w sweep per seed (only the w every seed evaluated), and a figure
    with one line and one dashed reference level per dataset recipe."""
    import matplotlib

    matplotlib.use("Agg")
    from cfgrl_core.results import INVESTIGATION, INVESTIGATION_RND, plot_recipes, w_sweep_over_seeds

    def run(test):
        return {"returns": {"flow_binary": {"sample": {"test": test}}}}

    files = {0: run({"0": [1.0, 3.0], "1": [10.0, 20.0], "3": [7.0, 7.0]}),
             1: run({"0": [5.0, 5.0], "1": [30.0, 30.0]})}
    sweep = w_sweep_over_seeds(files)
    assert sweep == {"0": [2.0, 5.0], "1": [15.0, 30.0]}          # w = 3 is missing on seed 1
    fig = plot_recipes({"walker-run": {"td3_snapshots": sweep, "rnd": {"0": [1.0, 2.0], "1": [4.0, 6.0]}}},
                       {"walker-run": {"td3_snapshots": [20.0, 24.0], "rnd": [3.0, 5.0]}})
    ax = fig.axes[0]
    assert [line.get_label() for line in ax.lines if not line.get_label().startswith("_")] == [
        "best AWR (mean), td3_snapshots", "best AWR (mean), rnd"]
    assert np.allclose(ax.lines[0].get_ydata(), [3.5, 22.5])     # the first recipe's means over seeds
    assert INVESTIGATION_RND.parent == INVESTIGATION.parent and INVESTIGATION_RND != INVESTIGATION


def test_compare_gaps_combines_the_two_gaps_standard_errors():
    from cfgrl_core.results import compare_gaps, separated

    rng = np.random.default_rng(0)
    cf_a, aw_a = rng.normal(200, 30, 20), rng.normal(150, 30, 20)
    cf_b, aw_b = rng.normal(100, 30, 20), rng.normal(300, 30, 20)
    c = compare_gaps(cf_a, aw_a, cf_b, aw_b)
    assert c["gap_a"] == separated(cf_a, aw_a) and c["gap_b"] == separated(cf_b, aw_b)
    assert c["cfgrl"]["verdict"] == "above" and c["awr"]["verdict"] == "below"
    assert np.isclose(c["gap_change"]["diff"], c["gap_a"]["diff"] - c["gap_b"]["diff"])
    assert np.isclose(c["gap_change"]["se"], np.hypot(c["gap_a"]["se"], c["gap_b"]["se"]))
    assert c["gap_change"]["verdict"] == "above"
    same = compare_gaps(cf_a, aw_a, cf_a, aw_a)
    assert same["gap_change"]["diff"] == 0 and same["gap_change"]["verdict"] == "not separated"
