"""Goal-conditioned pieces: the navigate data (ours and files in the official layout), hindsight goals, the two
agents, and the goal runner (resumable, results with provenance, bad input)."""
import json

import numpy as np
import pytest
import torch

pytest.importorskip("ogbench")

from cfgrl_core import pointmaze as pm  # noqa: E402
from cfgrl_core.agents.gcbc import GCBCAgent  # noqa: E402
from cfgrl_core.agents.goal_cfgrl import GoalCFGRLAgent  # noqa: E402
from cfgrl_core.dataset import DatasetError  # noqa: E402
from cfgrl_core.goal_run import resolve_config, run  # noqa: E402


@pytest.fixture(scope="module")
def smoke_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("goaldata")
    return root, pm.ensure_goal_dataset("medium", "smoke", 0, root, progress=False)


def test_generated_data_is_deterministic_in_the_official_layout_and_follows_the_oracle(smoke_data, tmp_path):
    root, path = smoke_data
    with np.load(path, allow_pickle=False) as f:
        assert set(f.files) == {"observations", "actions", "terminals", "qpos", "qvel"}
        obs, act, term = f["observations"], f["actions"], f["terminals"]
        assert obs.dtype == act.dtype == np.float32 and term.dtype == bool
        np.testing.assert_array_equal(f["qpos"], obs)            # pointmaze observes its position
    steps = pm.EPISODE_STEPS["medium"]
    assert obs.shape == (pm.SIZES["smoke"] * steps, 2) and term.sum() == pm.SIZES["smoke"]
    assert np.flatnonzero(term).tolist() == [steps * (i + 1) - 1 for i in range(pm.SIZES["smoke"])]
    assert np.abs(act).max() <= 1.0
    recipe = json.loads(path.with_suffix(".json").read_text())
    assert recipe["noise"] == pm.NOISE and recipe["provenance"]["command"]
    again = pm.generate("medium", pm.SIZES["smoke"], tmp_path / "again.npz", 0, progress=False)
    with np.load(path) as a, np.load(again) as b:
        for k in a.files:
            np.testing.assert_array_equal(a[k], b[k])
    # the oracle walks towards goals: the point covers far more of the maze than noise alone would
    span = obs[:steps].max(0) - obs[:steps].min(0)
    assert (span > 8.0).all(), span


def test_official_layout_files_load_and_bad_files_are_refused(tmp_path):
    n = 12
    official = {"observations": np.random.randn(n, 2).astype(np.float32),
                "actions": np.random.rand(n, 2).astype(np.float32) * 2 - 1,
                "terminals": np.array([0] * 5 + [1] + [0] * 5 + [1], dtype=np.float32),   # float 0/1, as some files
                "qpos": np.zeros((n, 2), np.float32), "qvel": np.zeros((n, 2), np.float32)}
    np.savez_compressed(tmp_path / "official.npz", **official)
    d = pm.load_goal_dataset(tmp_path / "official.npz")
    assert d["terminals"].dtype == bool and d["episode_ends"].tolist() == [5] * 6 + [11] * 6
    bad = {"missing.npz": {k: v for k, v in official.items() if k != "actions"},
           "nan.npz": {**official, "observations": np.full((n, 2), np.nan, np.float32)},
           "open_end.npz": {**official, "terminals": np.zeros(n, bool)},
           "lengths.npz": {**official, "actions": official["actions"][:-1]}}
    for name, arrays in bad.items():
        np.savez(tmp_path / name, **arrays)
    with pytest.raises(DatasetError, match="missing keys"):
        pm.load_goal_dataset(tmp_path / "missing.npz")
    with pytest.raises(DatasetError, match="NaN"):
        pm.load_goal_dataset(tmp_path / "nan.npz")
    with pytest.raises(DatasetError, match="last row must end an episode"):
        pm.load_goal_dataset(tmp_path / "open_end.npz")
    with pytest.raises(DatasetError, match="equal length"):
        pm.load_goal_dataset(tmp_path / "lengths.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip file")
    with pytest.raises(DatasetError, match="corrupted"):
        pm.load_goal_dataset(tmp_path / "junk.npz")
    with pytest.raises(DatasetError, match="does not exist"):
        pm.load_goal_dataset(tmp_path / "nowhere.npz")
    with pytest.raises(ValueError, match="unknown maze"):
        pm.make_env("tiny")


def test_hindsight_goals_lie_in_the_same_episodes_future():
    ends = torch.tensor([4] * 5 + [9] * 5)
    idx = torch.arange(10).repeat(200)
    g = torch.Generator().manual_seed(0)
    for geometric in (None, 0.9):
        goals = pm.hindsight_goals(idx, ends, g, geometric)
        assert ((goals > idx) | (idx == ends[idx])).all() and (goals <= ends[idx]).all()
    uniform = pm.hindsight_goals(torch.zeros(20000, dtype=torch.long), ends, g)
    counts = torch.bincount(uniform, minlength=5)[1:5].float() / 20000
    assert torch.allclose(counts, torch.full((4,), 0.25), atol=0.02), counts     # uniform over (0, 4]


def test_task_path_lengths_are_shortest_grid_paths():
    env = pm.make_env("medium").unwrapped
    for task, info in enumerate(env.task_infos, 1):
        (i0, j0), (i1, j1) = info["init_ij"], info["goal_ij"]
        manhattan = abs(i1 - i0) + abs(j1 - j0)
        length = pm.shortest_path_cells("medium", task)
        # a grid path is never shorter than the Manhattan distance and has its parity
        assert length >= manhattan and (length - manhattan) % 2 == 0
    # task 3's goal is two cells away as the crow flies but behind a wall: six cells by the corridors
    assert [pm.shortest_path_cells("medium", k) for k in pm.TASKS] == [10, 10, 6, 10, 8]


def test_goal_agents_learn_to_move_towards_the_goal():
    """Data where the action is the unit direction to the goal: both agents learn it, and guidance (w > 1) keeps the
    flow's actions pointing at the goal."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    flow = GoalCFGRLAgent(2, 2, {"hidden_dims": (64, 64)}, "cpu", g)
    gcbc = GCBCAgent(2, 2, {"hidden_dims": (64, 64)}, "cpu")

    def batch(n=256):
        s, goal = torch.randn(n, 2), torch.randn(n, 2)
        a = (goal - s) / (goal - s).norm(dim=-1, keepdim=True)
        return {"observations": s, "actions": a, "goals": goal}

    for _ in range(600):
        b = batch()
        flow.update(b), gcbc.update(b)
    test = batch(512)
    cos = lambda actions: torch.nn.functional.cosine_similarity(actions, test["actions"], dim=-1).mean()
    s, goal = test["observations"], test["goals"]
    gaussian = cos(gcbc.sample_actions(s, goal))
    by_w = {w: cos(flow.sample_actions(s, goal, w, generator=g)) for w in (0.0, 1.0, 3.0)}
    assert gaussian > 0.6 and by_w[1.0] > 0.6 and by_w[3.0] > 0.6, (gaussian, by_w)
    # w = 0 ignores the goal: it only knows that goals lie around the origin, so it points less well
    assert by_w[0.0] < by_w[1.0] - 0.1, by_w
    with pytest.raises(ValueError, match="temperature must be 0"):
        GCBCAgent(2, 2, {"temperature": 1.0}, "cpu")
    with pytest.raises(ValueError, match="p_null"):
        GoalCFGRLAgent(2, 2, {"p_null": 2.0}, "cpu")


def test_goal_run_writes_results_and_resumes_identically(smoke_data, tmp_path):
    import cfgrl_core.goal_run as goal_run

    root, _ = smoke_data
    reference = run("medium", 0, "smoke", tmp_path / "ref", root, device="cpu", progress=False)
    assert set(reference["flow_test"]) == {"0", "1", "3"} and len(reference["gcbc_test"]) == len(pm.TASKS)
    assert reference["provenance"]["command"] and reference["headline"]["flow_w"] in reference["flow_test"]
    saved = json.loads((tmp_path / "ref" / "medium" / "seed0" / "results.json").read_text())
    assert saved["headline"] == reference["headline"]
    calls, original = [], goal_run.save_checkpoint

    class Killed(Exception):
        pass

    def save_then_die(*args, **kwargs):
        original(*args, **kwargs)
        calls.append(1)
        if len(calls) == 2:
            raise Killed

    goal_run.save_checkpoint = save_then_die
    try:
        with pytest.raises(Killed):
            run("medium", 0, "smoke", tmp_path / "killed", root, device="cpu", progress=False)
    finally:
        goal_run.save_checkpoint = original
    resumed = run("medium", 0, "smoke", tmp_path / "killed", root, device="cpu", progress=False)
    for key in ("flow_val", "flow_test", "gcbc_test", "log", "headline"):
        assert resumed[key] == reference[key], key


def test_goal_runner_refuses_bad_input(tmp_path):
    with pytest.raises(ValueError, match="unknown config"):
        resolve_config("huge")
    with pytest.raises(ValueError, match="steps must be an integer"):
        resolve_config({"steps": 0})
    with pytest.raises(ValueError, match="unknown goal runner config keys"):
        resolve_config({"stepz": 3})
    with pytest.raises(ValueError, match="unknown maze"):
        run("tiny", 0, "smoke", tmp_path, tmp_path, device="cpu", progress=False)


def test_goal_run_cli_errors_are_one_line(tmp_path):
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "cfgrl_core.goal_run", "--maze", "tiny", "--out", str(tmp_path)],
                         capture_output=True, text=True)
    assert out.returncode == 2 and "unknown maze 'tiny'" in out.stderr and "Traceback" not in out.stderr


def test_pointmaze_data_cli_makes_a_file_and_refuses_bad_input(tmp_path):
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "cfgrl_core.pointmaze", "--data-root", str(tmp_path)]
    out = subprocess.run(cmd + ["--maze", "medium", "--size", "smoke"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert pm.load_goal_dataset(out.stdout.strip())["terminals"].sum() == pm.SIZES["smoke"]
    for bad, message in ((["--maze", "tiny"], "unknown maze 'tiny'"),
                         (["--maze", "medium", "--size", "huge"], "unknown size 'huge'")):
        out = subprocess.run(cmd + bad, capture_output=True, text=True)
        assert out.returncode == 2 and message in out.stderr and "Traceback" not in out.stderr
        assert len(out.stderr.strip().splitlines()) == 1, out.stderr
