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


def test_other_format_and_version(tmp_path):
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="is not a cfgrl_core.flow_policy file"):
        load_policy(tmp_path / "other.pt")
    torch.save({"format": ckpt.FORMAT, "version": 99}, tmp_path / "v99.pt")
    with pytest.raises(CheckpointError, match="format version 99"):
        load_policy(tmp_path / "v99.pt")


def test_mismatched_weights_and_config(label_policy, tmp_path):
    payload = {"format": ckpt.FORMAT, "version": ckpt.FORMAT_VERSION,
               "config": FlowPolicyConfig(obs_dim=5, action_dim=3, hidden_dims=(64, 64)).to_dict(),
               "state_dict": label_policy.state_dict(), "metadata": {}}
    torch.save(payload, tmp_path / "mismatch.pt")
    with pytest.raises(CheckpointError, match="weights do not match its config"):
        load_policy(tmp_path / "mismatch.pt")
    payload["config"] = {**payload["config"], "depth": 3}
    torch.save(payload, tmp_path / "badcfg.pt")
    with pytest.raises(CheckpointError, match="invalid config: unknown FlowPolicyConfig keys"):
        load_policy(tmp_path / "badcfg.pt")


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
