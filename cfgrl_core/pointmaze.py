"""OGBench's pointmaze, and goal-conditioned data made here with OGBench's "navigate" recipe, in OGBench's file layout.

Environments come from the ``ogbench`` package (``pip install "cfgrl-core[goals]"``); they make and step offline.
The official datasets are downloaded from the internet, and OGBench's data-generation script is not in its wheel, so
:func:`generate` writes our own, from the documented recipe (OGBench's ``data_gen_scripts/generate_locomaze.py``,
``navigate`` type, re-implemented here):

  * each episode starts in a free cell drawn uniformly, with a goal cell drawn uniformly from the maze's non-hallway
    cells; start and goal are jittered by OGBench's own noise (uniform, +-1 in x and y);
  * at every step the breadth-first-search oracle in the ``ogbench`` wheel (``get_oracle_subgoal``) names the next cell
    on a shortest path; the action is the unit vector towards that cell's centre plus N(0, noise^2) (noise 0.5 for
    pointmaze), clipped to [-1, 1];
  * when the goal is reached a new goal cell is drawn; episodes never terminate and last ``EPISODE_STEPS`` steps.

Layout (OGBench's): one ``.npz`` with ``observations`` (N, 2) float32 (the point's x, y), ``actions`` (N, 2) float32,
``terminals`` (N,) bool (True on each episode's last row: an episode end, not a goal reached), ``qpos`` and ``qvel``
(N, 2) float32; a ``.json`` beside it records the recipe and provenance. :func:`load_goal_dataset` reads ours and the
official files alike, with ``np.load(..., allow_pickle=False)``. Episode i depends only on (seed, i); the file is
written atomically.

Evaluation (:func:`evaluate_goals`): OGBench's 5 tasks per maze (a start cell and a goal cell, both jittered), success
= within 1.0 of the goal, an episode ends on success or after 1000 steps; many episodes are stepped together.
"""
from __future__ import annotations

import json
import zipfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from .checkpoint import atomic_write, atomic_write_text
from .dataset import DatasetError
from .provenance import provenance

MAZES = ("medium", "large", "giant", "teleport")
EPISODE_STEPS = {"medium": 1001, "large": 1001, "giant": 2001, "teleport": 1001}   # rows per data episode
NOISE = 0.5             # the std of the data's action noise (OGBench's pointmaze datasets)
TASKS = (1, 2, 3, 4, 5)
EVAL_STEPS = 1000       # OGBench's evaluation episodes (medium, large, teleport; giant has 1000 too)
KEYS = ("observations", "actions", "terminals")
#: Named sizes: data episodes per maze. OGBench's own datasets hold 1000 (giant: 500).
SIZES = {"smoke": 3, "book": 200}


def _ogbench():
    try:
        import ogbench
        import ogbench.locomaze  # noqa: F401  (registers the environments with gymnasium)
    except ImportError as e:
        raise ImportError('the goal-conditioned chapter needs OGBench: pip install "cfgrl-core[goals]" '
                          "(or pip install ogbench)") from e
    return ogbench


def check_maze(maze: str) -> str:
    if maze not in MAZES:
        raise ValueError(f"unknown maze {maze!r}; known: {list(MAZES)}")
    return maze


def make_env(maze: str, *, data: bool = False):
    """The pointmaze environment: OGBench's evaluation environment, or (``data``) the one its data generation uses
    (no termination at the goal, ``EPISODE_STEPS`` steps)."""
    check_maze(maze)
    ogbench = _ogbench()
    if data:
        import gymnasium
        return gymnasium.make(f"pointmaze-{maze}-v0", terminate_at_goal=False,
                              max_episode_steps=EPISODE_STEPS[maze])
    return ogbench.make_env_and_datasets(f"pointmaze-{maze}-navigate-v0", env_only=True)


def maze_cells(env) -> tuple[list, list]:
    """(every free cell, the free cells that are not hallways): OGBench's start and goal cells of its data."""
    m = env.unwrapped.maze_map
    free, goals = [], []
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            if m[i, j] != 0:
                continue
            free.append((i, j))
            vertical = m[i - 1, j] == 0 and m[i + 1, j] == 0 and m[i, j - 1] == 1 and m[i, j + 1] == 1
            horizontal = m[i, j - 1] == 0 and m[i, j + 1] == 0 and m[i - 1, j] == 1 and m[i + 1, j] == 1
            if not (vertical or horizontal):
                goals.append((i, j))
    return free, goals


@contextmanager
def numpy_seed(seed: int):
    """Seed numpy's global generator for the body (OGBench's jitter and teleports draw from it), then restore it."""
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


def seeded_reset(env, seed: int, options: dict):
    """Reset with every generator OGBench's reset draws from seeded by ``seed``: its jitter (numpy's global), the
    stabilising random actions (the action space) and the simulator (gymnasium's)."""
    env.action_space.seed(seed)
    with numpy_seed(seed):
        return env.reset(seed=seed, options=options)


# ------------------------------------------------------------------------------------------------- the data
def collect_episode(env, seed: int, noise: float = NOISE) -> dict:
    """One ``navigate`` episode (see the module docstring); it depends only on ``seed``."""
    rng = np.random.default_rng(seed)
    free, goal_cells = maze_cells(env)
    base = env.unwrapped
    init_ij = free[rng.integers(len(free))]
    goal_ij = goal_cells[rng.integers(len(goal_cells))]
    ob, _ = seeded_reset(env, seed, {"task_info": {"init_ij": init_ij, "goal_ij": goal_ij}})
    rows = {k: [] for k in ("observations", "actions", "terminals", "qpos", "qvel")}
    with numpy_seed(seed + 1):                       # set_goal's jitter of the goals drawn on arrival
        done = False
        while not done:
            subgoal, _ = base.get_oracle_subgoal(base.get_xy(), base.cur_goal_xy)
            direction = subgoal - base.get_xy()
            direction = direction / (np.linalg.norm(direction) + 1e-6)
            action = np.clip(direction + rng.normal(0.0, noise, 2), -1.0, 1.0)
            next_ob, _, terminated, truncated, info = env.step(action)
            done = terminated or truncated
            if info["success"]:
                base.set_goal(goal_cells[rng.integers(len(goal_cells))])
            for k, v in (("observations", ob), ("actions", action), ("terminals", done),
                         ("qpos", info["prev_qpos"]), ("qvel", info["prev_qvel"])):
                rows[k].append(v)
            ob = next_ob
    out = {k: np.asarray(v, dtype=np.float32) for k, v in rows.items() if k != "terminals"}
    out["terminals"] = np.asarray(rows["terminals"], dtype=bool)
    return out


def default_path(maze: str, size: str, seed: int = 0, root=None) -> Path:
    """``<root>/pointmaze/pointmaze-<maze>-navigate-<size>-seed<k>.npz``; root: $CFGRL_DATA, else
    ~/.cache/cfgrl/datasets."""
    from .collect import default_data_root
    root = Path(root) if root is not None else default_data_root()
    return root / "pointmaze" / f"pointmaze-{maze}-navigate-{size}-seed{seed}.npz"


def generate(maze: str, episodes: int, path, seed: int = 0, noise: float = NOISE, progress: bool = True) -> Path:
    """Write ``episodes`` navigate episodes of ``maze`` to ``path`` (OGBench's layout; atomically) and the recipe to
    ``path`` with suffix ``.json``. Episode i is :func:`collect_episode` with seed ``1000 * seed + i``."""
    check_maze(maze)
    if isinstance(episodes, bool) or not isinstance(episodes, int) or episodes < 1:
        raise ValueError(f"episodes must be an integer >= 1, got {episodes!r}")
    if not noise >= 0:
        raise ValueError(f"noise must be >= 0, got {noise!r}")
    env = make_env(maze, data=True)
    parts = [collect_episode(env, 1000 * seed + i, noise)
             for i in tqdm(range(episodes), desc=f"pointmaze-{maze} navigate data", disable=not progress)]
    data = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    path = Path(path)
    atomic_write(path, lambda f: np.savez_compressed(f, **data))
    recipe = {"maze": maze, "dataset_type": "navigate", "episodes": episodes, "episode_steps": EPISODE_STEPS[maze],
              "seed": seed, "noise": noise, "episode_seeds": f"1000 * {seed} + i", "provenance": provenance()}
    atomic_write_text(path.with_suffix(".json"), json.dumps(recipe, indent=1))
    return path


def ensure_goal_dataset(maze: str, size: str, seed: int = 0, root=None, progress: bool = True) -> Path:
    """The path of the named-size dataset, generated first if it is missing."""
    if size not in SIZES:
        raise ValueError(f"unknown size {size!r}; known: {sorted(SIZES)}")
    path = default_path(maze, size, seed, root)
    if not path.exists():
        generate(maze, SIZES[size], path, seed, progress=progress)
    return path


def load_goal_dataset(path) -> dict:
    """A navigate dataset, ours or OGBench's official file: ``observations``, ``actions`` (float32), ``terminals``
    (bool), and ``episode_ends`` (for every row, the index of its episode's last row). Raises DatasetError naming the
    file and the problem."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"goal dataset {path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as f:
            missing = [k for k in KEYS if k not in f.files]
            if missing:
                raise DatasetError(f"{path}: missing keys {missing} (has {sorted(f.files)})")
            data = {k: f[k] for k in KEYS}
    except DatasetError:
        raise
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError) as e:
        raise DatasetError(f"{path}: corrupted or unreadable dataset ({type(e).__name__}: {e})") from e
    obs, act, term = data["observations"], data["actions"], data["terminals"]
    if obs.ndim != 2 or act.ndim != 2 or term.ndim != 1:
        raise DatasetError(f"{path}: observations and actions must be 2-D and terminals 1-D, got shapes "
                           f"{obs.shape}, {act.shape}, {term.shape}")
    if not len(obs) == len(act) == len(term) or len(obs) < 2:
        raise DatasetError(f"{path}: observations, actions and terminals need one equal length >= 2, got "
                           f"{len(obs)}, {len(act)}, {len(term)}")
    if not (np.isfinite(obs).all() and np.isfinite(act).all()):
        raise DatasetError(f"{path}: observations or actions contain NaN or infinite values")
    if term.dtype != bool and not np.isin(term, (0, 1)).all():
        raise DatasetError(f"{path}: terminals must be booleans (or 0/1), got values {np.unique(term)[:5]}")
    term = term.astype(bool)
    if not term[-1]:
        raise DatasetError(f"{path}: the last row must end an episode (terminals[-1] is False)")
    ends = np.flatnonzero(term)
    return {"observations": obs.astype(np.float32), "actions": act.astype(np.float32), "terminals": term,
            "episode_ends": ends[np.searchsorted(ends, np.arange(len(term)))]}


def hindsight_goals(idx: torch.Tensor, episode_ends: torch.Tensor, generator: torch.Generator,
                    geometric: float | None = None) -> torch.Tensor:
    """Indices of goals for the rows ``idx``: a state of the same episode strictly later than the row (the row itself
    when it is the episode's last), uniform over the rest of the episode (the official choice) or, with
    ``geometric=gamma``, idx + Geometric(1 - gamma) steps ahead, capped at the episode's end."""
    end = episode_ends[idx]
    if geometric is None:
        u = torch.rand(idx.shape, generator=generator, device=idx.device)
        offset = torch.floor(u * (end - idx).float()).long() + 1
    else:
        u = torch.rand(idx.shape, generator=generator, device=idx.device).clamp_min(1e-12)
        offset = torch.floor(torch.log(u) / np.log(geometric)).long() + 1
    return torch.minimum(idx + offset, end)


# ----------------------------------------------------------------------------------------------- evaluation
def evaluate_goals(act, maze: str, settings: int, seeds: list[int], tasks=TASKS, max_steps: int = EVAL_STEPS,
                   progress: bool = False) -> np.ndarray:
    """Success of ``settings`` policies on OGBench's tasks: for every setting, task and seed, one episode; all of them
    stepped together. ``act(obs, goals, setting)`` gets float tensors (n, 2), (n, 2) and the setting index of each row
    and returns actions (n, 2). Returns successes of shape (settings, len(tasks), len(seeds)), 0 or 1."""
    jobs = [(s, k, seed) for s in range(settings) for k in range(len(tasks)) for seed in seeds]
    envs, obs, goals = [], [], []
    for s, k, seed in jobs:
        env = make_env(maze)
        ob, info = seeded_reset(env, seed, {"task_id": tasks[k]})
        envs.append(env)
        obs.append(ob)
        goals.append(info["goal"])
    obs, goals = np.asarray(obs, dtype=np.float32), np.asarray(goals, dtype=np.float32)
    setting = torch.tensor([s for s, _, _ in jobs])
    success = np.zeros(len(jobs))
    live = np.ones(len(jobs), dtype=bool)
    for t in tqdm(range(max_steps), desc=f"pointmaze-{maze} evaluation", disable=not progress):
        rows = np.flatnonzero(live)
        if len(rows) == 0:
            break
        actions = act(torch.from_numpy(obs[rows]), torch.from_numpy(goals[rows]), setting[rows])
        actions = np.asarray(actions.detach().cpu(), dtype=np.float64)
        for r, a in zip(rows, actions):
            with numpy_seed(jobs[r][2] * 7919 + t):       # teleports draw from numpy's global generator
                ob, _, terminated, truncated, info = envs[r].step(a)
            obs[r] = ob
            if info["success"]:
                success[r] = 1.0
            if terminated or truncated or info["success"]:
                live[r] = False
    for env in envs:
        env.close()
    return success.reshape(settings, len(tasks), len(seeds))


def rollout_paths(act, maze: str, seed: int, tasks=TASKS, max_steps: int = EVAL_STEPS) -> list[dict]:
    """One evaluation episode per task with ``act(obs, goals)`` (tensors (1, 2) each): the point's path (T + 1, 2), the
    goal and whether it was reached, for drawing."""
    out = []
    for k in tasks:
        env = make_env(maze)
        ob, info = seeded_reset(env, seed, {"task_id": k})
        goal, path, success = np.asarray(info["goal"], np.float32), [ob], False
        for t in range(max_steps):
            a = act(torch.as_tensor(ob, dtype=torch.float32)[None], torch.as_tensor(goal)[None])
            with numpy_seed(seed * 7919 + t):
                ob, _, terminated, truncated, info = env.step(np.asarray(a[0].detach().cpu(), np.float64))
            path.append(ob)
            if info["success"]:
                success = True
            if success or terminated or truncated:
                break
        env.close()
        out.append({"task": k, "path": np.asarray(path), "goal": goal, "success": success})
    return out


def maze_walls(maze: str) -> list[tuple[float, float, float, float]]:
    """The wall cells as (x, y, width, height) rectangles in the environment's coordinates, for drawing."""
    base = make_env(maze).unwrapped
    unit, m = base._maze_unit, base.maze_map
    return [(j * unit - base._offset_x - unit / 2, i * unit - base._offset_y - unit / 2, unit, unit)
            for i in range(m.shape[0]) for j in range(m.shape[1]) if m[i, j] == 1]


def shortest_path_cells(maze: str, task: int) -> int:
    """Length, in maze cells, of the shortest path between evaluation task ``task``'s start and goal cells (the
    breadth-first search OGBench's oracle walks): how long a horizon the task asks for."""
    base = make_env(maze).unwrapped
    m, info = base.maze_map, base.task_infos[task - 1]
    start, goal = tuple(info["init_ij"]), tuple(info["goal_ij"])
    distance, frontier = {start: 0}, [start]
    while frontier:
        nxt = []
        for i, j in frontier:
            for cell in ((i + 1, j), (i - 1, j), (i, j + 1), (i, j - 1)):
                if m[cell] == 0 and cell not in distance:
                    distance[cell] = distance[(i, j)] + 1
                    nxt.append(cell)
        frontier = nxt
    return distance[goal]


def main(argv=None):
    import argparse

    from .cli import user_errors

    p = argparse.ArgumentParser(prog="python -m cfgrl_core.pointmaze",
                                description="Make OGBench-layout navigate data for a pointmaze (ahead of the runs).")
    p.add_argument("--maze", required=True, help=", ".join(MAZES))
    p.add_argument("--size", default="book", help=f"one of {sorted(SIZES)} (episodes: {SIZES})")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-root", default=None, help="default: $CFGRL_DATA, else ~/.cache/cfgrl/datasets")
    args = p.parse_args(argv)
    with user_errors(p):
        check_maze(args.maze)
        path = ensure_goal_dataset(args.maze, args.size, args.seed, args.data_root)
        print(path)


if __name__ == "__main__":
    main()
