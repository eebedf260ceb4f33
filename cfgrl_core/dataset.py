"""Loading offline data in ExORL's layout (ours or the real files) as flat transition arrays.

``{root}/{domain}/{method}/buffer/*.npz``, one episode per file with keys observation (T+1, obs), action (T+1, act),
reward (T+1, 1), discount (T+1, 1), physics (T+1, n_state). For a task, rewards are relabelled from the physics
states (:func:`cfgrl_core.relabel.relabel_rewards`); transition t is
    (observation[t], action[t+1], reward[t+1], observation[t+1]),  mask = 1 (DMC has no terminal states).
Files are read with ``np.load(..., allow_pickle=False)``. A processed cache (``processed_<task>.npz`` beside the
buffer) is reused while the buffer's file list, sizes and modification times are unchanged.
"""
from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import numpy as np

from .checkpoint import atomic_write
from .envs import check_domain_task

KEYS = ("observation", "action", "reward", "discount", "physics")
FIELDS = ("observations", "actions", "rewards", "next_observations", "masks", "episode_ids")


class DatasetError(ValueError):
    """An offline dataset is missing, empty, corrupted or inconsistent."""


def read_episode(path: Path) -> dict:
    """One episode file's arrays (``KEYS``), checked: raises DatasetError naming the file and the problem."""
    try:
        with np.load(path, allow_pickle=False) as f:
            missing = [k for k in KEYS if k not in f.files]
            if missing:
                raise DatasetError(f"{path}: missing keys {missing} (has {sorted(f.files)})")
            ep = {k: f[k] for k in KEYS}
    except DatasetError:
        raise
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError) as e:
        raise DatasetError(f"{path}: corrupted or truncated episode file ({type(e).__name__}: {e})") from e
    lengths = {k: v.shape[0] if v.ndim else None for k, v in ep.items()}
    if len(set(lengths.values())) != 1 or None in lengths.values():
        raise DatasetError(f"{path}: keys have mismatched lengths {lengths}")
    if lengths["observation"] < 2:
        raise DatasetError(f"{path}: an episode needs at least 2 steps, got {lengths['observation']}")
    for k, v in ep.items():
        if v.ndim != 2:
            raise DatasetError(f"{path}: {k} must be 2-D (T+1, dim), got shape {v.shape}")
        if not np.all(np.isfinite(v)):
            raise DatasetError(f"{path}: {k} contains NaN or infinite values")
    return ep


def episode_files(root, domain: str, method: str) -> list[Path]:
    buffer = Path(root) / domain / method / "buffer"
    if not buffer.is_dir():
        raise DatasetError(f"dataset directory {buffer} does not exist")
    files = sorted(buffer.glob("*.npz"))
    if not files:
        raise DatasetError(f"dataset directory {buffer} holds no .npz episodes")
    return files


def _fingerprint(files: list[Path]) -> str:
    h = hashlib.sha256()
    for p in files:
        st = p.stat()
        h.update(f"{p.name}:{st.st_size}:{st.st_mtime_ns};".encode())
    return h.hexdigest()


def load_dataset(root, domain: str, method: str, task: str | None, cache: bool = True, progress: bool = True,
                 episodes: int | None = None) -> dict:
    """Flat transitions of every episode (or of the first ``episodes`` files in name order); rewards relabelled
    for ``task`` (None: the rewards stored in the files).

    Returns float32 arrays observations, actions, rewards (N,), next_observations, masks (N,), and int64
    episode_ids (N,). Raises DatasetError naming the file and the problem for any bad episode.
    """
    from tqdm.auto import tqdm

    check_domain_task(domain, task)
    files = episode_files(root, domain, method)
    if episodes is not None:
        if len(files) < episodes:
            raise DatasetError(f"{files[0].parent} holds {len(files)} episodes, {episodes} were asked for")
        files = files[:episodes]
    fingerprint = _fingerprint(files)
    cache_path = Path(root) / domain / method / f"processed_{task or 'stored'}_{len(files)}.npz"
    if cache and cache_path.exists():
        try:
            with np.load(cache_path, allow_pickle=False) as f:
                if str(f["fingerprint"]) == fingerprint:
                    return {k: f[k] for k in FIELDS}
        except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError):
            pass   # a damaged cache is rebuilt from the episodes

    parts = {k: [] for k in FIELDS}
    widths = None
    for i, path in enumerate(tqdm(files, desc=f"load {domain}/{method}", disable=not progress)):
        ep = read_episode(path)
        w = {k: v.shape[1] for k, v in ep.items()}
        if widths is None:
            widths, first = w, path
        elif w != widths:
            raise DatasetError(f"{path}: array widths {w} differ from those of {first.name} {widths}")
        if task is not None:
            from .relabel import relabel_rewards

            reward = relabel_rewards(domain, task, ep["physics"])
        else:
            reward = ep["reward"]
        n = ep["observation"].shape[0] - 1
        parts["observations"].append(ep["observation"][:-1])
        parts["next_observations"].append(ep["observation"][1:])
        parts["actions"].append(ep["action"][1:])
        parts["rewards"].append(reward[1:, 0])
        parts["masks"].append(np.ones(n, np.float32))
        parts["episode_ids"].append(np.full(n, i, np.int64))
    data = {k: np.concatenate(v).astype(np.int64 if k == "episode_ids" else np.float32) for k, v in parts.items()}
    if cache:
        atomic_write(cache_path, lambda f: np.savez(f, fingerprint=np.array(fingerprint), **data))
    return data


def episode_returns(data: dict) -> np.ndarray:
    """Sum of rewards per episode (in episode order)."""
    return np.bincount(data["episode_ids"], weights=data["rewards"])


def summarize(data: dict) -> dict:
    """Transitions, episodes and the per-episode return distribution."""
    r = episode_returns(data)
    q = np.quantile(r, [0.0, 0.25, 0.5, 0.75, 1.0])
    return {"transitions": int(data["rewards"].shape[0]), "episodes": int(r.size), "return_mean": float(r.mean()),
            "return_min": float(q[0]), "return_q25": float(q[1]), "return_median": float(q[2]),
            "return_q75": float(q[3]), "return_max": float(q[4])}


def dataset_states(root, domain: str, num_states: int, seed: int = 0, method: str = "td3_snapshots"):
    """``num_states`` states drawn at random (seeded) from the stored episodes: their observations (N, obs_dim) and
    simulator states (N, n_state), aligned, so each can be shown as a rendered frame."""
    files = episode_files(root, domain, method)
    rng = np.random.default_rng(seed)
    obs, physics = [], []
    for _ in range(int(num_states)):
        ep = read_episode(files[rng.integers(len(files))])
        t = rng.integers(ep["observation"].shape[0] - 1)
        obs.append(ep["observation"][t])
        physics.append(ep["physics"][t])
    return np.stack(obs).astype(np.float32), np.stack(physics)
