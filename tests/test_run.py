"""The experiment runner: results written with provenance, a killed run resumes to identical results, bad inputs."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from cfgrl_core.dataset import DatasetError
from cfgrl_core.run import resolve_config, run


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return tmp_path_factory.mktemp("data")


def test_smoke_run_writes_results(tmp_path, data_root):
    r = run("cheetah-run", 0, "smoke", tmp_path, data_root, device="cpu", progress=False)
    saved = json.loads((tmp_path / "cheetah-run" / "seed0" / "results.json").read_text())
    assert saved["headline"] == r["headline"]
    assert set(saved["cfgrl_test"]) == {"0", "1", "3"} and set(saved["awr_test"]) == {"1", "10"}
    assert saved["provenance"]["versions"]["torch"]
    assert saved["headline"]["flow_bc_test_mean"] == saved["cfgrl_test"]["0"][0]
    # the labels' positive fraction, recomputed here from the trained critic and the dataset: Q - V >= 0
    from cfgrl_core.checkpoint import load_trained
    from cfgrl_core.dataset import load_dataset
    critic = load_trained(tmp_path / "cheetah-run" / "seed0" / "checkpoint.pt", "cpu")["critic"]
    data = load_dataset(data_root, "cheetah", "td3_snapshots", "run", episodes=3, progress=False)
    obs, act = torch.from_numpy(data["observations"]), torch.from_numpy(data["actions"])
    with torch.no_grad():
        expected = (critic.q_values(obs, act) - critic.value(obs) >= 0).float().mean().item()
    assert saved["positive_fraction"] == pytest.approx(expected, abs=1e-6)
    assert 0.0 < expected < 1.0


def test_joint_schedule_runs_and_resumes_identically(tmp_path, data_root):
    cfg = {"schedule": "joint", "critic_steps": 12, "actor_steps": 12, "checkpoint_every": 4, "log_every": 4}
    reference = run("walker-run", 0, cfg, tmp_path / "ref", data_root, device="cpu", progress=False)
    assert [c["step"] for c in reference["curves"]["joint"]] == [4, 8, 12]
    assert {"q_loss", "v_loss", "cfgrl_loss", "awr_T1_loss", "awr_T10_loss"} <= set(reference["curves"]["joint"][0])
    import cfgrl_core.run as runner
    saves = []

    class Killed(Exception):
        pass

    def save_then_die(*args, **kwargs):   # the second checkpoint (step 8) is written, then the run "dies"
        original(*args, **kwargs)
        saves.append(1)
        if len(saves) == 2:
            raise Killed

    original = runner.save_checkpoint
    runner.save_checkpoint = save_then_die
    try:
        with pytest.raises(Killed):
            run("walker-run", 0, cfg, tmp_path / "killed", data_root, device="cpu", progress=False)
    finally:
        runner.save_checkpoint = original
    resumed = run("walker-run", 0, cfg, tmp_path / "killed", data_root, device="cpu", progress=False)
    for key in ("cfgrl_test", "awr_test", "curves", "positive_fraction"):
        assert resumed[key] == reference[key], key
    with pytest.raises(ValueError, match="critic_steps must equal actor_steps"):
        resolve_config({**cfg, "critic_steps": 10})


def test_killed_run_resumes_to_identical_results(tmp_path, data_root):
    reference = run("walker-run", 1, "smoke", tmp_path / "ref", data_root, device="cpu", progress=False)
    cmd = [sys.executable, "-m", "cfgrl_core.run", "--task", "walker-run", "--config", "smoke", "--seeds", "1",
           "--out", str(tmp_path / "killed"), "--data-root", str(data_root), "--device", "cpu"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpt = tmp_path / "killed" / "walker-run" / "seed1" / "checkpoint.pt"
    deadline = time.time() + 120
    while not ckpt.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert ckpt.exists(), "the run never wrote a checkpoint"
    assert not (ckpt.parent / "results.json").exists(), "the run finished before it could be killed"
    resumed = run("walker-run", 1, "smoke", tmp_path / "killed", data_root, device="cpu", progress=False)
    for key in ("cfgrl_val", "cfgrl_test", "awr_val", "awr_test", "headline", "positive_fraction"):
        assert resumed[key] == reference[key], key


def test_bad_runner_inputs(tmp_path, data_root):
    with pytest.raises(ValueError, match="unknown domain 'hopper'"):
        run("hopper-hop", 0, "smoke", tmp_path)
    with pytest.raises(ValueError, match="unknown task 'fly'"):
        run("walker-fly", 0, "smoke", tmp_path)
    with pytest.raises(ValueError, match="unknown config 'huge'"):
        run("walker-run", 0, "huge", tmp_path)
    with pytest.raises(ValueError, match=r"unknown runner config keys \['hidden'\]"):
        resolve_config({"hidden": (64, 64)})
    with pytest.raises(ValueError, match=r"unknown cfgrl config keys \['hidden'\]"):
        resolve_config({"cfgrl": {"hidden": (64, 64)}})
    with pytest.raises(ValueError, match="schedule must be one of"):
        resolve_config({"schedule": "alternating"})
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1"):
        resolve_config({"batch_size": 0})
    with pytest.raises(ValueError, match="w_values must be finite and >= 0"):
        resolve_config({"w_values": [1.0, -2.0]})
    with pytest.raises(DatasetError, match="does not exist"):
        run("walker-run", 0, "smoke", tmp_path, tmp_path / "empty", collect_missing=False)
    out = tmp_path / "cfg"
    run("cheetah-run", 0, {"critic_steps": 4, "actor_steps": 4, "checkpoint_every": 2}, out, data_root, "cpu",
        progress=False)
    with pytest.raises(ValueError, match="belongs to another configuration"):
        run("cheetah-run", 0, {"critic_steps": 5, "actor_steps": 4}, out, data_root, "cpu", progress=False)
    (out / "cheetah-run" / "seed0" / "checkpoint.pt").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="checkpoint.pt is corrupted"):
        run("cheetah-run", 0, {"critic_steps": 4, "actor_steps": 4, "checkpoint_every": 2}, out, data_root, "cpu",
            progress=False)


def test_export_and_load_trained(tmp_path, data_root):
    from cfgrl_core.checkpoint import CheckpointError, export_trained, load_trained
    r = run("walker-run", 2, "smoke", tmp_path, data_root, device="cpu", progress=False)
    out = export_trained(tmp_path / "walker-run" / "seed2" / "checkpoint.pt", tmp_path / "trained.pt")
    t = load_trained(out, "cpu")
    assert t["task"] == "walker-run" and t["seed"] == 2 and set(t["awr"]) == set(r["config"]["temperatures"])
    obs = torch.randn(3, 24)
    a = t["policy"].sample(obs, 1, 2.0, seed=0)
    assert a.shape == (3, 6) and torch.isfinite(t["critic"].advantage(obs, a)).all()
    (tmp_path / "bad.pt").write_bytes(b"nope")
    with pytest.raises(CheckpointError, match="bad.pt is corrupted"):
        load_trained(tmp_path / "bad.pt", "cpu")
    with pytest.raises(CheckpointError, match="holds a 'trained', expected run"):
        export_trained(out, tmp_path / "again.pt")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_trained(tmp_path / "missing.pt", "cpu")


def test_ablation_reevaluates_a_finished_run(tmp_path, data_root):
    from cfgrl_core.ablation import ablate
    from cfgrl_core.results import ablation_table, load_results
    run("cheetah-run", 3, "smoke", tmp_path, data_root, device="cpu", progress=False)
    a = ablate(tmp_path / "cheetah-run" / "seed3", "cpu")
    assert set(a["cfgrl_deterministic_test"]) == {"0", "1", "3"} and set(a["awr_sampled_test"]) == {"1", "10"}
    table = ablation_table(load_results(tmp_path), load_results(tmp_path, "ablation"))
    assert "deterministic, x₀ = 0" in table and "sampled from the Gaussian" in table



def test_compile_must_be_a_boolean():
    with pytest.raises(ValueError, match="compile must be true or false"):
        resolve_config({"compile": "yes"})
    assert resolve_config("smoke")["compile"] is False and resolve_config("book")["compile"] is True


def test_book_preset_is_the_headline_recipe_and_book20k_made_the_first_results():
    """``book`` trains what chapter 4's headline measures (the investigation's files: a 100k critic, 25k actor
    steps, 20 test episodes, the official w sweep); ``book20k`` is the recipe of the committed first results."""
    from cfgrl_core.extraction import W_VALUES
    from cfgrl_core.results import load_investigation
    from cfgrl_core.run import BOOK20K_RESULTS

    book, first = resolve_config("book"), resolve_config("book20k")
    assert (book["critic_steps"], book["actor_steps"], book["test_episodes"]) == (100_000, 25_000, 20)
    assert book["w_values"] == list(W_VALUES) and book["val_episodes"] == 5
    headline = [r for r in load_investigation("extraction").values()
                if r["steps"] == 25_000 and len(r["critic"]) == 1]
    assert headline
    for r in headline:
        assert "critic_100000" in r["critic"][0] and r["episodes"] == {"val": 5, "test": 20}, r["critic"]
        assert r["preset"] == "book" and r["batch_size"] == book["batch_size"]
        assert r["actors"]["flow_binary"] == json.loads(json.dumps(book["cfgrl"])), r["task"]
    for key in ("dataset", "schedule", "batch_size", "actor_steps", "temperatures", "critic", "cfgrl", "awr"):
        assert book[key] == first[key], key
    for path in sorted(BOOK20K_RESULTS.glob("*/seed?.json")):
        cfg = json.loads(path.read_text())["config"]
        assert (cfg["critic_steps"], cfg["actor_steps"], cfg["test_episodes"]) == (20_000, 25_000, 10), path
        assert cfg["w_values"] == first["w_values"] and cfg["temperatures"] == first["temperatures"], path
