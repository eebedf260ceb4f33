"""Results aggregation (what the book's tables and plots read) and the gradient-sparsity diagnostics (chapter 5)."""
import json
import math

import numpy as np
import pytest
import torch

from cfgrl_core.results import aggregate, load_results, mean_ci, results_table
from cfgrl_core.sparsity import effective_sample_size, per_sample_grad_norms, top_share


def fake_run(seed, cf_val, cf_test, aw_val, aw_test):
    return {"seed": seed, "cfgrl_val": cf_val, "cfgrl_test": cf_test, "awr_val": aw_val, "awr_test": aw_test,
            "positive_fraction": 0.4, "train_wall_s": 10.0, "eval_wall_s": 2.0}


def test_headline_uses_validation_choice_and_t_interval(tmp_path):
    runs = [fake_run(0, {"0": [1], "2": [5]}, {"0": [10, 12], "2": [20, 22]}, {"1": [9], "3": [1]},
                     {"1": [7, 7], "3": [30, 30]}),
            fake_run(1, {"0": [6], "2": [5]}, {"0": [14, 14], "2": [40, 40]}, {"1": [9], "3": [1]},
                     {"1": [9, 9], "3": [50, 50]})]
    for r in runs:
        (tmp_path / "walker-run").mkdir(exist_ok=True)
        (tmp_path / "walker-run" / f"seed{r['seed']}.json").write_text(json.dumps(r))
    loaded = load_results(tmp_path)
    a = aggregate(loaded["walker-run"])
    assert a["cfgrl_chosen"] == ["2", "0"] and a["awr_chosen"] == ["1", "1"]
    assert a["cfgrl_headline"][0] == pytest.approx((21 + 14) / 2)        # test score at the val-chosen w
    assert a["cfgrl_max_on_test"][0] == pytest.approx((21 + 40) / 2)     # the optimistic protocol is higher
    assert a["awr_headline"][0] == pytest.approx(8.0)
    m, h = mean_ci([21, 14])
    assert h == pytest.approx(12.706 * np.std([21, 14], ddof=1) / math.sqrt(2))
    assert "| walker-run | 2 |" in results_table(loaded, {"walker-run": (247, 282)})
    (tmp_path / "walker-run" / "seed2.json").write_text("{not json")
    with pytest.raises(ValueError, match="seed2.json is not valid JSON"):
        load_results(tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_results(tmp_path / "nowhere")


def test_ess_and_top_share():
    assert effective_sample_size(np.ones(50)) == pytest.approx(50)
    assert effective_sample_size([0, 0, 3.0, 0]) == pytest.approx(1)
    assert top_share(np.ones(100), 0.1) == pytest.approx(0.1)
    assert top_share([1.0] * 9 + [91.0], 0.1) == pytest.approx(0.91)
    with pytest.raises(ValueError, match="finite values >= 0"):
        effective_sample_size([1.0, -1.0])


def test_per_sample_grad_norms_are_exact(small_agents, batch):
    critic, _, awr = small_agents
    adv = critic.advantage(batch["observations"], batch["actions"])
    per = awr.per_sample_loss(batch, adv)
    norms = per_sample_grad_norms(per, awr.parameters())
    first = {k: v[:1] for k, v in batch.items()}
    g0 = torch.autograd.grad(awr.per_sample_loss(first, adv[:1])[0], list(awr.parameters()))
    assert norms[0] == pytest.approx(float(torch.sqrt(sum((g**2).sum() for g in g0))), rel=1e-5)
