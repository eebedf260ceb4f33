"""Goal-conditioned runs on OGBench's pointmaze: Gaussian GCBC and one guided flow, then success at every w.

    python -m cfgrl_core.goal_run --maze medium --config book --seeds 0 1 2 --out runs/goals

Both agents learn from the same batches: rows (s, a) of the navigate data (:mod:`cfgrl_core.pointmaze`) with hindsight
goals g, states of the same episode's future (uniform, the official choice). The flow (:mod:`.agents.goal_cfgrl`) is
sampled at every w of ``w_values`` from one network: w = 0 is goal-agnostic flow BC (its learned null goal), w = 1
flow GCBC, w > 1 guidance towards the goal; no value function anywhere. The Gaussian (:mod:`.agents.gcbc`) acts with
its mean. Validation episodes (their own seeds) choose the headline w; test episodes are reported: OGBench's 5 tasks
of the maze, ``test_episodes`` episodes each, success rate. Resumable from ``<out>/<maze>/seed<k>/checkpoint.pt``
(written atomically); results in ``results.json`` with the config and provenance.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from .agents import resolve_preset
from .agents.gcbc import CONFIG as GCBC_CONFIG
from .agents.gcbc import GCBCAgent
from .agents.goal_cfgrl import CONFIG as FLOW_CONFIG
from .agents.goal_cfgrl import GoalCFGRLAgent
from .checkpoint import (ASSETS, CheckpointError, atomic_write_text, build_module, module_record,
                         read_checkpoint, save_checkpoint)
from .networks import default_device, default_threads, torch_threads
from .pointmaze import (EVAL_STEPS, SIZES, TASKS, check_maze, ensure_goal_dataset, evaluate_goals,
                        hindsight_goals, load_goal_dataset)
from .provenance import provenance
from .run import choose_on_validation, episode_seeds

AGENT_CONFIGS = {"flow": FLOW_CONFIG, "gcbc": GCBC_CONFIG}

PRESETS = {
    # CI: seconds. Numbers from it mean nothing.
    "smoke": dict(dataset="smoke", batch_size=64, steps=60, w_values=[0.0, 1.0, 3.0], val_episodes=1,
                  test_episodes=1, eval_max_steps=40, checkpoint_every=20, log_every=20,
                  flow=dict(hidden_dims=(64, 64), sample_steps=4), gcbc=dict(hidden_dims=(64, 64))),
    # The chapter's figures, sized for 2 CPU cores: 3x256 networks (official: 4x512), batch 256 (official: 1024),
    # 50k steps (official: 1M), 200 data episodes of 1001 steps (OGBench: 1000), 16 Euler steps.
    "book": dict(dataset="book", batch_size=256, steps=50_000, w_values=[0.0, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0],
                 val_episodes=2, test_episodes=10, eval_max_steps=EVAL_STEPS, checkpoint_every=5_000,
                 log_every=1_000, flow=dict(hidden_dims=(256, 256, 256)), gcbc=dict(hidden_dims=(256, 256, 256))),
}


def resolve_config(config) -> dict:
    """A preset's name, or a dict of overrides of a preset (``"preset"``, default smoke); unknown keys refused."""
    cfg = resolve_preset(config, PRESETS, AGENT_CONFIGS, "goal runner",
                         ("batch_size", "steps", "checkpoint_every", "log_every", "val_episodes", "test_episodes",
                          "eval_max_steps"))
    if not cfg["w_values"] or any((not np.isfinite(w)) or w < 0 for w in cfg["w_values"]):
        raise ValueError(f"config value w_values must be finite and >= 0, got {cfg['w_values']!r}")
    if cfg["dataset"] not in SIZES:
        raise ValueError(f"config value dataset must be one of {sorted(SIZES)}, got {cfg['dataset']!r}")
    return cfg


def settings_actor(flow: GoalCFGRLAgent, gcbc: GCBCAgent, w_values, seed: int):
    """``act`` for :func:`cfgrl_core.pointmaze.evaluate_goals`: setting i < len(w_values) is the flow at w_values[i],
    the last setting the Gaussian's mean action."""
    device = next(flow.parameters()).device
    generator = torch.Generator(device=device).manual_seed(seed)
    w_of = torch.tensor(list(w_values) + [0.0])

    @torch.no_grad()
    def act(obs, goals, setting):
        obs, goals = obs.to(device), goals.to(device)
        out = torch.empty(obs.shape[0], flow.action_dim, device=device)
        is_flow = setting < len(w_values)
        if is_flow.any():
            rows = is_flow.to(device)
            out[rows] = flow.sample_actions(obs[rows], goals[rows], w_of[setting[is_flow]].to(device),
                                            generator=generator)
        if (~is_flow).any():
            rows = (~is_flow).to(device)
            out[rows] = gcbc.sample_actions(obs[rows], goals[rows])
        return out.clamp(-1.0, 1.0)

    return act


def run(maze: str, seed: int, config="smoke", out="runs/goals", data_root=None, device=None, progress: bool = True,
        threads: int | None = None) -> dict:
    """Train (or resume) both agents for one maze and seed, evaluate them; returns the results (also written)."""
    with torch_threads(default_threads(threads)):
        return _run(maze, seed, config, out, data_root, device, progress)


def _run(maze, seed, config, out, data_root, device, progress) -> dict:
    check_maze(maze)
    cfg = resolve_config(config)
    started_with = provenance()
    device = default_device(device)
    run_dir = Path(out) / maze / f"seed{seed}"
    run_dir.mkdir(parents=True, exist_ok=True)
    path = ensure_goal_dataset(maze, cfg["dataset"], 0, data_root, progress=progress)
    data = load_goal_dataset(path)
    D = {k: torch.as_tensor(data[k], device=device) for k in ("observations", "actions", "episode_ends")}
    n, obs_dim = D["observations"].shape
    act_dim = D["actions"].shape[1]

    torch.manual_seed(seed)
    generator = torch.Generator(device=device).manual_seed(seed)   # batches, goals and the flow loss's noise
    agents = {"flow": GoalCFGRLAgent(obs_dim, act_dim, {**cfg["flow"], "goal_dim": obs_dim}, device, generator),
              "gcbc": GCBCAgent(obs_dim, act_dim, {**cfg["gcbc"], "goal_dim": obs_dim}, device)}
    state = {"step": 0, "wall_s": 0.0, "log": []}
    identity = json.dumps({"maze": maze, "seed": seed, **cfg}, sort_keys=True)
    ckpt_path = run_dir / "checkpoint.pt"
    if ckpt_path.exists():
        ckpt = read_checkpoint(ckpt_path, "run")
        if ckpt["config"] != identity:
            raise CheckpointError(f"{ckpt_path} belongs to another configuration; use another --out or delete it")
        for name, agent in agents.items():
            agent.load_state_dict(ckpt["agents"][name]["state_dict"])
            agent.optimizer.load_state_dict(ckpt["optimizers"][name])
        generator.set_state(ckpt["generator"])
        state = ckpt["state"]

    def save():
        save_checkpoint(ckpt_path, "run", config=identity, state=state, generator=generator.get_state(),
                        agents={k: module_record(a) for k, a in agents.items()},
                        optimizers={k: a.optimizer.state_dict() for k, a in agents.items()})

    started = time.time() - state["wall_s"]
    bar = tqdm(range(state["step"], cfg["steps"]), desc=f"pointmaze-{maze} seed {seed}", initial=state["step"],
               total=cfg["steps"], disable=not progress)
    for step in bar:
        idx = torch.randint(0, n, (cfg["batch_size"],), generator=generator, device=device)
        goal_idx = hindsight_goals(idx, D["episode_ends"], generator)
        batch = {"observations": D["observations"][idx], "actions": D["actions"][idx],
                 "goals": D["observations"][goal_idx]}
        metrics = {f"{name}_loss": agent.update(batch)["loss"] for name, agent in agents.items()}
        state["step"] = step + 1
        if state["step"] % cfg["log_every"] == 0 or state["step"] == cfg["steps"]:
            state["log"].append({"step": state["step"], **{k: round(float(v), 5) for k, v in metrics.items()}})
        if state["step"] % cfg["checkpoint_every"] == 0 or state["step"] == cfg["steps"]:
            state["wall_s"] = time.time() - started
            save()

    # ---- evaluation: validation episodes choose w, test episodes are reported
    t0 = time.time()
    results = {"maze": maze, "seed": seed, "config": cfg, "provenance": started_with,
               "dataset": {"path": str(path), "transitions": n}, "tasks": list(TASKS),
               "train_wall_s": round(state["wall_s"], 1), "threads": torch.get_num_threads(), "device": str(device),
               "log": state["log"]}
    act = settings_actor(agents["flow"], agents["gcbc"], cfg["w_values"], seed)
    for split in ("val", "test"):
        success = evaluate_goals(act, maze, len(cfg["w_values"]) + 1,
                                 episode_seeds(split, seed, cfg[f"{split}_episodes"]),
                                 max_steps=cfg["eval_max_steps"], progress=progress)
        results[f"flow_{split}"] = {f"{w:g}": success[i].tolist() for i, w in enumerate(cfg["w_values"])}
        results[f"gcbc_{split}"] = success[-1].tolist()
    best_w = choose_on_validation({w: np.ravel(s) for w, s in results["flow_val"].items()})
    rate = lambda s: float(np.mean(s))
    results["headline"] = {"flow_w": best_w, "flow_test_success": rate(results["flow_test"][best_w]),
                           "flow_gcbc_test_success": rate(results["flow_test"]["1"]),
                           "flow_bc_test_success": rate(results["flow_test"]["0"]),
                           "gaussian_gcbc_test_success": rate(results["gcbc_test"])}
    results["eval_wall_s"] = round(time.time() - t0, 1)
    atomic_write_text(run_dir / "results.json", json.dumps(results, indent=1))
    return results


def goal_asset(maze: str, seed: int = 0) -> Path:
    """The shipped networks of the goal runner's ``book`` configuration (see :func:`export_goal_trained`)."""
    return ASSETS / "trained" / f"pointmaze-{maze}_seed{seed}.pt"


def export_goal_trained(run_checkpoint, out) -> Path:
    """Write a finished goal run's two agents (no optimiser or generator state) to ``out``, atomically."""
    ckpt = read_checkpoint(run_checkpoint, "run")
    cfg = json.loads(ckpt["config"])
    if ckpt["state"]["step"] < cfg["steps"]:
        raise CheckpointError(f"{run_checkpoint} is from an unfinished run ({ckpt['state']['step']} of "
                              f"{cfg['steps']} steps)")
    return save_checkpoint(out, "trained", config=ckpt["config"], agents=ckpt["agents"])


def load_goal_trained(path, device=None) -> dict:
    """``{"maze", "seed", "config", "flow", "gcbc"}`` from :func:`export_goal_trained`'s file or a goal run's
    checkpoint, in eval mode."""
    payload = read_checkpoint(path, ("trained", "run"))
    agents = {name: build_module(rec, device, where=f"checkpoint {path}").eval().requires_grad_(False)
              for name, rec in payload["agents"].items()}
    cfg = json.loads(payload["config"])
    return {"maze": cfg["maze"], "seed": cfg["seed"], "config": cfg, **agents}


def load_goal_results(root) -> dict:
    """``{maze: [results of each seed]}`` from ``<root>/<maze>/seed<k>.json`` or ``<root>/<maze>/seed<k>/results.json``."""
    out = {}
    for maze_dir in sorted(p for p in Path(root).iterdir() if p.is_dir()):
        files = sorted(maze_dir.glob("seed*.json")) + sorted(maze_dir.glob("seed*/results.json"))
        if files:
            out[maze_dir.name] = [json.loads(f.read_text()) for f in files]
    return out


def main(argv=None):
    import argparse

    from .cli import positive_int, user_errors

    p = argparse.ArgumentParser(prog="python -m cfgrl_core.goal_run",
                                description="Goal-conditioned CFGRL and Gaussian GCBC on OGBench's pointmaze.")
    p.add_argument("--maze", required=True, help="medium, large, giant or teleport")
    p.add_argument("--config", default="smoke", choices=sorted(PRESETS))
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--out", default="runs/goals")
    p.add_argument("--data-root", default=None)
    p.add_argument("--device", default=None, help="cpu, cuda or cuda:<index> (default: CUDA when present)")
    p.add_argument("--threads", type=positive_int, default=None, help="torch threads (default: $CFGRL_THREADS, else 1)")
    args = p.parse_args(argv)
    with user_errors(p):
        check_maze(args.maze)
        default_device(args.device)
        threads = default_threads(args.threads)
        for seed in args.seeds:
            r = run(args.maze, seed, args.config, args.out, args.data_root, args.device, threads=threads)
            print(json.dumps(r["headline"]))


if __name__ == "__main__":
    main()
