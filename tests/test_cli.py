"""Every command-line entry point: a user error prints one line naming the problem and exits with status 2
(argparse's convention), with no traceback."""
import subprocess
import sys

import pytest

CASES = [
    ("run", ["--task", "hopper-hop"], "unknown domain 'hopper'"),
    ("run", ["--task", "walker-fly"], "unknown task 'fly'"),
    ("run", ["--task", "walker-run", "--config", "huge"], "invalid choice: 'huge'"),
    ("run", ["--task", "walker-run", "--device", "tpu"], "unknown device 'tpu'"),
    ("run", ["--task", "walker-run", "--threads", "0"], "must be an integer >= 1, got 0"),
    ("run", ["--task", "walker-run", "--no-collect", "--data-root", "{tmp}/empty"],
     "empty/walker/td3_snapshots/buffer does not exist"),
    ("run", ["--task", "walker-run", "--data", "rnd", "--dataset", "full", "--no-collect", "--data-root",
             "{tmp}/empty"], "empty/walker/rnd/buffer does not exist"),
    ("run", ["--task", "walker-run", "--dataset", "huge"], "invalid choice: 'huge'"),
    ("run", ["--task", "walker-run", "--schedule", "joint", "--critic-steps", "10", "--actor-steps", "20"],
     "critic_steps must equal actor_steps"),
    ("run", ["--task", "walker-run", "--w-values", "1", "-2"], "w_values must be finite and >= 0"),
    ("extraction", ["--task", "walker-run", "--critic", "{tmp}/none.pt", "--eval-workers", "0"],
     "must be an integer >= 1, got 0"),
    ("collect", ["--domain", "hopper"], "invalid choice: 'hopper'"),
    ("collect", ["--domain", "walker", "hopper"], "invalid choice: 'hopper'"),
    ("collect", ["--domain", "walker", "--episodes", "0"], "must be an integer >= 1, got 0"),
    ("collect", ["--domain", "walker", "--episodes", "1", "--root", "{tmp}/mixed"],
     "holds a dataset made with another configuration"),
    ("ablation", ["--task", "walker-run", "--runs", "{tmp}/none"], "holds no finished run"),
    ("ablation", ["--task", "walker-jump"], "unknown task 'jump'"),
    ("td3", ["--domain", "walker", "--task", "fly", "--out", "{tmp}/td3"], "unknown task 'fly'"),
    ("td3", ["--steps", "-5", "--out", "{tmp}/td3"], "must be an integer >= 1, got -5"),
]


@pytest.mark.parametrize("tool, args, message", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_user_errors_are_one_line_and_exit_2(tmp_path, tool, args, message):
    if tool == "collect" and "mixed" in " ".join(args):   # a dataset folder made with another seed
        (tmp_path / "mixed" / "walker" / "td3_snapshots").mkdir(parents=True)
        (tmp_path / "mixed" / "walker" / "td3_snapshots" / "collect_config.json").write_text(
            '{"config": {"domain": "walker", "episodes": 1, "seed": 99, "method": "td3_snapshots", '
            '"random_fraction": 0.1, "noise_levels": [0.0], "snapshot_dirs": []}}')
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    if tool == "run":
        args += ["--out", str(tmp_path / "runs")]
    proc = subprocess.run([sys.executable, "-m", f"cfgrl_core.{tool}", *args], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines()
             if line.strip() and not line.startswith(("usage:", " "))]
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in proc.stderr, proc.stderr
    assert lines[0].startswith(f"python -m cfgrl_core.{tool}: error:"), lines[0]
