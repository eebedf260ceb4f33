"""No number changed in the one-recipe refactor: the current code against figures saved from commit 1871b5a
(``tests/reference/reference_1871b5a.json``, made by ``tests/reference/make_reference_1871b5a.py`` at 1 thread).

* the smoke configuration's results (every return, every logged loss, the labels' positive fraction): so the
  committed ``book`` results, made by the same computation, stay valid;
* the converted TD3 snapshots give the same actions, and the collector the same episodes (array for array);
* the converted trained networks give the same actions, log-stds and critic values.

Bit-identity holds only between CPUs with the same float kernels: a CPU of another generation or vendor sums in
another order, and a smoke run, being a chaotic dynamical system, then ends elsewhere. The reference records the
fingerprint of the CPU it was made on (``reference/float_fingerprint.py``); on a CPU with another fingerprint the
bit-identity tests skip, saying so, and the networks' first output rows are still compared within a tolerance.
"""
import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

REFERENCE = json.loads((Path(__file__).parent / "reference" / "reference_1871b5a.json").read_text())
sys.path.insert(0, str(Path(__file__).parent / "reference"))
from float_fingerprint import float_fingerprint  # noqa: E402

same_kernels = pytest.mark.skipif(
    float_fingerprint() != REFERENCE["fingerprint"],
    reason=f"bit-identity reference made on a CPU with other float kernels (fingerprint "
           f"{REFERENCE['fingerprint']}, here {float_fingerprint()}); values compared within a tolerance instead")


def digest(x) -> str:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return hashlib.sha256(np.ascontiguousarray(x).tobytes()).hexdigest()


@pytest.fixture(autouse=True)
def one_thread():
    """The reference was made with one thread (floating-point sums depend on the thread count)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def smoke_runs(tmp_path_factory):
    from cfgrl_core.run import run

    before = torch.get_num_threads()   # module fixtures are set up before the function-scoped one_thread
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("identity")
    try:
        return root, {task: run(task, 0, "smoke", root / "runs", root, device="cpu", progress=False)
                      for task in ("walker-run", "cheetah-run")}
    finally:
        torch.set_num_threads(before)


@same_kernels
@pytest.mark.parametrize("task", ["walker-run", "cheetah-run"])
def test_smoke_results_are_identical(smoke_runs, task):
    _, runs = smoke_runs
    ref, new = REFERENCE["smoke"][task], runs[task]
    for key in ("cfgrl_val", "cfgrl_test", "awr_val", "awr_test", "headline", "positive_fraction",
                "advantage_quantiles"):
        assert new[key] == ref[key], key
    for phase, entries in ref["curves"].items():
        assert len(new["curves"][phase]) == len(entries)
        for old, now in zip(entries, new["curves"][phase]):
            assert {k: now[k] for k in old} == old, (phase, old["step"])   # new metrics may be logged beside


@same_kernels
@pytest.mark.parametrize("domain", ["walker", "cheetah"])
def test_collected_episodes_are_identical(smoke_runs, domain):
    from cfgrl_core.dataset import episode_files, read_episode

    root, _ = smoke_runs
    files = episode_files(root, domain, "td3_snapshots")
    assert [f.name for f in files] == sorted(REFERENCE["smoke_episodes"][domain])
    for f in files:
        episode = read_episode(f)
        assert {k: digest(v) for k, v in episode.items()} == REFERENCE["smoke_episodes"][domain][f.name], f.name


@same_kernels
def test_converted_td3_snapshots_act_identically():
    import cfgrl_core
    from cfgrl_core.td3 import load_actor

    assets = Path(cfgrl_core.__file__).parent / "assets" / "td3"
    assert len(REFERENCE["td3"]) == 33
    for name, expected in REFERENCE["td3"].items():
        actor, metadata = load_actor(assets / name)
        x = torch.randn(64, actor.obs_dim, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            assert digest(actor(x)) == expected, name
        assert metadata["file"] == Path(name).name


@same_kernels
@pytest.mark.parametrize("task", ["walker-run", "cheetah-run"])
def test_converted_trained_networks_act_identically(task):
    from cfgrl_core.checkpoint import load_trained, trained_asset

    t = load_trained(trained_asset(task, 0), "cpu")
    ref = REFERENCE["trained"][task]
    obs = torch.randn(32, t["policy"].config.obs_dim, generator=torch.Generator().manual_seed(1))
    for w in (0.0, 1.0, 3.0):
        assert digest(t["policy"].sample(obs, 1, w, num_samples=4, seed=0)) == ref[f"policy_w{w:g}"], w
    for T, agent in t["awr"].items():
        assert digest(agent.sample_actions(obs)) == ref[f"awr_T{T:g}_mean"], T
        assert digest(agent.log_std) == ref[f"awr_T{T:g}_logstd"], T
    acts = torch.rand(32, t["policy"].config.action_dim, generator=torch.Generator().manual_seed(2)) * 2 - 1
    assert digest(t["critic"].q_values(obs, acts)) == ref["critic_q"]
    assert digest(t["critic"].value(obs)) == ref["critic_v"]


def close(value, expected):
    return np.allclose(np.asarray(value)[:4], np.asarray(expected), rtol=1e-4, atol=1e-5)


def test_converted_td3_snapshots_act_within_tolerance():
    import cfgrl_core
    from cfgrl_core.td3 import load_actor

    assets = Path(cfgrl_core.__file__).parent / "assets" / "td3"
    assert len(REFERENCE["td3_values"]) == 33
    for name, expected in REFERENCE["td3_values"].items():
        actor, _ = load_actor(assets / name)
        x = torch.randn(64, actor.obs_dim, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            assert close(actor(x), expected), name


@pytest.mark.parametrize("task", ["walker-run", "cheetah-run"])
def test_converted_trained_networks_act_within_tolerance(task):
    from cfgrl_core.checkpoint import load_trained, trained_asset

    t = load_trained(trained_asset(task, 0), "cpu")
    ref = REFERENCE["trained_values"][task]
    obs = torch.randn(32, t["policy"].config.obs_dim, generator=torch.Generator().manual_seed(1))
    for w in (0.0, 1.0, 3.0):
        assert close(t["policy"].sample(obs, 1, w, num_samples=4, seed=0), ref[f"policy_w{w:g}"]), w
    for T, agent in t["awr"].items():
        assert close(agent.sample_actions(obs), ref[f"awr_T{T:g}_mean"]), T
    acts = torch.rand(32, t["policy"].config.action_dim, generator=torch.Generator().manual_seed(2)) * 2 - 1
    assert close(t["critic"].q_values(obs, acts), ref["critic_q"])
    assert close(t["critic"].value(obs), ref["critic_v"])
