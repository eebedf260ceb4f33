"""When has the critic converged, and are its labels signal or noise? (chapter 4's investigation, issue #11 item 3)

Trains one IQL critic (the ``book`` sizes, any expectile) far longer than the first recipe's 20k steps (``book20k``)
and, every ``every`` steps, measures on the *whole* dataset:

  * mean V(s) and mean Q(s, a) (V is bootstrapped: it rises until it reaches the data's discounted values);
  * the TD error, RMSE of Q_1(s, a) - (r + gamma V(s')): the critic's own noise level, to hold beside A's spread;
  * the labels o = 1[A >= 0] (paper, Eq. 15): their positive fraction and the fraction that *flipped* since the
    previous measurement; labels that keep flipping after V has settled are noise, not information;
  * whom the labels favour: the o = 1 rate of random-action episodes and of the other episodes split into thirds by
    their return *on the evaluated task* (not the snapshot's own task: on cheetah, backward runners score ~1 here),
    and the Spearman correlation between an episode's o = 1 rate and its return.

Every measurement also saves the critic (``critic_<step>.pt``), so actors can later be trained on a critic of any
age (:mod:`cfgrl_core.extraction`). Resumable; ``convergence.json`` is rewritten atomically after each measurement.

    python -m cfgrl_core.critic_convergence --task cheetah-run --steps 100000 --every 5000 --threads 2
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from .agents.cfgrl import optimality_labels
from .agents.iql import IQLAgent
from .checkpoint import (CheckpointError, atomic_write_text, load_module, module_record, read_checkpoint,
                         save_checkpoint, save_module)
from .collect import RECIPES, SIZES, default_data_root, ensure_dataset
from .dataset import episode_returns, load_dataset
from .envs import parse_task
from .networks import default_device, default_threads, torch_threads
from .provenance import provenance
from .run import resolve_config


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman rank correlation (average ranks for ties)."""
    def ranks(v):
        order = np.argsort(v, kind="stable")
        r = np.empty(len(v))
        r[order] = np.arange(len(v))
        for value in np.unique(v):        # ties share their mean rank
            tie = v == value
            r[tie] = r[tie].mean()
        return r
    rx, ry = ranks(np.asarray(x, float)), ranks(np.asarray(y, float))
    return float(np.corrcoef(rx, ry)[0, 1])


def behaviour_groups(episode_return: np.ndarray, random_episodes: np.ndarray) -> dict[str, np.ndarray]:
    """Episode indices of the random-action episodes and of the others split into thirds by return on the
    evaluated task (``low``, ``mid``, ``high``)."""
    others = np.flatnonzero(~random_episodes)
    if not len(others):
        return {"random actions": np.flatnonzero(random_episodes)}
    cuts = np.quantile(episode_return[others], [1 / 3, 2 / 3])
    groups = {"random actions": np.flatnonzero(random_episodes)}
    groups["low third"] = others[episode_return[others] < cuts[0]]
    groups["mid third"] = others[(episode_return[others] >= cuts[0]) & (episode_return[others] < cuts[1])]
    groups["high third"] = others[episode_return[others] >= cuts[1]]
    return {name: idx for name, idx in groups.items() if len(idx)}


@torch.no_grad()
def measure(critic: IQLAgent, D: dict, episode_ids: np.ndarray, groups: dict, episode_return: np.ndarray,
            previous_labels: np.ndarray | None, chunk: int = 65536) -> tuple[dict, np.ndarray]:
    """One row of the convergence curves (see the module docstring) and the labels it measured."""
    out = critic.on_dataset(D["observations"], D["actions"])
    q1 = torch.cat([critic.q_heads(torch.cat([D["observations"][i:i + chunk], D["actions"][i:i + chunk]], -1))[0]
                    for i in range(0, len(D["rewards"]), chunk)])
    next_v = torch.cat([critic.value(D["next_observations"][i:i + chunk]) for i in range(0, len(D["rewards"]), chunk)])
    td = q1 - (D["rewards"] + critic.config["gamma"] * D["masks"] * next_v)
    adv = out["advantage"].cpu().numpy()
    labels = optimality_labels(adv).astype(bool)
    per_episode = np.bincount(episode_ids, weights=labels) / np.bincount(episode_ids)
    row = {"v_mean": float(out["v"].mean()), "q_mean": float(out["q"].mean()),
           "td_rmse": float(td.pow(2).mean().sqrt()),
           "advantage_q10_q90": [float(v) for v in np.quantile(adv, [0.1, 0.9])],
           "positive_fraction": float(labels.mean()),
           "flipped_fraction": None if previous_labels is None else float((labels != previous_labels).mean()),
           "positive_by_group": {name: float(labels[np.isin(episode_ids, idx)].mean()) for name, idx in groups.items()},
           "label_return_spearman": spearman(per_episode, episode_return)}
    return row, labels


def converge(task: str, seed: int = 0, steps: int = 100_000, every: int = 5_000, expectile: float = 0.9,
             preset: str = "book", out="runs/critic", data_root=None, device=None, threads: int | None = None,
             progress: bool = True, data: str | None = None) -> dict:
    """Train (or resume) the critic to ``steps``, measuring every ``every`` steps; returns convergence.json's dict.
    ``data`` names the dataset recipe (default: the preset's); runs on another recipe than ``td3_snapshots`` live in
    their own folder (:func:`critic_run_dir`)."""
    with torch_threads(default_threads(threads)):
        return _converge(task, seed, steps, every, expectile, preset, out, data_root, device, progress, data)


def critic_run_dir(out, task: str, expectile: float, seed: int, data: str = "td3_snapshots") -> Path:
    """``out/<task>/expectile<e>[_<recipe>]/seed<k>``: the recipe is named unless it is the default one, so the
    folders (and the published file names) of the td3_snapshots runs are the ones they always were."""
    tag = f"expectile{expectile:g}" + ("" if data == "td3_snapshots" else f"_{data}")
    return Path(out) / task / tag / f"seed{seed}"


def _config(preset: str, data: str | None, **overrides) -> dict:
    return resolve_config({"preset": preset, **overrides, **({"data": data} if data is not None else {})})


def _converge(task, seed, steps, every, expectile, preset, out, data_root, device, progress, data=None):
    from .collect import episode_recipes

    domain, task_name = parse_task(task)
    if steps < 1 or every < 1 or steps % every:
        raise ValueError(f"steps must be a positive multiple of every, got steps={steps}, every={every}")
    cfg = _config(preset, data, critic={"expectile": expectile})
    started_with = provenance()
    device = default_device(device)
    run_dir = critic_run_dir(out, task, expectile, seed, cfg["data"])
    run_dir.mkdir(parents=True, exist_ok=True)
    root = ensure_dataset(domain, cfg["dataset"], data_root, progress=progress, method=cfg["data"])
    episodes = SIZES[cfg["dataset"]]
    data = load_dataset(root, domain, cfg["data"], task_name, episodes=episodes, progress=progress)
    D = {k: torch.as_tensor(data[k], device=device) for k in
         ("observations", "actions", "rewards", "next_observations", "masks")}
    n = len(data["rewards"])
    episode_return = episode_returns(data)
    random_episodes = np.array([r["sigma"] is None for r in episode_recipes(domain, episodes, method=cfg["data"])])
    groups = behaviour_groups(episode_return, random_episodes)

    torch.manual_seed(seed)
    generator = torch.Generator(device=device).manual_seed(seed)
    critic = IQLAgent(D["observations"].shape[1], D["actions"].shape[1], cfg["critic"], device)
    if cfg["compile"]:
        critic.compile()
    state = {"step": 0, "wall_s": 0.0, "curve": []}
    labels = None
    ckpt_path = run_dir / "checkpoint.pt"
    identity = json.dumps({"task": task, "seed": seed, "every": every, "batch_size": cfg["batch_size"],
                           "critic": cfg["critic"], "episodes": episodes,
                           **({"data": cfg["data"]} if cfg["data"] != "td3_snapshots" else {})}, sort_keys=True)
    if ckpt_path.exists():
        ckpt = read_checkpoint(ckpt_path, "run")
        if ckpt["config"] != identity:
            raise CheckpointError(f"{ckpt_path} belongs to another configuration; use another --out or delete it")
        critic.load_state_dict(ckpt["agents"]["critic"]["state_dict"])
        critic.optimizer.load_state_dict(ckpt["optimizers"]["critic"])
        generator.set_state(ckpt["generator"])
        state = ckpt["state"]
        labels = ckpt["labels"].numpy() if ckpt.get("labels") is not None else None
        state.setdefault("resumed_at", []).append({"step": state["step"], "provenance": started_with,
                                                   "threads": torch.get_num_threads(), "compile": cfg["compile"]})

    def results() -> dict:
        return {"task": task, "seed": seed, "steps": state["step"], "every": every, "expectile": expectile,
                "preset": preset, "data": cfg["data"], "batch_size": cfg["batch_size"], "critic": cfg["critic"],
                "dataset": {"root": str(root), "transitions": n, "episodes": episodes},
                "groups": {k: {"episodes": int(len(v)),
                               "return_range": [float(episode_return[v].min()), float(episode_return[v].max())]}
                           for k, v in groups.items()},
                "compile": cfg["compile"], "resumed_at": state.get("resumed_at", []),
                "threads": torch.get_num_threads(), "device": str(device), "wall_s": round(state["wall_s"], 1),
                "provenance": started_with, "curve": state["curve"]}

    started = time.time() - state["wall_s"]
    bar = tqdm(range(state["step"], steps), desc=f"{task} critic (expectile {expectile:g})", initial=state["step"],
               total=steps, disable=not progress)
    for step in bar:
        idx = torch.randint(0, n, (cfg["batch_size"],), generator=generator, device=device)
        critic.update({k: v[idx] for k, v in D.items()})
        if (step + 1) % every == 0:
            state["step"] = step + 1
            row, labels_now = measure(critic, D, data["episode_ids"], groups, episode_return, labels)
            state["curve"].append({"step": step + 1, **row})
            labels = labels_now
            state["wall_s"] = time.time() - started
            save_module(critic, run_dir / f"critic_{step + 1}.pt", {"task": task, "seed": seed, "step": step + 1})
            save_checkpoint(ckpt_path, "run", config=identity, state=state, generator=generator.get_state(),
                            labels=torch.from_numpy(labels),
                            agents={"critic": module_record(critic)},
                            optimizers={"critic": critic.optimizer.state_dict()})
            atomic_write_text(run_dir / "convergence.json", json.dumps(results(), indent=1))
            bar.set_postfix(v=f"{row['v_mean']:.2f}", td=f"{row['td_rmse']:.3f}",
                            flip=row["flipped_fraction"] and f"{row['flipped_fraction']:.3f}")
    state["wall_s"] = time.time() - started
    final = results()
    atomic_write_text(run_dir / "convergence.json", json.dumps(final, indent=1))
    return final


def label_stability(task: str, run_dir, window: int = 4, preset: str = "book", data_root=None, device=None,
                    threads: int | None = None, progress: bool = True, data: str | None = None) -> dict:
    """Can the label noise be averaged away? From the critics a :func:`converge` run saved, at every saved step:

      * labels of that critic alone, and labels of A averaged over it and the ``window - 1`` critics saved before it;
        for each, the fraction flipped since the previous step, the o = 1 rate per behaviour group and the Spearman
        correlation of an episode's o = 1 rate with its return;
      * a reference that needs no Q: labels 1[G_t >= V(s_t)] from the data's own discounted return to go G_t
        (truncated at the episode's end, so late steps are biased low) with that critic's V.

    Writes ``labels.json`` beside ``convergence.json`` and returns it."""
    from .collect import episode_recipes
    from .diagnostics import discounted_returns_to_go

    with torch_threads(default_threads(threads)):
        domain, task_name = parse_task(task)
        cfg = _config(preset, data)
        device = default_device(device)
        run_dir = Path(run_dir)
        files = sorted(run_dir.glob("critic_*.pt"), key=lambda f: int(f.stem.removeprefix("critic_")))
        if not files:
            raise FileNotFoundError(f"{run_dir} holds no critic_<step>.pt files; run converge first")
        root = ensure_dataset(domain, cfg["dataset"], data_root, progress=progress, method=cfg["data"])
        episodes = SIZES[cfg["dataset"]]
        data = load_dataset(root, domain, cfg["data"], task_name, episodes=episodes, progress=progress)
        ids, episode_return = data["episode_ids"], episode_returns(data)
        recipes = episode_recipes(domain, episodes, method=cfg["data"])
        groups = behaviour_groups(episode_return, np.array([r["sigma"] is None for r in recipes]))
        counts = np.bincount(ids)
        G = discounted_returns_to_go(data["rewards"], ids, load_module(files[0], "iql_critic", device).config["gamma"])

        def describe(labels, previous):
            per_episode = np.bincount(ids, weights=labels) / counts
            return {"positive_fraction": float(labels.mean()),
                    "flipped_fraction": None if previous is None else float((labels != previous).mean()),
                    "positive_by_group": {g: float(labels[np.isin(ids, idx)].mean()) for g, idx in groups.items()},
                    "label_return_spearman": spearman(per_episode, episode_return)}

        advantages, rows, previous = [], [], {"single": None, "averaged": None, "returns": None}
        for f in tqdm(files, desc=f"{task}: labels of saved critics", disable=not progress):
            critic = load_module(f, "iql_critic", device)
            out = critic.on_dataset(data["observations"], data["actions"])
            advantages = (advantages + [out["advantage"].cpu().numpy()])[-window:]
            labels = {"single": advantages[-1] >= 0, "averaged": np.mean(advantages, 0) >= 0,
                      "returns": G >= out["v"].cpu().numpy()}
            row = {"step": int(f.stem.removeprefix("critic_")), "averaged_over": len(advantages)}
            for kind, lab in labels.items():
                row[kind] = describe(lab, previous[kind])
                previous[kind] = lab
            row["returns"]["agreement_with_single"] = float((labels["returns"] == labels["single"]).mean())
            rows.append(row)
        result = {"task": task, "window": window, "run_dir": str(run_dir), "provenance": provenance(), "rows": rows}
        atomic_write_text(run_dir / "labels.json", json.dumps(result, indent=1))
        return result


def main(argv=None):
    import argparse

    from .cli import positive_int, user_errors

    p = argparse.ArgumentParser(prog="python -m cfgrl_core.critic_convergence",
                                description="Train an IQL critic long, measuring V, TD error and label flips.")
    p.add_argument("--task", required=True, help="e.g. walker-run, cheetah-run")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=positive_int, default=100_000)
    p.add_argument("--every", type=positive_int, default=5_000)
    p.add_argument("--expectile", type=float, default=0.9)
    p.add_argument("--preset", default="book", help="runner preset whose critic sizes and data are used")
    p.add_argument("--data", default=None, choices=RECIPES, help="dataset recipe (default: the preset's)")
    p.add_argument("--out", default="runs/critic")
    p.add_argument("--data-root", default=None)
    p.add_argument("--device", default=None)
    p.add_argument("--threads", type=positive_int, default=None)
    p.add_argument("--labels", type=positive_int, default=None, metavar="WINDOW",
                   help="instead of training: label stability of the saved critics, A averaged over WINDOW of them")
    args = p.parse_args(argv)
    with user_errors(p):
        parse_task(args.task)
        default_device(args.device)
        if args.labels:
            run_dir = critic_run_dir(args.out, args.task, args.expectile, args.seed,
                                     _config(args.preset, args.data)["data"])
            r = label_stability(args.task, run_dir, args.labels, args.preset, args.data_root, args.device,
                                args.threads, data=args.data)
            print(json.dumps({"task": r["task"], "last": r["rows"][-1]["averaged"]}))
            return
        r = converge(args.task, args.seed, args.steps, args.every, args.expectile, args.preset, args.out,
                     args.data_root, args.device, args.threads, data=args.data)
        last = r["curve"][-1]
        print(json.dumps({"task": r["task"], "steps": r["steps"], "v_mean": last["v_mean"],
                          "td_rmse": last["td_rmse"], "flipped_fraction": last["flipped_fraction"]}))


if __name__ == "__main__":
    main()
