"""Vectorised evaluation: many episodes of many settings (w values, temperatures, ...) stepped together.

Every (setting, episode seed) pair gets its own environment; at each step one batched call of
``act(obs, setting_index) -> actions`` chooses the actions of all of them, so a flow policy evaluated at seven
guidance weights costs one forward pass per step instead of seven.
"""
from __future__ import annotations

import multiprocessing
import traceback

import numpy as np
import torch
from tqdm.auto import tqdm

from .envs import flat_observation, make_env


#: most simulators stepped together (each holds about 14 MB: 1460 of them exhausted a 24 GB machine)
MAX_ENVS = 400


def evaluate(act, domain: str, task: str, num_settings: int, seeds, progress: bool = False,
             record_physics: bool = False, max_steps: int | None = None, max_envs: int = MAX_ENVS):
    """Returns an array (num_settings, len(seeds)) of episode returns; with ``record_physics`` also the simulator
    states of every episode, (num_settings, len(seeds), T + 1, n_state), for rendering videos. ``max_steps`` cuts
    every episode short (previews and smoke tests); None runs them to the end. When num_settings x len(seeds) exceeds
    ``max_envs``, the seeds are run in consecutive chunks (every setting of a chunk together), to bound memory.

    ``act(obs, setting)`` receives obs as a float32 tensor (M, obs_dim) and setting as a long tensor (M,) and returns
    actions (M, act_dim) in [-1, 1] (tensor or array). Episode ``j`` of every setting uses environment seed
    ``seeds[j]``, so settings are compared on the same initial states.
    """
    seeds = [int(s) for s in seeds]
    if num_settings < 1 or not seeds:
        raise ValueError(f"need at least one setting and one seed, got {num_settings} and {len(seeds)}")
    per_chunk = max(1, max_envs // num_settings)
    if len(seeds) > per_chunk:
        parts = [evaluate(act, domain, task, num_settings, seeds[i:i + per_chunk], progress, record_physics,
                          max_steps, max_envs) for i in range(0, len(seeds), per_chunk)]
        if record_physics:
            return (np.concatenate([p[0] for p in parts], 1), np.concatenate([p[1] for p in parts], 1))
        return np.concatenate(parts, 1)
    envs = [make_env(domain, task, s) for _ in range(num_settings) for s in seeds]
    setting = torch.arange(num_settings).repeat_interleave(len(seeds))
    steps = [env.reset() for env in envs]
    returns = np.zeros(len(envs))
    physics = [[env.physics.get_state().copy()] for env in envs] if record_physics else None
    bar = tqdm(desc=f"evaluate {domain}-{task} ({len(envs)} episodes)", total=1000, disable=not progress)
    t = 0
    while not all(ts.last() for ts in steps) and (max_steps is None or t < max_steps):
        t += 1
        live = [i for i, ts in enumerate(steps) if not ts.last()]
        obs = torch.from_numpy(np.stack([flat_observation(steps[i].observation) for i in live]))
        actions = act(obs, setting[live])
        actions = actions.detach().cpu().numpy() if isinstance(actions, torch.Tensor) else np.asarray(actions)
        for row, i in enumerate(live):
            steps[i] = envs[i].step(actions[row])
            returns[i] += steps[i].reward
            if record_physics:
                physics[i].append(envs[i].physics.get_state().copy())
        bar.update(1)
    bar.close()
    returns = returns.reshape(num_settings, len(seeds))
    if record_physics:
        return returns, np.stack([np.stack(p) for p in physics]).reshape(num_settings, len(seeds), -1,
                                                                          physics[0][0].shape[0])
    return returns


def evaluate_sharded(make_act, domain: str, task: str, num_settings: int, seeds, workers: int = 1,
                     progress: bool = False, max_steps: int | None = None, max_envs: int = MAX_ENVS):
    """:func:`evaluate` with the episode seeds split into ``workers`` contiguous shards, each stepped by its own
    process with one torch thread. The simulators are stepped one by one in Python on one core, so on a 2-core machine
    two shards finish sooner than one (by how much: ``extraction``'s files record their ``eval_wall_s``).

    ``make_act(shard) -> act`` builds shard ``shard``'s ``act`` inside the process that runs it (shards are forked
    from this one, so ``make_act`` may close over anything), which lets each shard draw its own random numbers. With
    ``workers=1`` this is exactly ``evaluate(make_act(0), ...)``; other worker counts give the same episodes (same
    seeds, same initial states) but other sampling noise, so record the count beside the results.
    """
    seeds = [int(s) for s in seeds]
    if not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be an integer >= 1, got {workers!r}")
    workers = min(workers, len(seeds)) if seeds else 1
    if workers > 1 and torch.cuda.is_initialized():
        raise ValueError("evaluation workers are forked processes, which cannot use CUDA: use one worker on a GPU")
    if workers == 1:
        return evaluate(make_act(0), domain, task, num_settings, seeds, progress, max_steps=max_steps,
                        max_envs=max_envs)
    shards = [list(part) for part in np.array_split(np.array(seeds), workers)]
    per_worker_envs = max(1, max_envs // workers)
    ctx = multiprocessing.get_context("fork")

    def run_shard(k):
        torch.set_num_threads(1)
        return evaluate(make_act(k), domain, task, num_settings, shards[k], progress and k == 0,
                        max_steps=max_steps, max_envs=per_worker_envs)

    def child(k, conn):
        try:
            conn.send(("ok", run_shard(k)))
        except BaseException:  # noqa: BLE001 - everything goes back to the parent, which raises it
            conn.send(("error", traceback.format_exc()))
        finally:
            conn.close()

    pipes, procs = [], []
    for k in range(1, workers):
        receive, send = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=child, args=(k, send), daemon=True)
        proc.start()
        send.close()
        pipes.append(receive)
        procs.append(proc)
    try:
        before = torch.get_num_threads()
        try:
            parts = [run_shard(0)]
        finally:
            torch.set_num_threads(before)
        for k, (receive, proc) in enumerate(zip(pipes, procs), start=1):
            try:
                status, payload = receive.recv()
            except EOFError:
                proc.join()
                raise RuntimeError(f"evaluation worker {k} died without a result (exit code {proc.exitcode})") \
                    from None
            if status != "ok":
                raise RuntimeError(f"evaluation worker {k} failed:\n{payload}")
            parts.append(payload)
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.terminate()
            proc.join()
    return np.concatenate(parts, 1)


def flow_policy_actor(policy, w_values, seed: int = 0, noise_scale: float = 1.0):
    """``act`` for :func:`evaluate` that samples a guided flow policy at w = w_values[setting] (one pass for all);
    ``noise_scale=0`` integrates every action from x_0 = 0 (deterministic)."""
    w_values = torch.as_tensor(w_values, dtype=torch.float32)
    generator = torch.Generator(device=policy.device).manual_seed(seed)

    def act(obs, setting):
        return policy.sample(obs.to(policy.device), 1, w_values[setting].to(policy.device), generator=generator,
                             noise_scale=noise_scale)

    return act


def gaussian_actors_actor(actors, sample: bool = False, seed: int = 0):
    """``act`` for :func:`evaluate` with one Gaussian (AWR) agent per setting: its mean action (the AWR convention)
    or, with ``sample=True``, a draw from it (clipped to [-1, 1])."""
    actors = list(actors)
    device = next(actors[0].parameters()).device
    generator = torch.Generator(device=device).manual_seed(seed)

    @torch.no_grad()
    def act(obs, setting):
        obs, setting = obs.to(device), setting.to(device)
        out = torch.empty(obs.shape[0], actors[0].action_dim, device=device)
        for k, actor in enumerate(actors):
            rows = setting == k
            if rows.any():
                out[rows] = actor.sample_actions(obs[rows], deterministic=not sample, generator=generator)
        return out

    return act
