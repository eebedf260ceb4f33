"""The offline-RL experiment runner: an IQL critic and the actors that take its advantages, then evaluation.

    python -m cfgrl_core.run --task walker-run --config smoke --seeds 0 1 2 --out runs/

The agents are the recipe (:mod:`cfgrl_core.agents`); this module only draws batches and calls their ``update``:
one critic (:class:`~cfgrl_core.agents.iql.IQLAgent`), one CFGRL flow actor (its w sweep is free: w is chosen at
sampling time; w = 0 is flow BC) and one AWR actor per temperature T, all on the same batches and advantages.
Two schedules, chosen by the config's ``schedule``:

  * ``frozen``  the critic is trained for ``critic_steps``, then frozen; the actors are trained for ``actor_steps``
                on its advantages (the book's recipe);
  * ``joint``   critic and actors are updated together at every step, the actors on the advantages of the critic
                before its step (the official code's schedule; ``critic_steps`` must equal ``actor_steps``).

Every phase is resumable from its last checkpoint (``<out>/<task>/seed<k>/checkpoint.pt``, written atomically).
Evaluation: CFGRL at every w and AWR at every T on validation episodes (used only to choose the headline w and T)
and on separate test episodes (what is reported), written to ``results.json`` with the config and provenance.
"""
from __future__ import annotations

import copy
import json
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from .agents import resolve_preset
from .agents.awr import CONFIG as AWR_CONFIG
from .agents.awr import AWRAgent, AWRSweep
from .agents.cfgrl import CONFIG as CFGRL_CONFIG
from .agents.cfgrl import CFGRLAgent, optimality_labels
from .agents.iql import CONFIG as IQL_CONFIG
from .agents.iql import IQLAgent
from .checkpoint import (ASSETS, CheckpointError, atomic_write_text, module_record, read_checkpoint,
                         save_checkpoint)
from .collect import RECIPES, SIZES, default_data_root, ensure_dataset
from .dataset import load_dataset
from .envs import parse_task
from .evaluate import evaluate, flow_policy_actor, gaussian_actors_actor
from .networks import default_device, default_threads, torch_threads
from .provenance import provenance

#: The agents' own configs; a preset overrides some of their keys under "critic", "cfgrl" and "awr".
AGENT_CONFIGS = {"critic": IQL_CONFIG, "cfgrl": CFGRL_CONFIG, "awr": AWR_CONFIG}

_BOOK = dict(dataset="book", schedule="frozen", batch_size=256, critic_steps=100_000, actor_steps=25_000,
             w_values=[0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0, 100.0],
             temperatures=[1.0, 3.0, 10.0, 30.0], val_episodes=5, test_episodes=20, checkpoint_every=2_500,
             log_every=500, compile=True, batched=True, critic=dict(hidden_dims=(256, 256, 256), batched_heads=True),
             cfgrl=dict(hidden_dims=(256, 256, 256), sample_steps=16), awr=dict(hidden_dims=(256, 256, 256)))
PRESETS = {
    # compile: run the agents' losses through torch.compile (fewer, fused kernels after a one-off compilation);
    # batched: the critic's twin Q heads and the AWR temperature sweep each run as one batched network, and in the
    # frozen schedule the critic's advantages are computed once for the whole dataset. Both change only float
    # rounding; benchmarks/update_speed.py measures what they buy. smoke keeps both off: it is bit-reproducible on
    # one CPU kind (tests/test_recipe_identity.py).
    # CI: seconds. Numbers from it mean nothing.
    "smoke": dict(dataset="smoke", schedule="frozen", batch_size=64, critic_steps=60, actor_steps=60,
                  w_values=[0.0, 1.0, 3.0], temperatures=[1.0, 10.0], val_episodes=1, test_episodes=1,
                  checkpoint_every=20, log_every=20, compile=False, batched=False,
                  critic=dict(hidden_dims=(64, 64)), cfgrl=dict(hidden_dims=(64, 64), sample_steps=4),
                  awr=dict(hidden_dims=(64, 64))),
    # The quick start: from a fresh clone to a trained and evaluated guided walker in under 15 minutes on 2 CPU cores
    # (with --threads 2): half the book's data, shorter training, one AWR temperature, fewer episodes.
    "quick": dict(dataset="quick", schedule="frozen", batch_size=256, critic_steps=10_000, actor_steps=15_000,
                  w_values=[0.0, 1.0, 1.5, 2.0, 3.0], temperatures=[10.0], val_episodes=3, test_episodes=5,
                  checkpoint_every=2_500, log_every=500, compile=True, batched=True,
                  critic=dict(hidden_dims=(256, 256, 256), batched_heads=True), cfgrl=dict(hidden_dims=(256, 256, 256), sample_steps=16),
                  awr=dict(hidden_dims=(256, 256, 256))),
    # The book's headline recipe, sized for 2 CPU cores (chapter 4, "The headline, in the paper's form"): 3x256 nets
    # (the paper: 3x512), batch 256 (paper: 1024), the critic trained once for 100k steps (where its mean V levels off
    # on the book's data), then all actors together for 25k steps on its frozen advantages (paper: 1M joint steps),
    # 16 Euler steps, the official w sweep (to 100), 20 test episodes per setting.
    "book": _BOOK,
    # The book's first recipe (chapter 4's opening table, results/book20k, and the networks the book ships in
    # assets/trained): the same, but a critic of only 20k steps (its V still rising), w to 10 and 10 test episodes.
    "book20k": {**copy.deepcopy(_BOOK), "critic_steps": 20_000, "w_values": [0.0, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0],
                "test_episodes": 10},
    # The paper's sizes and schedule (for a GPU): batch 1024, 3x512, 1M joint steps, 32 Euler steps.
    "paper": dict(dataset="book", schedule="joint", batch_size=1024, critic_steps=1_000_000, actor_steps=1_000_000,
                  w_values=[0.0, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0, 100.0], temperatures=[1.0, 3.0, 10.0, 30.0],
                  val_episodes=5, test_episodes=10, checkpoint_every=20_000, log_every=5_000, compile=True,
                  batched=True, critic=dict(batched_heads=True), cfgrl={}, awr={}),
}
# data: the dataset recipe (cfgrl_core.collect): "td3_snapshots" (every preset's default) or "rnd" (exploration data
# like the paper's ExORL files); the dataset size is the preset's named "dataset" size.
for _preset in PRESETS.values():
    _preset.setdefault("data", "td3_snapshots")
SCHEDULES = ("frozen", "joint")
BOOK_RESULTS = ASSETS / "results" / "book"        # the committed results of the book preset (see RESULTS.md)
BOOK20K_RESULTS = ASSETS / "results" / "book20k"  # ... and of the first recipe, book20k


def resolve_config(config) -> dict:
    """A full runner config: a preset's name, or a dict of overrides of a preset (``"preset"``, default smoke).
    Agent keys (``critic``, ``cfgrl``, ``awr``) are merged into the agents' own configs; unknown keys are refused."""
    cfg = resolve_preset(config, PRESETS, AGENT_CONFIGS, "runner",
                         ("batch_size", "critic_steps", "actor_steps", "checkpoint_every", "log_every", "val_episodes",
                          "test_episodes"))
    for key in ("compile", "batched"):
        if not isinstance(cfg[key], bool):
            raise ValueError(f"config value {key} must be true or false, got {cfg[key]!r}")
    if cfg["schedule"] not in SCHEDULES:
        raise ValueError(f"config value schedule must be one of {SCHEDULES}, got {cfg['schedule']!r}")
    if cfg["schedule"] == "joint" and cfg["critic_steps"] != cfg["actor_steps"]:
        raise ValueError("the joint schedule trains critic and actors together: critic_steps must equal actor_steps, "
                         f"got {cfg['critic_steps']} and {cfg['actor_steps']}")
    if not cfg["w_values"] or any((not np.isfinite(w)) or w < 0 for w in cfg["w_values"]):
        raise ValueError(f"config value w_values must be finite and >= 0, got {cfg['w_values']!r}")
    if not cfg["temperatures"]:
        raise ValueError("config value temperatures must list at least one AWR temperature")
    if cfg["data"] not in RECIPES:
        raise ValueError(f"config value data must be one of {list(RECIPES)}, got {cfg['data']!r}")
    if cfg["dataset"] not in SIZES:
        raise ValueError(f"config value dataset must be one of {sorted(SIZES)}, got {cfg['dataset']!r}")
    return cfg


def build_agents(cfg: dict, obs_dim: int, action_dim: int, device, generator) -> tuple[IQLAgent, dict]:
    """The critic and the actors a runner config describes: ``{"cfgrl": ..., "awr_T<T>": ...}``."""
    critic = IQLAgent(obs_dim, action_dim, cfg["critic"], device)
    actors = {"cfgrl": CFGRLAgent(obs_dim, action_dim, cfg["cfgrl"], device, generator=generator)}
    for T in cfg["temperatures"]:
        actors[f"awr_T{T:g}"] = AWRAgent(obs_dim, action_dim, {**cfg["awr"], "temperature": T}, device)
    if cfg["compile"]:
        for agent in (critic, *actors.values()):
            agent.compile()
    return critic, actors


def trained_actors(cfg: dict, actors: dict) -> dict:
    """What the actors step updates: the actors themselves, or with ``batched`` the AWR agents as one
    :class:`~cfgrl_core.agents.awr.AWRSweep` (under the key ``"awr"``; call :func:`write_back` before the agents are
    saved or used)."""
    awr = {name: a for name, a in actors.items() if isinstance(a, AWRAgent)}
    if not cfg["batched"] or not awr:
        return dict(actors)
    sweep = AWRSweep(awr)
    if cfg["compile"]:
        sweep.compile()
    return {**{name: a for name, a in actors.items() if name not in awr}, "awr": sweep}


def write_back(trained: dict) -> None:
    """Put what a batched sweep trained into its agents."""
    for actor in trained.values():
        if isinstance(actor, AWRSweep):
            actor.write_back()


# ------------------------------------------------------------------------------------------- one training step
def actors_step(critic: IQLAgent, actors: dict, batch: dict, advantage=None) -> dict:
    """Every actor's update on one batch and the same advantages (the frozen critic's, unless given)."""
    if advantage is None:
        advantage = critic.advantage(batch["observations"], batch["actions"])
    metrics = {}
    for name, actor in actors.items():
        out = actor.update(batch, advantage)
        metrics.update(out if isinstance(actor, AWRSweep) else {f"{name}_{key}": value for key, value in out.items()})
    return metrics


def joint_step(critic: IQLAgent, actors: dict, batch: dict) -> dict:
    """The official schedule: the actors learn from the critic's advantages before its step; both step together."""
    advantage = critic.advantage(batch["observations"], batch["actions"])
    return {**critic.update(batch), **actors_step(critic, actors, batch, advantage)}


def phases(cfg: dict) -> list[tuple[str, int]]:
    if cfg["schedule"] == "frozen":
        return [("critic", cfg["critic_steps"]), ("actors", cfg["actor_steps"])]
    return [("joint", cfg["actor_steps"])]


# ----------------------------------------------------------------------------------------------- evaluation
VAL_SEED, TEST_SEED = 100_000, 200_000   # evaluation episode seeds: validation and test never overlap


def episode_seeds(split: str, seed: int, count: int) -> list[int]:
    """Environment seeds of the ``count`` validation or test episodes of a run with seed ``seed``."""
    base = {"val": VAL_SEED, "test": TEST_SEED}[split]
    return [base + 1000 * seed + j for j in range(count)]


def choose_on_validation(val: dict) -> str:
    """The setting (a w or a T, as a string key) with the best mean validation return."""
    return max(val, key=lambda s: np.mean(val[s]))


def run(task: str, seed: int, config="smoke", out="runs", data_root=None, device=None, progress: bool = True,
        collect_missing: bool = True, threads: int | None = None) -> dict:
    """Run (or resume) every phase for one task and seed; returns the results dict also written to results.json.

    With ``collect_missing=False`` a missing dataset is an error instead of being generated. ``threads``: torch
    threads for the run (default :func:`cfgrl_core.networks.default_threads`: ``$CFGRL_THREADS``, else 1).
    """
    with torch_threads(default_threads(threads)):
        return _run(task, seed, config, out, data_root, device, progress, collect_missing)


def _run(task, seed, config, out, data_root, device, progress, collect_missing) -> dict:
    domain, task_name = parse_task(task)
    cfg = resolve_config(config)
    started_with = provenance()   # the code that runs is the code at start, whatever HEAD is when it finishes
    device = default_device(device)
    run_dir = Path(out) / task / f"seed{seed}"
    run_dir.mkdir(parents=True, exist_ok=True)
    if collect_missing:
        root = ensure_dataset(domain, cfg["dataset"], data_root, progress=progress, method=cfg["data"])
    else:
        root = Path(data_root) if data_root is not None else default_data_root()
    data = load_dataset(root, domain, cfg["data"], task_name, episodes=SIZES[cfg["dataset"]], progress=progress)
    D = {k: torch.as_tensor(data[k], device=device) for k in
         ("observations", "actions", "rewards", "next_observations", "masks")}
    n, obs_dim = D["observations"].shape

    torch.manual_seed(seed)
    generator = torch.Generator(device=device).manual_seed(seed)   # batches and the flow loss's noise
    critic, actors = build_agents(cfg, obs_dim, D["actions"].shape[1], device, generator)
    agents = {"critic": critic, **actors}
    plan = phases(cfg)
    state = {"phase": 0, "phases": len(plan), "step": 0, "wall_s": 0.0, "phase_wall_s": {},
             "log": {name: [] for name, _ in plan}}

    ckpt_path = run_dir / "checkpoint.pt"
    config_json = json.dumps({"task": task, "seed": seed, **cfg}, sort_keys=True)
    if ckpt_path.exists():
        ckpt = read_checkpoint(ckpt_path, "run")
        if ckpt["config"] != config_json:
            raise CheckpointError(f"{ckpt_path} belongs to another configuration; use another --out or delete it")
        for name, agent in agents.items():
            agent.load_state_dict(ckpt["agents"][name]["state_dict"])
            agent.optimizer.load_state_dict(ckpt["optimizers"][name])
        generator.set_state(ckpt["generator"])   # generator states are CPU byte tensors on every device
        state = ckpt["state"]

    trained = trained_actors(cfg, actors)   # built after the checkpoint load: a sweep copies the agents' state

    def save():
        write_back(trained)
        save_checkpoint(ckpt_path, "run", config=config_json, state=state, generator=generator.get_state(),
                        agents={k: module_record(a) for k, a in agents.items()},
                        optimizers={k: a.optimizer.state_dict() for k, a in agents.items()})

    frozen = {}   # batched, frozen schedule: the critic's advantages on the whole dataset, computed once

    def actors_phase(batch, idx):
        if cfg["batched"]:
            if "advantage" not in frozen:
                frozen["advantage"] = critic.on_dataset(D["observations"], D["actions"])["advantage"]
            return actors_step(critic, trained, batch, frozen["advantage"][idx])
        return actors_step(critic, trained, batch)

    steps = {"critic": lambda batch, idx: critic.update(batch), "actors": actors_phase,
             "joint": lambda batch, idx: joint_step(critic, trained, batch)}
    started = time.time() - state["wall_s"]
    while state["phase"] < len(plan):
        name, total = plan[state["phase"]]
        phase_started = time.time() - state["phase_wall_s"].get(name, 0.0)
        bar = tqdm(range(state["step"], total), desc=f"{task} seed {seed}: {name}", initial=state["step"],
                   total=total, disable=not progress)
        for step in bar:
            idx = torch.randint(0, n, (cfg["batch_size"],), generator=generator, device=device)
            metrics = steps[name]({k: v[idx] for k, v in D.items()}, idx)
            state["step"] = step + 1
            if state["step"] % cfg["log_every"] == 0 or state["step"] == total:   # the only host syncs
                state["log"][name].append({"step": state["step"], **{k: round(float(v), 5)
                                                                      for k, v in metrics.items()}})
            if state["step"] % cfg["checkpoint_every"] == 0 and state["step"] < total:
                state["wall_s"] = time.time() - started
                state["phase_wall_s"][name] = time.time() - phase_started
                save()
        state["phase_wall_s"][name] = round(time.time() - phase_started, 1)
        state.update(phase=state["phase"] + 1, step=0, wall_s=time.time() - started)
        save()

    # ---- evaluation: validation episodes choose w and T, test episodes are reported
    write_back(trained)
    all_adv = critic.on_dataset(D["observations"], D["actions"])["advantage"]
    quantiles = (0.01, 0.1, 0.5, 0.9, 0.99)
    results = {"task": task, "seed": seed, "config": cfg, "provenance": started_with,
               "dataset": {"root": str(root), "recipe": cfg["data"], "transitions": n,
                           "episodes": SIZES[cfg["dataset"]]},
               "positive_fraction": float(optimality_labels(all_adv).float().mean()),
               "advantage_quantiles": {f"{q:g}": float(v) for q, v in zip(quantiles, torch.quantile(
                   all_adv[:: max(1, n // 100_000)].float(), torch.tensor(quantiles, device=all_adv.device)).tolist())},
               "train_wall_s": round(state["wall_s"], 1), "phase_wall_s": state["phase_wall_s"],
               "threads": torch.get_num_threads(), "device": str(device), "curves": state["log"]}
    awr = [a for name, a in actors.items() if name.startswith("awr_")]
    t0 = time.time()
    for split in ("val", "test"):
        seeds = episode_seeds(split, seed, cfg[f"{split}_episodes"])
        cf = evaluate(flow_policy_actor(actors["cfgrl"].policy, cfg["w_values"], seed=seed), domain, task_name,
                      len(cfg["w_values"]), seeds)
        aw = evaluate(gaussian_actors_actor(awr), domain, task_name, len(awr), seeds)
        results[f"cfgrl_{split}"] = {f"{w:g}": cf[i].tolist() for i, w in enumerate(cfg["w_values"])}
        results[f"awr_{split}"] = {f"{T:g}": aw[i].tolist() for i, T in enumerate(cfg["temperatures"])}
    best_w, best_T = choose_on_validation(results["cfgrl_val"]), choose_on_validation(results["awr_val"])
    results["headline"] = {"cfgrl_w": best_w, "cfgrl_test_mean": float(np.mean(results["cfgrl_test"][best_w])),
                           "awr_T": best_T, "awr_test_mean": float(np.mean(results["awr_test"][best_T])),
                           "flow_bc_test_mean": float(np.mean(results["cfgrl_test"]["0"]))}
    results["eval_wall_s"] = round(time.time() - t0, 1)
    atomic_write_text(run_dir / "results.json", json.dumps(results, indent=1))
    return results


def main(argv=None):
    import argparse

    from .cli import positive_int, user_errors

    p = argparse.ArgumentParser(prog="python -m cfgrl_core.run",
                                description="Offline RL on DMC: IQL critic, CFGRL and AWR policies, w/T sweeps.")
    p.add_argument("--task", required=True, help="e.g. walker-run, cheetah-run")
    p.add_argument("--config", default="smoke", choices=sorted(PRESETS))
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--out", default="runs")
    p.add_argument("--data-root", default=None)
    p.add_argument("--device", default=None, help="cpu, cuda or cuda:<index> (default: CUDA when present)")
    p.add_argument("--threads", type=positive_int, default=None,
                   help="torch threads (default: $CFGRL_THREADS, else 1; 2 is faster on an otherwise idle 2-core machine)")
    p.add_argument("--data", default=None, choices=RECIPES,
                   help="dataset recipe (default: the preset's, td3_snapshots); use another --out per recipe")
    p.add_argument("--dataset", default=None, choices=sorted(SIZES),
                   help=f"named dataset size {SIZES} (default: the preset's; 'full' is ExORL's 1M transitions)")
    p.add_argument("--no-collect", action="store_true", help="fail if the dataset is missing instead of making it")
    p.add_argument("--schedule", default=None, choices=SCHEDULES, help="frozen or joint (default: the preset's)")
    p.add_argument("--critic-steps", type=positive_int, default=None, help="default: the preset's")
    p.add_argument("--actor-steps", type=positive_int, default=None,
                   help="default: the preset's (joint: give both, equal)")
    p.add_argument("--w-values", type=float, nargs="+", default=None, help="guidance weights to evaluate")
    args = p.parse_args(argv)
    with user_errors(p):
        parse_task(args.task)          # checked before any work starts
        default_device(args.device)
        threads = default_threads(args.threads)
        overrides = {k: v for k, v in (("data", args.data), ("dataset", args.dataset), ("schedule", args.schedule),
                                       ("critic_steps", args.critic_steps), ("actor_steps", args.actor_steps),
                                       ("w_values", args.w_values)) if v is not None}
        config = {"preset": args.config, **overrides} if overrides else args.config
        resolve_config(config)          # a bad combination fails before any work
        for seed in args.seeds:
            r = run(args.task, seed, config, args.out, args.data_root, args.device,
                    collect_missing=not args.no_collect, threads=threads)
            print(json.dumps(r["headline"]))


if __name__ == "__main__":
    main()
