"""Policy extraction on one frozen critic: which part of "CFGRL vs AWR" is the policy class, which the operator?
(chapter 4's investigation, issue #11 items 1, 2 and 4)

Every actor below learns from the same frozen critic (a file saved by :mod:`cfgrl_core.critic_convergence`; given
several files, A is their average: labels from a critic averaged over checkpoints), on the same batches and the same
advantages A(s, a):

  ``gauss_bc``      Gaussian, weights 1 (AWR at T = 0): Gaussian behaviour cloning
  ``gauss_binary``  Gaussian, weights 1[A >= 0]: CFGRL's labels in AWR's policy class
  ``awr_T<T>``      Gaussian, weights min(exp(T A), 100): AWR
  ``flow_binary``   the CFGRL flow (labels 1[A >= 0]), sampled at every w
  ``flow_exp_T<T>`` a flow whose conditional branch is weighted by min(exp(T A), 100), sampled at every w: at w = 1 it
                    targets AWR's pi_hat exp(T A), at other w pi_hat exp(T A)^w (Theorem 1 holds for any
                    non-decreasing f)

and is evaluated several ways: Gaussians by their mean and by sampling; flows by sampling, by integrating from
x_0 = 0, and (``flow_binary``) by the mean of K samples per state (the flow's analogue of a Gaussian's mean) and with
32 instead of 16 Euler steps at large w. Validation episodes choose each (actor, evaluation) pair's w or nothing;
test episodes are reported. Run it again with a larger ``--steps`` to continue training the same actors (budget
curves): each call writes ``extraction_<steps>.json``.

    python -m cfgrl_core.extraction --task cheetah-run \\
        --critic runs/critic/cheetah-run/expectile0.9/seed0/critic_100000.pt --steps 25000 --threads 2
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from .agents.awr import AWRAgent, AWRSweep
from .agents.cfgrl import CFGRLAgent
from .checkpoint import (CheckpointError, atomic_write_text, load_module, module_record, read_checkpoint,
                         save_checkpoint)
from .collect import RECIPES, SIZES, ensure_dataset
from .dataset import load_dataset
from .envs import parse_task
from .evaluate import evaluate_sharded
from .networks import default_device, default_threads, torch_threads
from .provenance import provenance
from .run import choose_on_validation, episode_seeds, resolve_config, trained_actors, write_back

#: actor name -> (agent class key, overrides of the preset's agent config)
ACTORS = {
    "gauss_bc": ("awr", {"temperature": 0.0}),
    "gauss_binary": ("awr", {"weighting": "binary"}),
    "awr_T1": ("awr", {"temperature": 1.0}),
    "awr_T3": ("awr", {"temperature": 3.0}),
    "awr_T10": ("awr", {"temperature": 10.0}),
    "flow_binary": ("cfgrl", {}),
    "flow_exp_T3": ("cfgrl", {"weighting": "exp", "temperature": 3.0}),
}
#: the official sweep of the guidance weight (the paper's quoted figures use w = 30)
W_VALUES = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0, 100.0)
MEAN_OF = 4            # samples averaged per state by the "mean of K" evaluation
LONG_EULER = 32        # Euler steps of the "sample, 32 steps" evaluation, at LONG_EULER_W
LONG_EULER_W = (10.0, 30.0, 100.0)


def build_actors(cfg: dict, obs_dim: int, action_dim: int, device, generator, names=None) -> dict:
    names = list(ACTORS) if names is None else names
    unknown = sorted(set(names) - set(ACTORS))
    if unknown:
        raise ValueError(f"unknown actors {unknown}; known: {list(ACTORS)}")
    out = {}
    for name in names:
        kind, overrides = ACTORS[name]
        if kind == "awr":
            out[name] = AWRAgent(obs_dim, action_dim, {**cfg["awr"], **overrides}, device)
        else:
            out[name] = CFGRLAgent(obs_dim, action_dim, {**cfg["cfgrl"], **overrides}, device, generator=generator)
        if cfg["compile"]:
            out[name].compile()
    return out


def evaluation_settings(actors: dict, w_values=W_VALUES) -> list[dict]:
    """One row per (actor, evaluation, w): what :func:`evaluate` steps together."""
    rows = []
    for name, actor in actors.items():
        if isinstance(actor, AWRAgent):
            rows += [{"actor": name, "mode": mode, "w": None} for mode in ("mean", "sample")]
            continue
        modes = ["sample", "x0=0"] + (["mean of K", "sample, 32 steps"] if name == "flow_binary" else [])
        for mode in modes:
            ws = LONG_EULER_W if mode == "sample, 32 steps" else w_values
            rows += [{"actor": name, "mode": mode, "w": float(w)} for w in ws]
    return rows


def settings_actor(actors: dict, rows: list[dict], seed: int):
    """``act`` for :func:`evaluate`: one batched call per (actor, evaluation) group at every environment step."""
    groups: dict[tuple, list[int]] = {}
    for i, r in enumerate(rows):
        groups.setdefault((r["actor"], r["mode"]), []).append(i)
    w_of = torch.tensor([r["w"] if r["w"] is not None else 0.0 for r in rows])
    device = next(next(iter(actors.values())).parameters()).device
    generator = torch.Generator(device=device).manual_seed(seed)
    action_dim = next(iter(actors.values())).action_dim

    @torch.no_grad()
    def act(obs, setting):
        obs = obs.to(device)
        out = torch.empty(obs.shape[0], action_dim, device=device)
        for (name, mode), members in groups.items():
            rows_here = torch.isin(setting, torch.tensor(members)).to(device)
            if not rows_here.any():
                continue
            actor, o, w = actors[name], obs[rows_here], w_of[setting[rows_here.cpu()]].to(device)
            if isinstance(actor, AWRAgent):
                a = actor.sample_actions(o, deterministic=mode == "mean", generator=generator)
            elif mode == "mean of K":
                a = actor.policy.sample(o, 1, w, num_samples=MEAN_OF, generator=generator).mean(1)
            else:
                a = actor.policy.sample(o, 1, w, generator=generator, noise_scale=0.0 if mode == "x0=0" else 1.0,
                                        steps=LONG_EULER if mode == "sample, 32 steps" else None)
            out[rows_here] = a
        return out

    return act


class AveragedCritic:
    """A(s, a) averaged over several critics (e.g. checkpoints of one training run)."""

    def __init__(self, critics: list):
        self.critics = critics
        self.obs_dim, self.action_dim = critics[0].obs_dim, critics[0].action_dim

    @torch.no_grad()
    def advantage(self, obs, actions) -> torch.Tensor:
        return torch.stack([c.advantage(obs, actions) for c in self.critics]).mean(0)


@torch.no_grad()
def dataset_advantage(critic, observations, actions, chunk: int = 65536) -> torch.Tensor:
    """A(s, a) of a (frozen, possibly averaged) critic on every transition, in chunks of ``chunk`` rows."""
    return torch.cat([critic.advantage(observations[i:i + chunk], actions[i:i + chunk])
                      for i in range(0, len(observations), chunk)])


def critic_data(critic_path) -> str:
    """The dataset recipe a critic of :func:`cfgrl_core.critic_convergence.converge` was trained on, read from the
    ``convergence.json`` beside it (runs from before the file recorded it, and critics without one: td3_snapshots)."""
    run = Path(critic_path).parent / "convergence.json"
    return json.loads(run.read_text()).get("data", "td3_snapshots") if run.is_file() else "td3_snapshots"


def extract(task: str, critic_path, seed: int = 0, steps: int = 25_000, preset: str = "book", names=None,
            out="runs/extraction", data_root=None, device=None, threads: int | None = None,
            progress: bool = True, w_values=W_VALUES, eval_max_steps: int | None = None,
            episodes: dict | None = None, eval_workers: int = 1) -> dict:
    """Train (or continue) the actors to ``steps`` on the frozen critic, then evaluate them at ``w_values``; returns
    the results. ``episodes={"val": n, "test": m}`` overrides the preset's episode counts; ``eval_max_steps`` cuts
    evaluation episodes short (tests only); ``eval_workers`` processes share the evaluation episodes
    (:func:`~cfgrl_core.evaluate.evaluate_sharded`: same episodes, other sampling noise, so it is recorded)."""
    with torch_threads(default_threads(threads)):
        paths = [Path(p) for p in (critic_path if isinstance(critic_path, (list, tuple)) else [critic_path])]
        return _extract(task, paths, seed, steps, preset, names, out, data_root, device, progress,
                        w_values, eval_max_steps, episodes, eval_workers)


def _extract(task, critic_paths, seed, steps, preset, names, out, data_root, device, progress, w_values,
             eval_max_steps, episodes, eval_workers):
    domain, task_name = parse_task(task)
    cfg = resolve_config(preset if isinstance(preset, dict) else {"preset": preset})
    n_episodes = {"val": cfg["val_episodes"], "test": cfg["test_episodes"], **(episodes or {})}
    if any(not isinstance(v, int) or v < 1 for v in n_episodes.values()):
        raise ValueError(f"episode counts must be integers >= 1, got {n_episodes}")
    if not isinstance(eval_workers, int) or eval_workers < 1:
        raise ValueError(f"eval_workers must be an integer >= 1, got {eval_workers!r}")
    started_with = provenance()
    device = default_device(device)
    critics = [load_module(p, "iql_critic", device) for p in critic_paths]
    critic = critics[0] if len(critics) == 1 else AveragedCritic(critics)
    critic_path = critic_paths[-1]
    label = "+".join(p.stem.removeprefix("critic_") for p in critic_paths)
    made_on = critic_data(critic_path)
    if made_on != cfg["data"]:
        raise ValueError(f"{critic_path} was trained on the {made_on!r} data; this extraction reads the "
                         f"{cfg['data']!r} data (pass --data {made_on})")
    run_dir = Path(out) / task / f"{critic_path.parent.parent.name}_critic_{label}" / f"seed{seed}"
    run_dir.mkdir(parents=True, exist_ok=True)
    root = ensure_dataset(domain, cfg["dataset"], data_root, progress=progress, method=cfg["data"])
    data = load_dataset(root, domain, cfg["data"], task_name, episodes=SIZES[cfg["dataset"]], progress=progress)
    D = {k: torch.as_tensor(data[k], device=device) for k in ("observations", "actions")}
    n, obs_dim = D["observations"].shape
    if (obs_dim, D["actions"].shape[1]) != (critic.obs_dim, critic.action_dim):
        raise ValueError(f"{critic_path} holds a critic for obs/action dims {(critic.obs_dim, critic.action_dim)}, "
                         f"the {task} data has {(obs_dim, D['actions'].shape[1])}")

    torch.manual_seed(seed)
    generator = torch.Generator(device=device).manual_seed(seed)
    actors = build_actors(cfg, obs_dim, D["actions"].shape[1], device, generator, names)
    state = {"step": 0, "wall_s": 0.0, "log": []}
    identity = json.dumps({"task": task, "seed": seed, "critic": [str(p) for p in critic_paths],
                           "batch_size": cfg["batch_size"], "batched": cfg["batched"],
                           "actors": {k: a.config for k, a in actors.items()}}, sort_keys=True)
    ckpt_path = run_dir / "checkpoint.pt"
    if ckpt_path.exists():
        ckpt = read_checkpoint(ckpt_path, "run")
        if ckpt["config"] != identity:
            raise CheckpointError(f"{ckpt_path} belongs to another configuration; use another --out or delete it")
        for name, actor in actors.items():
            actor.load_state_dict(ckpt["agents"][name]["state_dict"])
            actor.optimizer.load_state_dict(ckpt["optimizers"][name])
        generator.set_state(ckpt["generator"])
        state = ckpt["state"]
    if state["step"] > steps:
        raise ValueError(f"{run_dir} is already trained to {state['step']} steps, more than --steps {steps}")

    trained = trained_actors(cfg, actors)   # with ``batched``, the Gaussians step as one AWRSweep
    # with ``batched``, the frozen critic's advantages once for the dataset (same values, other float rounding)
    frozen = dataset_advantage(critic, D["observations"], D["actions"]) if cfg["batched"] else None

    def save():
        write_back(trained)
        save_checkpoint(ckpt_path, "run", config=identity, state=state, generator=generator.get_state(),
                        agents={k: module_record(a) for k, a in actors.items()},
                        optimizers={k: a.optimizer.state_dict() for k, a in actors.items()})

    started = time.time() - state["wall_s"]
    bar = tqdm(range(state["step"], steps), desc=f"{task} actors on a frozen critic", initial=state["step"],
               total=steps, disable=not progress)
    for step in bar:
        idx = torch.randint(0, n, (cfg["batch_size"],), generator=generator, device=device)
        batch = {k: v[idx] for k, v in D.items()}
        advantage = frozen[idx] if frozen is not None else critic.advantage(batch["observations"], batch["actions"])
        metrics = {}
        for name, actor in trained.items():
            out = actor.update(batch, advantage)
            metrics.update({k.removesuffix("_loss"): v for k, v in out.items() if k.endswith("_loss")}
                           if isinstance(actor, AWRSweep) else {name: out["loss"]})
        state["step"] = step + 1
        if state["step"] % cfg["log_every"] == 0:
            state["log"].append({"step": state["step"], **{k: round(float(v), 5) for k, v in metrics.items()}})
        if state["step"] % cfg["checkpoint_every"] == 0 or state["step"] == steps:
            state["wall_s"] = time.time() - started
            save()

    # ---- evaluation: validation chooses w per (actor, evaluation); test is reported
    write_back(trained)
    t0 = time.time()
    rows = evaluation_settings(actors, w_values)
    returns = {}
    for split in ("val", "test"):
        # shard k samples from its own stream (seed + 100003 k); one worker is the single-process evaluation
        r = evaluate_sharded(lambda k: settings_actor(actors, rows, seed + 100_003 * k), domain, task_name, len(rows),
                             episode_seeds(split, seed, n_episodes[split]), workers=eval_workers,
                             progress=progress, max_steps=eval_max_steps)
        returns[split] = r
    table = {}
    for i, row in enumerate(rows):
        entry = table.setdefault(row["actor"], {}).setdefault(row["mode"], {"val": {}, "test": {}})
        key = "-" if row["w"] is None else f"{row['w']:g}"
        entry["val"][key] = returns["val"][i].tolist()
        entry["test"][key] = returns["test"][i].tolist()
    summary = {}
    for name, modes in table.items():
        for mode, entry in modes.items():
            chosen = choose_on_validation(entry["val"])
            summary[f"{name} | {mode}"] = {
                "chosen": chosen, "test_mean": float(np.mean(entry["test"][chosen])),
                "test_std": float(np.std(entry["test"][chosen])),
                "best_test_mean": float(max(np.mean(v) for v in entry["test"].values()))}
    results = {"task": task, "seed": seed, "steps": steps, "critic": [str(p) for p in critic_paths], "preset": preset,
               "data": cfg["data"],
               "batch_size": cfg["batch_size"], "actors": {k: a.config for k, a in actors.items()},
               "episodes": n_episodes, "mean_of_k": MEAN_OF, "eval_workers": eval_workers,
               "eval_max_steps": eval_max_steps,
               "train_wall_s": round(state["wall_s"], 1), "eval_wall_s": round(time.time() - t0, 1),
               "compile": cfg["compile"], "batched": cfg["batched"], "threads": torch.get_num_threads(), "device": str(device),
               "provenance": started_with,
               "summary": summary, "returns": table, "log": state["log"]}
    atomic_write_text(run_dir / f"extraction_{steps}.json", json.dumps(results, indent=1))
    return results


def main(argv=None):
    import argparse

    from .cli import positive_int, user_errors

    p = argparse.ArgumentParser(prog="python -m cfgrl_core.extraction",
                                description="Train Gaussian and flow actors on one frozen critic and compare them.")
    p.add_argument("--task", required=True, help="e.g. walker-run, cheetah-run")
    p.add_argument("--critic", required=True, nargs="+",
                   help="critic_<step>.pt file(s) written by cfgrl_core.critic_convergence (several: A averaged)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=positive_int, default=25_000)
    p.add_argument("--preset", default="book")
    p.add_argument("--data", default=None, choices=RECIPES,
                   help="dataset recipe (default: the preset's); must be the one the critic was trained on")
    p.add_argument("--actors", nargs="+", default=None, help=f"a subset of {list(ACTORS)}")
    p.add_argument("--out", default="runs/extraction")
    p.add_argument("--val-episodes", type=positive_int, default=None, help="default: the preset's")
    p.add_argument("--test-episodes", type=positive_int, default=None, help="default: the preset's")
    p.add_argument("--data-root", default=None)
    p.add_argument("--device", default=None)
    p.add_argument("--threads", type=positive_int, default=None)
    p.add_argument("--eval-workers", type=positive_int, default=1,
                   help="processes sharing the evaluation episodes (the physics runs on one core per process; "
                        "same episodes, other sampling noise)")
    args = p.parse_args(argv)
    with user_errors(p):
        parse_task(args.task)
        default_device(args.device)
        for path in args.critic:
            if not Path(path).is_file():
                raise FileNotFoundError(f"critic file {path} does not exist")
        episodes = {k: v for k, v in (("val", args.val_episodes), ("test", args.test_episodes)) if v}
        preset = {"preset": args.preset, "data": args.data} if args.data else args.preset
        r = extract(args.task, args.critic, args.seed, args.steps, preset, args.actors, args.out,
                    args.data_root, args.device, args.threads, episodes=episodes,
                    eval_workers=args.eval_workers)
        for key, s in r["summary"].items():
            print(f"{key:32s} chosen {s['chosen']:>5s}  test {s['test_mean']:7.1f}  best-on-test {s['best_test_mean']:7.1f}")


if __name__ == "__main__":
    main()
