"""Make offline datasets in ExORL's on-disk layout from DeepMind Control.

Recipe ("td3_snapshots"): a TD3 run on a task of the domain left actor snapshots from random initialisation to
competent behaviour (``cfgrl_core/assets/td3/<domain>_<task>/``, made by ``python -m cfgrl_core.td3``; the
commands and returns are in each folder's ``snapshots.json``). Episode i of the dataset is, with probability
``random_fraction``, uniformly random actions, and otherwise a snapshot drawn uniformly from all of the domain's
snapshots, acting with Gaussian noise of a scale drawn from ``noise_levels``:  a = clip(pi_k(s) + sigma eps, -1, 1).
The result spans near-random to competent behaviour with the best episodes far above the mean.

Recipe ("rnd"): the replay of a reward-free exploring agent, as ExORL's ``rnd`` datasets are. A run of
:mod:`cfgrl_core.rnd` left actor snapshots along its training (``cfgrl_core/assets/rnd/<domain>/``). Episode i
stands for the point u_i of that training, u_i = the base-2 van der Corput number of i (0, 1/2, 1/4, 3/4, 1/8, ...):
uniformly random actions while the agent was still in its random phase, else the latest snapshot at that point with
the agent's own behaviour noise, a = clip(pi_k(s) + N(0, sigma^2), -1, 1). Sorted by u_i, the episodes follow the
snapshots in training order; and because u_i does not depend on the dataset's size, the first n episodes of any
dataset are themselves spread evenly over the whole run (for n = 2^k exactly at the points j / n), so a small dataset
is a prefix of a large one and an interrupted or enlarged collection stays one dataset.

Layout: ``{root}/{domain}/{method}/buffer/episode_{i:06d}_{T}.npz`` with keys observation (T+1, obs),
action (T+1, act; row 0 zeros), reward (T+1, 1; row 0 zero), discount (T+1, 1), physics (T+1, n_state).
Each episode is written atomically (temporary file + rename), so an interrupted collection resumes where it
stopped and never leaves a half-written episode. Episode i depends only on (seed, i): the same seed gives the same
files, whatever the interruptions.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from functools import lru_cache, partial
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from .checkpoint import atomic_write, atomic_write_text
from .envs import DOMAIN_TASKS, check_domain_task, flat_observation, make_env
from .provenance import provenance

ASSETS = Path(__file__).resolve().parent / "assets" / "td3"
RND_ASSETS = ASSETS.parent / "rnd"
RECIPES = ("td3_snapshots", "rnd")
DATA_ENV = "CFGRL_DATA"
#: Named sizes: episodes per domain (1000 steps each). "quick" is the first half of "book" (same seeds); "full" is
#: the 1M transitions ExORL's offline training reads per domain.
SIZES = {"smoke": 3, "quick": 100, "book": 200, "full": 1000}
#: The size the collector makes when none is asked for: the book's 200k transitions for the snapshot recipe, ExORL's
#: 1M for the exploration recipe (its 1000 episodes took 2.4 min for walker and 1.5 min for cheetah with 2 processes on
#: 2 CPU cores: benchmarks/data_generation.py, assets/results/data/generation.json).
DEFAULT_SIZE = {"td3_snapshots": "book", "rnd": "full"}


def default_data_root() -> Path:
    """$CFGRL_DATA, else ~/.cache/cfgrl/datasets."""
    return Path(os.environ.get(DATA_ENV) or Path.home() / ".cache" / "cfgrl" / "datasets")


@dataclass
class CollectConfig:
    domain: str = "walker"
    episodes: int = SIZES["book"]
    seed: int = 0
    method: str = "td3_snapshots"
    random_fraction: float = 0.1
    noise_levels: tuple = (0.0, 0.1, 0.3, 0.6)
    snapshot_dirs: list = field(default_factory=list)   # default: every assets/td3/<domain>_* folder

    def __post_init__(self):
        check_domain_task(self.domain)
        if self.method not in RECIPES:
            raise ValueError(f"unknown data recipe {self.method!r}; known: {list(RECIPES)}")
        if isinstance(self.episodes, bool) or not isinstance(self.episodes, int) or self.episodes < 1:
            raise ValueError(f"episodes must be an integer >= 1, got {self.episodes!r}")
        if not 0.0 <= self.random_fraction <= 1.0:
            raise ValueError(f"random_fraction must lie in [0, 1], got {self.random_fraction!r}")
        self.noise_levels = tuple(float(x) for x in self.noise_levels)
        if not self.snapshot_dirs:
            pattern = f"{self.domain}_*" if self.method == "td3_snapshots" else self.domain
            home = ASSETS if self.method == "td3_snapshots" else RND_ASSETS
            self.snapshot_dirs = sorted(str(p.relative_to(ASSETS.parent.parent)) for p in home.glob(pattern)
                                        if (p / "snapshots.json").exists())


def _snapshot_files(cfg: CollectConfig) -> list[Path]:
    root = ASSETS.parent.parent
    files = []
    for d in cfg.snapshot_dirs:
        d = Path(d) if Path(d).is_absolute() else root / d
        if not (d / "snapshots.json").exists():
            maker = "td3" if cfg.method == "td3_snapshots" else "rnd"
            raise FileNotFoundError(f"snapshot folder {d} has no snapshots.json (make it with python -m "
                                    f"cfgrl_core.{maker})")
        files += [d / s["file"] for s in json.loads((d / "snapshots.json").read_text())["snapshots"]]
    return files


def write_episode_atomic(path: Path, episode: dict) -> None:
    atomic_write(path, lambda f: np.savez_compressed(f, **episode))


#: The task whose live reward is stored in the files; any other task of the domain is a relabelling away.
COLLECT_TASK = "run"


def run_episode(domain: str, env_seed: int, act) -> dict:
    """Roll out ``act(obs) -> action`` for one episode; return it in ExORL's per-episode format."""
    env = make_env(domain, COLLECT_TASK, env_seed)
    ts = env.reset()
    act_dim = env.action_spec().shape[0]
    obs, acts, rews, phys = [flat_observation(ts.observation)], [np.zeros(act_dim, np.float32)], [0.0], \
        [env.physics.get_state().copy()]
    while not ts.last():
        a = np.asarray(act(obs[-1]), dtype=np.float32)
        ts = env.step(a)
        obs.append(flat_observation(ts.observation))
        acts.append(a)
        rews.append(ts.reward)
        phys.append(env.physics.get_state().copy())
    n = len(obs)
    return {"observation": np.stack(obs), "action": np.stack(acts), "reward": np.asarray(rews, np.float32)[:, None],
            "discount": np.ones((n, 1), np.float32), "physics": np.stack(phys).astype(np.float64)}


def training_point(i: int) -> float:
    """The base-2 van der Corput number of i: the bits of i mirrored behind the binary point (6 = 110b -> 0.011b =
    3/8). Any first 2^k of them are exactly {j / 2^k}; every prefix is spread evenly over [0, 1)."""
    u, scale = 0.0, 0.5
    while i:
        u, i, scale = u + scale * (i & 1), i >> 1, scale / 2
    return u


def _rnd_run(cfg: CollectConfig) -> dict:
    """The one RND run of the "rnd" recipe: its folder's ``snapshots.json`` (config and snapshot log)."""
    if len(cfg.snapshot_dirs) != 1:
        raise FileNotFoundError(f"the rnd recipe needs exactly one RND run folder for {cfg.domain!r}, found "
                                f"{cfg.snapshot_dirs} (make one with python -m cfgrl_core.rnd)")
    d = Path(cfg.snapshot_dirs[0])
    d = d if d.is_absolute() else ASSETS.parent.parent / d
    return {"dir": d, **json.loads((d / "snapshots.json").read_text())}


def _episode_draws(cfg: CollectConfig, snapshots: list, i: int):
    """The seeded draws that decide episode i: (rng, env seed, snapshot file or None for random actions, sigma).
    The returned rng goes on to draw the episode's action noise."""
    rng = np.random.default_rng([cfg.seed, i])
    env_seed = int(rng.integers(2**31 - 1))
    if cfg.method == "rnd":
        run = _rnd_run(cfg)
        at = training_point(i) * run["config"]["total_steps"]    # this episode's point in training
        if at < run["config"]["random_steps"]:
            return rng, env_seed, None, None
        latest = max((s for s in run["snapshots"] if s["step"] <= at), key=lambda s: s["step"])
        return rng, env_seed, run["dir"] / latest["file"], float(run["config"]["noise"])
    if rng.random() < cfg.random_fraction:
        return rng, env_seed, None, None
    file = snapshots[int(rng.integers(len(snapshots)))]
    sigma = cfg.noise_levels[int(rng.integers(len(cfg.noise_levels)))]
    return rng, env_seed, file, sigma


def episode_recipes(domain: str, episodes: int, seed: int = 0, method: str = "td3_snapshots") -> list[dict]:
    """How each episode of the default dataset of ``domain`` was made, recomputed from its seed (the same draws as
    :func:`collect`): ``{"behaviour": "random" | "<task folder>/<snapshot file>", "sigma": noise scale or None,
    "snapshot_return": the snapshot's evaluation return (rnd: its recent return on run) or None}``, one dict per
    episode."""
    cfg = CollectConfig(domain=domain, episodes=episodes, seed=seed, method=method)
    snapshots = _snapshot_files(cfg)
    returns = {}
    for d in {f.parent for f in snapshots}:
        for snap in json.loads((d / "snapshots.json").read_text())["snapshots"]:
            returns[d / snap["file"]] = snap.get("eval_return", snap.get("run_return_recent"))
    out = []
    for i in range(episodes):
        _, _, file, sigma = _episode_draws(cfg, snapshots, i)
        out.append({"behaviour": "random" if file is None else f"{file.parent.name}/{file.name}", "sigma": sigma,
                    "snapshot_return": None if file is None else returns.get(file)})
    return out


def collect(cfg: CollectConfig, root: str | os.PathLike | None = None, progress: bool = True,
            workers: int = 1) -> Path:
    """Write ``cfg.episodes`` episodes under ``root/domain/method/buffer``; resumes an interrupted collection.
    ``workers`` > 1 rolls episodes out in that many processes (one torch thread each); the files are the same.

    Refuses to add to a buffer made with a different configuration (the manifest collect_config.json says which).
    """
    root = Path(root) if root is not None else default_data_root()
    out = root / cfg.domain / cfg.method
    buffer = out / "buffer"
    buffer.mkdir(parents=True, exist_ok=True)
    manifest = out / "collect_config.json"
    wanted = {k: v for k, v in asdict(cfg).items() if k != "episodes"}
    if manifest.exists():
        have = json.loads(manifest.read_text())["config"]
        if {k: (tuple(v) if isinstance(v, list) else v) for k, v in have.items() if k != "episodes"} != \
                {k: (tuple(v) if isinstance(v, list) else v) for k, v in wanted.items()}:
            raise ValueError(f"{out} holds a dataset made with another configuration ({have}); "
                             f"use another root or delete it")
    atomic_write_text(manifest, json.dumps({"config": asdict(cfg), "provenance": provenance()}, indent=1))

    snapshots = _snapshot_files(cfg)
    if not snapshots and cfg.random_fraction < 1.0:
        raise FileNotFoundError(f"no {cfg.method} snapshots for domain {cfg.domain!r} under "
                                f"{ASSETS if cfg.method == 'td3_snapshots' else RND_ASSETS}")
    done = {p.name.split("_")[1] for p in buffer.glob("episode_*.npz")}
    todo = [i for i in range(cfg.episodes) if f"{i:06d}" not in done]
    bar = tqdm(total=cfg.episodes, initial=cfg.episodes - len(todo), desc=f"collect {cfg.domain}",
               disable=not progress)
    if workers <= 1 or len(todo) < 4:      # starting a process costs seconds
        for i in todo:
            _write_episode(cfg, buffer, snapshots, i)
            bar.update()
    else:   # episode i depends only on (seed, i): the workers' files are the ones one process would write
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(workers, initializer=_worker_init) as pool:
            for _ in pool.imap_unordered(partial(_write_episode, cfg, buffer, snapshots), todo):
                bar.update()
    bar.close()
    return out


_ACTORS: dict = {}     # per process: snapshot file -> loaded actor


@lru_cache(maxsize=None)
def _act_dim(domain: str) -> int:
    return make_env(domain, COLLECT_TASK, 0).action_spec().shape[0]


def _worker_init():
    torch.set_num_threads(1)


def _write_episode(cfg: CollectConfig, buffer: Path, snapshots: list, i: int) -> int:
    """Make episode i of ``cfg`` and write it atomically into ``buffer``."""
    from .checkpoint import load_module

    rng, env_seed, file, sigma = _episode_draws(cfg, snapshots, i)
    if file is None:
        act_dim = _act_dim(cfg.domain)
        act = lambda obs, rng=rng: rng.uniform(-1, 1, act_dim)  # noqa: E731
    else:
        if file not in _ACTORS:
            _ACTORS[file] = load_module(file, ("td3_actor", "rnd_actor")[cfg.method == "rnd"], "cpu")
        actor = _ACTORS[file]

        def act(obs, actor=actor, sigma=sigma, rng=rng):
            with torch.no_grad():
                a = actor(torch.from_numpy(obs)[None])[0].numpy()
            return np.clip(a + sigma * rng.standard_normal(a.shape), -1, 1)
    episode = run_episode(cfg.domain, env_seed, act)
    write_episode_atomic(buffer / f"episode_{i:06d}_{episode['action'].shape[0] - 1}.npz", episode)
    return i


def default_workers() -> int:
    """Processes for a collection: every core, at most 4."""
    return max(1, min(4, os.cpu_count() or 1))


def ensure_dataset(domain: str, episodes: int | str = "book", root=None, seed: int = 0, progress: bool = True,
                   method: str = "td3_snapshots", workers: int | None = None) -> Path:
    """The dataset root holding at least ``episodes`` (a number or a name in SIZES) episodes of ``domain`` made by
    recipe ``method``, collecting only the missing ones (``workers`` processes, default :func:`default_workers`).
    Returns the root to pass to :func:`cfgrl_core.dataset.load_dataset`."""
    n = SIZES[episodes] if isinstance(episodes, str) else episodes
    root = Path(root) if root is not None else default_data_root()
    collect(CollectConfig(domain=domain, episodes=n, seed=seed, method=method), root, progress=progress,
            workers=default_workers() if workers is None else workers)
    return root


def main(argv=None):
    import argparse

    from .cli import positive_int, user_errors

    p = argparse.ArgumentParser(prog="python -m cfgrl_core.collect",
                                description="Make an ExORL-layout offline dataset for a DMC domain.")
    p.add_argument("--domain", required=True, nargs="+", choices=sorted(DOMAIN_TASKS),
                   help="one or more domains, collected one after the other")
    p.add_argument("--size", default=None, choices=sorted(SIZES),
                   help=f"named number of episodes {SIZES} (default: {DEFAULT_SIZE} by recipe)")
    p.add_argument("--episodes", type=positive_int, default=None, help="overrides --size")
    p.add_argument("--recipe", default="td3_snapshots", choices=RECIPES, help="how the episodes are made")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=positive_int, default=None,
                   help="processes rolling episodes out (default: every core, at most 4)")
    p.add_argument("--root", default=None, help=f"dataset root (default: ${DATA_ENV} or ~/.cache/cfgrl/datasets)")
    args = p.parse_args(argv)
    size = args.size or DEFAULT_SIZE[args.recipe]
    episodes = args.episodes if args.episodes is not None else SIZES[size]
    with user_errors(p):
        for domain in dict.fromkeys(args.domain):
            out = collect(CollectConfig(domain=domain, episodes=episodes, seed=args.seed, method=args.recipe),
                          args.root, workers=args.workers or default_workers())
            print(f"dataset written to {out}")


if __name__ == "__main__":
    main()
