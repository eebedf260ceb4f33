"""Save -> load round trips, atomic writes, and clear errors on broken or mismatched files."""
import zipfile

import pytest
import torch

import cfgrl_core.checkpoint as ckpt
from cfgrl_core import CheckpointError, FlowPolicy, FlowPolicyConfig, load_policy, save_policy


def test_round_trip_gives_identical_samples(label_policy, goal_policy, tmp_path):
    for policy, obs, cond in ((label_policy, torch.randn(3, 5), 1), (goal_policy, torch.randn(3, 4), torch.randn(3, 3))):
        path = save_policy(policy, tmp_path / "p.pt", metadata={"seed": 7, "note": "test"})
        loaded = load_policy(path, device="cpu")
        assert loaded.config == policy.config
        assert loaded.metadata == {"seed": 7, "note": "test"}
        assert torch.equal(policy.sample(obs, cond, 2.5, num_samples=4, seed=1),
                           loaded.sample(obs, cond, 2.5, num_samples=4, seed=1))


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_policy(tmp_path / "nope.pt")


def test_corrupted_files(label_policy, tmp_path):
    path = save_policy(label_policy, tmp_path / "p.pt")
    data = path.read_bytes()
    (tmp_path / "trunc.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="trunc.pt is corrupted"):
        load_policy(tmp_path / "trunc.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="junk.pt is corrupted"):
        load_policy(tmp_path / "junk.pt")


class Evil:
    """Any class instance: loading it would need unpickling code."""


def test_pickled_objects_are_refused(tmp_path):
    torch.save({"format": ckpt.FORMAT, "obj": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="corrupted or not a torch file"):
        load_policy(tmp_path / "evil.pt")


def test_other_format_version_and_kind(label_policy, tmp_path):
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="other.pt is not a cfgrl_core checkpoint"):
        load_policy(tmp_path / "other.pt")
    torch.save({"format": ckpt.FORMAT, "version": 99}, tmp_path / "v99.pt")
    with pytest.raises(CheckpointError, match="format version 99; this cfgrl_core reads version 2"):
        load_policy(tmp_path / "v99.pt")
    ckpt.save_checkpoint(tmp_path / "run.pt", "run", config="{}")
    with pytest.raises(CheckpointError, match="run.pt holds a 'run', expected module"):
        load_policy(tmp_path / "run.pt")
    from cfgrl_core.td3 import Actor, save_actor
    save_actor(Actor(5, 3, 8), tmp_path / "td3.pt", {})
    with pytest.raises(CheckpointError, match="holds a 'td3_actor' network, expected 'flow_policy'"):
        load_policy(tmp_path / "td3.pt")


def test_mismatched_weights_and_spec(label_policy, tmp_path):
    record = ckpt.module_record(label_policy)
    record["spec"] = {"config": FlowPolicyConfig(obs_dim=5, action_dim=3, hidden_dims=(64, 64)).to_dict()}
    ckpt.save_checkpoint(tmp_path / "mismatch.pt", "module", module=record, metadata={})
    with pytest.raises(CheckpointError, match="weights do not match the flow_policy's spec"):
        load_policy(tmp_path / "mismatch.pt")
    record["spec"] = {"config": {**record["spec"]["config"], "depth": 3}}
    ckpt.save_checkpoint(tmp_path / "badcfg.pt", "module", module=record, metadata={})
    with pytest.raises(CheckpointError, match="invalid spec for a flow_policy .*unknown FlowPolicyConfig keys"):
        load_policy(tmp_path / "badcfg.pt")
    ckpt.save_checkpoint(tmp_path / "nokind.pt", "module", module={"kind": "mystery", "spec": {}, "state_dict": {}})
    with pytest.raises(CheckpointError, match="not a module record of a known kind"):
        ckpt.load_module(tmp_path / "nokind.pt")


@pytest.mark.parametrize("which", [0, 1, 2])
def test_agents_round_trip_through_module_records(small_agents, which, tmp_path):
    agent = small_agents[which]
    ckpt.save_module(agent, tmp_path / "agent.pt", {"note": which})
    loaded = ckpt.load_module(tmp_path / "agent.pt", agent.KIND, "cpu")
    assert loaded.config == agent.config and loaded.metadata == {"note": which}
    assert all(torch.equal(a, b) for a, b in zip(agent.state_dict().values(), loaded.state_dict().values()))


def test_failed_write_keeps_the_previous_file(label_policy, tmp_path, monkeypatch):
    path = save_policy(label_policy, tmp_path / "p.pt")
    before = path.read_bytes()

    def exploding_save(obj, f):
        f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(ckpt.torch, "save", exploding_save)
    other = FlowPolicy(FlowPolicyConfig(obs_dim=5, action_dim=3, hidden_dims=(8,)), device="cpu")
    with pytest.raises(OSError, match="disk full"):
        save_policy(other, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["p.pt"]  # no temp file left behind
    assert zipfile.is_zipfile(path)
