"""The offline-RL experiment runner: one IQL critic per (task, seed), shared by CFGRL and AWR, then evaluation.

    python -m cfgrl_core.run --task walker-run --config smoke --seeds 0 1 2 --out runs/

Phases, each resumable from its last checkpoint (``<out>/<task>/seed<k>/checkpoint.pt``, written atomically):
  1. critic   IQL on the dataset (the official losses, see :mod:`cfgrl_core.iql`), trained once and then frozen;
  2. actors   every policy extractor on the same minibatches and the same frozen advantages: the flow policy with the
              official CFGRL loss (labels o = 1[A >= 0]) and one Gaussian AWR actor per temperature T (weights
              min(exp(T A), 100)). One backward pass and one fused Adam step serve them all (their parameters are
              disjoint, so this is the same as separate optimisers; it saves the repeated critic forward);
  3. results  CFGRL at every w (w = 0 is flow BC) and AWR at every T on validation episodes (used only to choose
              the headline w and T) and on separate test episodes (what is reported); written to results.json.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from .atomic import atomic_write_text
from .awr import GaussianActor
from .checkpoint import atomic_torch_save
from .configs import merge_config
from .collect import SIZES, default_data_root, ensure_dataset
from .dataset import load_dataset
from .device import default_device
from .envs import check_domain_task
from .evaluate import evaluate, flow_policy_actor, gaussian_actors_actor
from .iql import IQLCritic, critic_step
from .losses import official_cfgrl_loss
from .network import FlowPolicyConfig
from .policy import FlowPolicy
from .provenance import provenance
from .train import make_adam

CONFIGS = {
    # CI: seconds. Numbers from it mean nothing.
    "smoke": dict(dataset="smoke", hidden=(64, 64), batch_size=64, critic_steps=60, actor_steps=60,
                  w_values=[0.0, 1.0, 3.0], temperatures=[1.0, 10.0], val_episodes=1, test_episodes=1,
                  sample_steps=4, checkpoint_every=20, log_every=20, lr=3e-4, uncond_weight=0.1, time_bins=32),
    # The book's figures, sized for 2 CPU cores: 3x256 nets (the paper: 3x512), batch 256 (paper: 1024), the critic
    # trained once for 20k steps, then all actors together for 25k steps (paper: 1M joint steps), 16 Euler steps.
    # Measured on this project's 2-core machine, one thread per run and two runs side by side: critic ~43 steps/s,
    # actors ~23 steps/s, so ~27 min of training and ~3 min of evaluation per (task, seed).
    "book": dict(dataset="book", hidden=(256, 256, 256), batch_size=256, critic_steps=20_000, actor_steps=25_000,
                 w_values=[0.0, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0], temperatures=[1.0, 3.0, 10.0, 30.0],
                 val_episodes=5, test_episodes=10, sample_steps=16, checkpoint_every=2_500, log_every=500, lr=3e-4,
                 uncond_weight=0.1, time_bins=32),
    # The paper's sizes (for a GPU): batch 1024, 3x512, 1M steps, 32 Euler steps.
    "paper": dict(dataset="book", hidden=(512, 512, 512), batch_size=1024, critic_steps=1_000_000,
                  actor_steps=1_000_000, w_values=[0.0, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0],
                  temperatures=[1.0, 3.0, 10.0, 30.0], val_episodes=5, test_episodes=10, sample_steps=32,
                  checkpoint_every=20_000, log_every=5_000, lr=3e-4, uncond_weight=0.1, time_bins=32),
}
ASSETS = Path(__file__).parent / "assets"
BOOK_RESULTS = ASSETS / "results" / "book"   # the committed results of the book configuration (see RESULTS.md)
VAL_SEED, TEST_SEED = 100_000, 200_000   # evaluation episode seeds: validation and test never overlap


def parse_task(task: str) -> tuple[str, str]:
    domain, _, name = task.partition("-")
    check_domain_task(domain, name or None)
    if not name:
        raise ValueError(f"task must look like 'walker-run', got {task!r}")
    return domain, name


def resolve_config(config) -> dict:
    if isinstance(config, str):
        if config not in CONFIGS:
            raise ValueError(f"unknown config {config!r}; known: {sorted(CONFIGS)}")
        return dict(CONFIGS[config])
    cfg = merge_config(CONFIGS["smoke"], config, "runner")
    for key in ("batch_size", "critic_steps", "actor_steps", "checkpoint_every", "log_every", "sample_steps", "val_episodes",
                "test_episodes"):
        if not isinstance(cfg[key], int) or cfg[key] < 1:
            raise ValueError(f"config value {key} must be an integer >= 1, got {cfg[key]!r}")
    if any((not np.isfinite(w)) or w < 0 for w in cfg["w_values"]):
        raise ValueError(f"config value w_values must be finite and >= 0, got {cfg['w_values']!r}")
    return cfg


def build_modules(cfg: dict, obs_dim: int, act_dim: int, device) -> tuple:
    """The critic, the flow policy and one AWR actor per temperature that a runner config describes."""
    critic = IQLCritic(obs_dim, act_dim, hidden_dims=cfg["hidden"]).to(device)
    policy = FlowPolicy(FlowPolicyConfig(obs_dim=obs_dim, action_dim=act_dim, hidden_dims=cfg["hidden"],
                                         sample_steps=cfg["sample_steps"]), device=device)
    awr = {T: GaussianActor(obs_dim, act_dim, hidden_dims=cfg["hidden"], temperature=T).to(device)
           for T in cfg["temperatures"]}
    return critic, policy, awr


def trained_asset(task: str, seed: int = 0) -> Path:
    """The shipped networks of the book configuration for ``task`` and ``seed`` (see :func:`export_trained`)."""
    return ASSETS / "trained" / f"{task}_seed{seed}.pt"


def export_trained(checkpoint, out) -> Path:
    """Write the trained networks of a finished run (no optimiser state, no online Q heads) to ``out``, atomically.
    This is what the book ships for its slider, videos and gradient diagnostics (``cfgrl_core/assets/trained``)."""
    ckpt = _load_checkpoint(checkpoint, "cpu")
    cfg = json.loads(ckpt["config"])
    if ckpt["state"]["phase"] < 2:
        raise ValueError(f"{checkpoint} is from an unfinished run (phase {ckpt['state']['phase']} of 2)")
    modules = dict(ckpt["modules"])
    modules["critic"] = {k: v for k, v in modules["critic"].items() if not k.startswith("q.")}
    return atomic_torch_save({"config": ckpt["config"], "modules": modules}, out)


def _load_checkpoint(path, device):
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"trained-model file {path} does not exist")
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except Exception as e:
        raise ValueError(f"checkpoint {path} is corrupted ({type(e).__name__}: {e}); delete it to restart") from e


def load_trained(path, device=None) -> dict:
    """{"task", "seed", "config", "critic", "policy", "awr": {T: actor}} from :func:`export_trained`'s file or from a
    finished run's ``checkpoint.pt``, in eval mode on ``device``."""
    device = default_device(device)
    ckpt = _load_checkpoint(path, device)
    try:
        cfg = json.loads(ckpt["config"])
        critic_state = dict(ckpt["modules"]["critic"])
        v_in = critic_state["v.0.weight"].shape[1]
        act_dim = critic_state["q_target.0.0.weight"].shape[1] - v_in
        critic, policy, awr = build_modules(cfg, v_in, act_dim, device)
        if not any(k.startswith("q.") for k in critic_state):   # exported: online heads = target heads
            critic_state.update({"q." + k.removeprefix("q_target."): v for k, v in critic_state.items()
                                 if k.startswith("q_target.")})
        critic.load_state_dict(critic_state)
        policy.load_state_dict(ckpt["modules"]["cfgrl"])
        for T, actor in awr.items():
            actor.load_state_dict(ckpt["modules"][f"awr_T{T:g}"])
    except (KeyError, RuntimeError, TypeError, AttributeError) as e:
        raise ValueError(f"{path} is not a trained-model file of this version ({type(e).__name__}: {e})") from e
    for m in (critic, policy, *awr.values()):
        m.eval().requires_grad_(False)
    return {"task": cfg["task"], "seed": cfg["seed"], "config": cfg, "critic": critic, "policy": policy, "awr": awr}


def actors_step(policy, awr: dict, optimizer, critic, batch: dict, cfg: dict, generator) -> dict:
    """One Adam step for the flow policy and every AWR actor on one batch, all against the same frozen critic."""
    obs, actions = batch["observations"], batch["actions"]
    adv = critic.advantage(obs, actions)
    loss, m = official_cfgrl_loss(policy, obs, actions, (adv >= 0).long(), uncond_weight=cfg["uncond_weight"],
                                  generator=generator, time_bins=cfg["time_bins"])
    metrics = {"cfgrl_loss": m["loss"]}
    for T, actor in awr.items():
        awr_loss, am = actor.loss(obs, actions, adv)
        loss = loss + awr_loss
        metrics[f"awr_T{T:g}_loss"] = am["actor_loss"]
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return metrics


def run(task: str, seed: int, config="smoke", out="runs", data_root=None, device=None, progress: bool = True,
        collect_missing: bool = True) -> dict:
    """Run (or resume) every phase for one task and seed; returns the results dict also written to results.json.

    With ``collect_missing=False`` a missing dataset is an error instead of being generated.
    """
    domain, task_name = parse_task(task)
    cfg = resolve_config(config)
    started_with = provenance()   # the code that runs is the code at start, whatever HEAD is when it finishes
    run_dir = Path(out) / task / f"seed{seed}"
    run_dir.mkdir(parents=True, exist_ok=True)
    device = default_device(device)
    if collect_missing:
        root = ensure_dataset(domain, cfg["dataset"], data_root, progress=progress)
    else:
        root = Path(data_root) if data_root is not None else default_data_root()
    data = load_dataset(root, domain, "td3_snapshots", task_name, episodes=SIZES[cfg["dataset"]], progress=progress)
    D = {k: torch.as_tensor(data[k], device=device) for k in
         ("observations", "actions", "rewards", "next_observations", "masks")}
    n, obs_dim = D["observations"].shape
    act_dim = D["actions"].shape[1]

    torch.manual_seed(seed)
    critic, policy, awr = build_modules(cfg, obs_dim, act_dim, device)
    modules = {"critic": critic, "cfgrl": policy, **{f"awr_T{T:g}": a for T, a in awr.items()}}
    optims = {"critic": make_adam(critic.parameters(), cfg["lr"]),
              "actors": make_adam([p for name, m in modules.items() if name != "critic" for p in m.parameters()],
                                  cfg["lr"])}
    phases = ["critic", "actors"]
    generator = torch.Generator(device=device).manual_seed(seed)
    state = {"phase": 0, "step": 0, "wall_s": 0.0, "phase_wall_s": {}, "log": {"critic": [], "actors": []}}

    ckpt_path = run_dir / "checkpoint.pt"
    config_json = json.dumps({"task": task, "seed": seed, **cfg}, sort_keys=True)
    if ckpt_path.exists():
        ckpt = _load_checkpoint(ckpt_path, device)
        if ckpt.get("config") != config_json:
            raise ValueError(f"{ckpt_path} belongs to another configuration; use another --out or delete it")
        for name, m in modules.items():
            m.load_state_dict(ckpt["modules"][name])
        for name, o in optims.items():
            o.load_state_dict(ckpt["optims"][name])
        generator.set_state(ckpt["generator"].cpu())   # generator states are CPU byte tensors on every device
        state = ckpt["state"]

    def save():
        atomic_torch_save({"config": config_json, "state": state, "generator": generator.get_state(),
                           "modules": {k: m.state_dict() for k, m in modules.items()},
                           "optims": {k: o.state_dict() for k, o in optims.items()}}, ckpt_path)

    started = time.time() - state["wall_s"]
    while state["phase"] < len(phases):
        name = phases[state["phase"]]
        phase_started = time.time() - state["phase_wall_s"].get(name, 0.0)
        total = cfg["critic_steps"] if name == "critic" else cfg["actor_steps"]
        bar = tqdm(range(state["step"], total), desc=f"{task} seed {seed}: {name}", initial=state["step"],
                   total=total, disable=not progress)
        for step in bar:
            idx = torch.randint(0, n, (cfg["batch_size"],), generator=generator, device=device)
            batch = {k: v[idx] for k, v in D.items()}
            if name == "critic":
                metrics = critic_step(critic, optims["critic"], batch)
            else:
                metrics = actors_step(policy, awr, optims["actors"], critic, batch, cfg, generator)
            state["step"] = step + 1
            if state["step"] % cfg["log_every"] == 0 or state["step"] == total:
                state["log"][name].append({"step": state["step"], **{k: round(float(v), 5)
                                                                      for k, v in metrics.items()}})
            if state["step"] % cfg["checkpoint_every"] == 0 and state["step"] < total:
                state["wall_s"] = time.time() - started
                state["phase_wall_s"][name] = time.time() - phase_started
                save()
        state["phase_wall_s"][name] = round(time.time() - phase_started, 1)
        state.update(phase=state["phase"] + 1, step=0, wall_s=time.time() - started)
        save()
    train_wall = state["wall_s"]

    # ---- evaluation: validation episodes choose w and T, test episodes are reported
    all_adv = torch.cat([critic.advantage(D["observations"][i:i + 65536], D["actions"][i:i + 65536])
                         for i in range(0, n, 65536)])   # advantage() runs without gradients
    results = {"task": task, "seed": seed, "config": cfg, "provenance": started_with,
               "dataset": {"root": str(root), "transitions": n, "episodes": SIZES[cfg["dataset"]]},
               "positive_fraction": float((all_adv >= 0).float().mean()),
               "advantage_quantiles": {f"{q:g}": float(v) for q, v in
                                       zip((0.01, 0.1, 0.5, 0.9, 0.99),
                                           torch.quantile(all_adv[:: max(1, n // 100_000)].float(),
                                                          torch.tensor([0.01, 0.1, 0.5, 0.9, 0.99],
                                                                       device=all_adv.device)).tolist())},
               "train_wall_s": round(train_wall, 1), "phase_wall_s": state["phase_wall_s"],
               "threads": torch.get_num_threads(), "device": str(device), "curves": state["log"]}
    t0 = time.time()
    for split, base, count in (("val", VAL_SEED, cfg["val_episodes"]), ("test", TEST_SEED, cfg["test_episodes"])):
        seeds = [base + 1000 * seed + j for j in range(count)]
        cf = evaluate(flow_policy_actor(policy, cfg["w_values"], seed=seed), domain, task_name,
                      len(cfg["w_values"]), seeds)
        aw = evaluate(gaussian_actors_actor(awr.values()), domain, task_name, len(awr), seeds)
        results[f"cfgrl_{split}"] = {f"{w:g}": cf[i].tolist() for i, w in enumerate(cfg["w_values"])}
        results[f"awr_{split}"] = {f"{T:g}": aw[i].tolist() for i, T in enumerate(cfg["temperatures"])}
    best_w = max(results["cfgrl_val"], key=lambda w: np.mean(results["cfgrl_val"][w]))
    best_T = max(results["awr_val"], key=lambda T: np.mean(results["awr_val"][T]))
    results["headline"] = {"cfgrl_w": best_w, "cfgrl_test_mean": float(np.mean(results["cfgrl_test"][best_w])),
                           "awr_T": best_T, "awr_test_mean": float(np.mean(results["awr_test"][best_T])),
                           "flow_bc_test_mean": float(np.mean(results["cfgrl_test"]["0"]))}
    results["eval_wall_s"] = round(time.time() - t0, 1)
    atomic_write_text(run_dir / "results.json", json.dumps(results, indent=1))
    return results


def main(argv=None):
    import argparse

    p = argparse.ArgumentParser(description="Offline RL on DMC: IQL critic, CFGRL and AWR policies, w/T sweeps.")
    p.add_argument("--task", required=True, help="e.g. walker-run, cheetah-run")
    p.add_argument("--config", default="smoke", help=f"one of {sorted(CONFIGS)}")
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--out", default="runs")
    p.add_argument("--data-root", default=None)
    p.add_argument("--device", default=None)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--no-collect", action="store_true", help="fail if the dataset is missing instead of making it")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    for seed in args.seeds:
        r = run(args.task, seed, args.config, args.out, args.data_root, args.device,
                collect_missing=not args.no_collect)
        print(json.dumps(r["headline"]))


if __name__ == "__main__":
    main()
