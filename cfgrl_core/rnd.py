"""Reward-free exploration with Random Network Distillation on DDPG: the agent behind ExORL's ``rnd`` datasets.

The paper's Table 1 trains on ExORL's ``rnd`` data: the replay of URLB's RND agent (Burda et al., 2019, on DDPG),
which never sees a task reward. This module is a compact version of that agent, sized for 2 CPU cores, used only to
*make* data: its actor snapshots are rolled out by :mod:`cfgrl_core.collect` (recipe ``rnd``).

Intrinsic reward of a transition (s, a, s'), with s' normalised by running statistics and clipped to +-5:

    e(s') = || f_pred(s') - f_target(s') ||^2          f_target: a random network, frozen; f_pred: trained on e
    r_int = e(s') / std(e)                             std: a running estimate over the batches seen

States visited often are predicted well (small e), new ones are not: the reward pays for novelty. DDPG with twin
critics maximises it, with n-step targets and a constant Gaussian behaviour noise:

    y = sum_{k<n} gamma^k r_int(s_{t+k+1}) + gamma^n min_i Q'_i(s_{t+n}, clip(pi'(s_{t+n}) + clip(eps, -c, c)))
    L_Q = sum_i (Q_i(s_t, a_t) - y)^2        L_pi = -min_i Q_i(s, clip(pi(s) + clip(eps, -c, c)))
    behaviour: a = clip(pi(s) + N(0, sigma^2), -1, 1); uniform random for the first ``random_steps`` steps.

URLB's defaults beside ours (``RNDConfig``): networks 1024 wide (ours 256), RND 1024-1024-512 (ours 256-256-128),
batch 1024 (ours 256), lr 1e-4 (both), n-step 3, gamma 0.99, tau 0.01, sigma 0.2, one update per 2 environment
steps, and millions of steps (ours: a few hundred thousand; the state coverage curve in ``snapshots.json`` shows
when it stops growing). URLB normalises RND's input with BatchNorm statistics; here running statistics of the
same kind are kept explicitly, so a snapshot's normalisation is a number in its state, not a batch's.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from .checkpoint import (CheckpointError, atomic_write_text, load_module, read_checkpoint, save_checkpoint,
                         save_module)
from .envs import check_domain_task, flat_observation, make_env
from .networks import mlp
from .provenance import provenance
from .train import make_adam


@dataclass
class RNDConfig:
    domain: str = "walker"
    total_steps: int = 200_000      # environment steps (URLB: 2M pre-training frames)
    random_steps: int = 4_000       # uniform random actions first (URLB: 4000)
    update_every: int = 2           # one gradient update per this many environment steps (URLB: 2)
    batch_size: int = 256           # URLB: 1024
    hidden: int = 256               # actor and critic width (URLB: 1024)
    rnd_hidden: int = 256           # predictor and target: obs -> rnd_hidden -> rnd_hidden -> rnd_out
    rnd_out: int = 128              # URLB: 1024, 1024, 512
    lr: float = 1e-4                # Adam, every network (URLB: 1e-4)
    gamma: float = 0.99
    n_step: int = 3
    tau: float = 0.01               # Polyak rate of the target critics and actor
    noise: float = 0.2              # constant behaviour noise (URLB: 0.2, not annealed)
    noise_clip: float = 0.3         # clip of the target-policy and actor-loss noise (URLB's stddev_clip)
    obs_clip: float = 5.0           # normalised observations are clipped to +-obs_clip before RND
    snapshot_every: int = 20_000    # actor snapshots (and a coverage point) every this many steps
    checkpoint_every: int = 10_000  # resumable training state every this many steps
    seed: int = 0

    def __post_init__(self):
        check_domain_task(self.domain)
        for name in ("total_steps", "update_every", "batch_size", "hidden", "rnd_hidden", "rnd_out", "n_step",
                     "snapshot_every", "checkpoint_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if self.random_steps < 0:
            raise ValueError(f"random_steps must be >= 0, got {self.random_steps!r}")


class RNDActor(nn.Module):
    """URLB's DDPG actor: Linear + LayerNorm + tanh trunk, one ReLU layer, tanh output in [-1, 1]^act_dim."""

    KIND = "rnd_actor"

    def __init__(self, obs_dim: int, act_dim: int, hidden: int = 256):
        super().__init__()
        self.obs_dim, self.act_dim, self.hidden = obs_dim, act_dim, hidden
        self.trunk = nn.Sequential(nn.Linear(obs_dim, hidden), nn.LayerNorm(hidden), nn.Tanh())
        self.head = mlp(hidden, (hidden,), act_dim, activation="relu")

    def spec(self) -> dict:
        return {"obs_dim": self.obs_dim, "act_dim": self.act_dim, "hidden": self.hidden}

    @classmethod
    def from_spec(cls, spec: dict, device=None) -> "RNDActor":
        return cls(spec["obs_dim"], spec["act_dim"], spec["hidden"]).to(device or "cpu")

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.head(self.trunk(obs)))


class Critic(nn.Module):
    """Twin Q heads of URLB's shape on [s, a]: Linear + LayerNorm + tanh trunk, one ReLU layer, a scalar."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: int):
        super().__init__()
        self.q = nn.ModuleList(
            nn.Sequential(nn.Linear(obs_dim + act_dim, hidden), nn.LayerNorm(hidden), nn.Tanh(),
                          *mlp(hidden, (hidden,), 1, activation="relu")) for _ in range(2))

    def forward(self, obs, actions) -> torch.Tensor:
        sa = torch.cat([obs, actions], -1)
        return torch.stack([q(sa).squeeze(-1) for q in self.q])          # (2, batch)


class RunningMeanStd(nn.Module):
    """Mean and variance over every row seen so far (Chan et al.'s parallel update), kept as buffers."""

    def __init__(self, shape=()):
        super().__init__()
        self.register_buffer("mean", torch.zeros(shape))
        self.register_buffer("var", torch.ones(shape))
        self.register_buffer("count", torch.tensor(1e-4))

    @torch.no_grad()
    def update(self, x: torch.Tensor) -> None:
        batch_mean, batch_var, n = x.mean(0), x.var(0, unbiased=False), x.shape[0]
        delta, total = batch_mean - self.mean, self.count + n
        self.mean += delta * n / total
        self.var.copy_((self.var * self.count + batch_var * n + delta ** 2 * self.count * n / total) / total)
        self.count.copy_(total)


class RNDAgent(nn.Module):
    """DDPG (twin critics, n-step targets) on the RND intrinsic reward; no task reward anywhere."""

    def __init__(self, obs_dim: int, act_dim: int, cfg: RNDConfig, generator: torch.Generator):
        super().__init__()
        self.cfg, self.generator = cfg, generator
        self.actor = RNDActor(obs_dim, act_dim, cfg.hidden)
        self.critic = Critic(obs_dim, act_dim, cfg.hidden)
        self.actor_target = RNDActor(obs_dim, act_dim, cfg.hidden)
        self.critic_target = Critic(obs_dim, act_dim, cfg.hidden)
        self.actor_target.load_state_dict(self.actor.state_dict())
        self.critic_target.load_state_dict(self.critic.state_dict())
        self.predictor = mlp(obs_dim, (cfg.rnd_hidden, cfg.rnd_hidden), cfg.rnd_out, activation="relu")
        self.target = mlp(obs_dim, (cfg.rnd_hidden, cfg.rnd_hidden), cfg.rnd_out, activation="relu")
        self.target.requires_grad_(False)
        self.obs_stats = RunningMeanStd((obs_dim,))
        self.error_stats = RunningMeanStd(())
        self.actor_opt = make_adam(self.actor.parameters(), cfg.lr)
        self.critic_opt = make_adam(self.critic.parameters(), cfg.lr)
        self.rnd_opt = make_adam(self.predictor.parameters(), cfg.lr)

    # ---- the intrinsic reward
    def prediction_error(self, obs: torch.Tensor) -> torch.Tensor:
        """e(s) = ||f_pred(s) - f_target(s)||^2 on observations normalised by the running statistics, clipped."""
        z = ((obs - self.obs_stats.mean) / (self.obs_stats.var.sqrt() + 1e-8)).clamp(-self.cfg.obs_clip,
                                                                                     self.cfg.obs_clip)
        return (self.predictor(z) - self.target(z)).pow(2).sum(-1)

    @torch.no_grad()
    def intrinsic_reward(self, obs: torch.Tensor) -> torch.Tensor:
        """r_int = e(s) / std(e), std a running estimate over the batches seen in training."""
        return self.prediction_error(obs) / (self.error_stats.var.sqrt() + 1e-8)

    def rnd_loss(self, next_obs: torch.Tensor) -> torch.Tensor:
        return self.prediction_error(next_obs).mean()

    # ---- DDPG
    def _noisy(self, actor: RNDActor, obs: torch.Tensor) -> torch.Tensor:
        eps = torch.randn(obs.shape[0], actor.act_dim, generator=self.generator, device=obs.device)
        return (actor(obs) + (self.cfg.noise * eps).clamp(-self.cfg.noise_clip, self.cfg.noise_clip)).clamp(-1, 1)

    def critic_loss(self, obs, actions, returns, bootstrap_obs) -> torch.Tensor:
        """``returns``: sum_{k<n} gamma^k r_int(s_{t+k+1}); ``bootstrap_obs``: s_{t+n}."""
        with torch.no_grad():
            q_next = self.critic_target(bootstrap_obs, self._noisy(self.actor_target, bootstrap_obs)).min(0).values
            y = returns + self.cfg.gamma ** self.cfg.n_step * q_next
        return (self.critic(obs, actions) - y).pow(2).sum(0).mean()

    def actor_loss(self, obs) -> torch.Tensor:
        return -self.critic(obs, self._noisy(self.actor, obs)).min(0).values.mean()

    def update(self, batch: dict) -> dict:
        """One update of RND's predictor, the twin critics (on the intrinsic n-step return), the actor, the
        targets. ``batch``: obs (B, d), actions (B, a), next_obs (B, n, d) = s_{t+1..t+n}."""
        cfg = self.cfg
        B, n, d = batch["next_obs"].shape
        flat_next = batch["next_obs"].reshape(B * n, d)
        self.obs_stats.update(flat_next[::n])                     # each sampled s_{t+1} once
        rnd_loss = self.rnd_loss(batch["next_obs"][:, 0])
        self.rnd_opt.zero_grad(set_to_none=True)
        rnd_loss.backward()
        self.rnd_opt.step()
        with torch.no_grad():
            error = self.prediction_error(flat_next).reshape(B, n)
            self.error_stats.update(error[:, 0])
            r_int = error / (self.error_stats.var.sqrt() + 1e-8)
            returns = (r_int * cfg.gamma ** torch.arange(n, device=r_int.device)).sum(1)
        critic_loss = self.critic_loss(batch["obs"], batch["actions"], returns, batch["next_obs"][:, -1])
        self.critic_opt.zero_grad(set_to_none=True)
        critic_loss.backward()
        self.critic_opt.step()
        actor_loss = self.actor_loss(batch["obs"])
        self.actor_opt.zero_grad(set_to_none=True)
        actor_loss.backward()
        self.actor_opt.step()
        with torch.no_grad():
            for net, target in ((self.actor, self.actor_target), (self.critic, self.critic_target)):
                torch._foreach_lerp_(list(target.parameters()), list(net.parameters()), cfg.tau)
        return {"rnd_loss": rnd_loss.detach(), "critic_loss": critic_loss.detach(), "actor_loss": actor_loss.detach(),
                "r_int": r_int[:, 0].mean()}

    @torch.no_grad()
    def sample_actions(self, obs: torch.Tensor, rng: np.random.Generator) -> np.ndarray:
        """The behaviour: clip(pi(s) + N(0, sigma^2), -1, 1), noise from ``rng`` (numpy, as the collector's)."""
        a = self.actor(obs[None])[0].numpy()
        return np.clip(a + self.cfg.noise * rng.standard_normal(a.shape), -1, 1).astype(np.float32)


# ------------------------------------------------------------------------------------------------- coverage
#: Cells of the coverage grid: torso height (the rootz slide joint, m from the starting pose; below -0.5 lies in the
#: lowest row), torso pitch (rad), forward velocity (m/s). The shipped RND runs logged their coverage on this grid.
COVERAGE_BINS = {"height": (-0.5, 2.0, 25), "pitch": (-math.pi, math.pi, 24), "velocity": (-12.0, 12.0, 24)}


class StateFeatures:
    """Torso height, torso pitch (wrapped to [-pi, pi]) and forward velocity of physics states (rows of
    ``physics.get_state()``, as the datasets store them), read from the root joints rootz, rooty and rootx; and the
    cells of the coverage grid over them (:data:`COVERAGE_BINS`)."""

    def __init__(self, domain: str):
        model = make_env(domain, "run", 0).physics.model
        self.z = model.jnt_qposadr[model.name2id("rootz", "joint")]
        self.pitch = model.jnt_qposadr[model.name2id("rooty", "joint")]
        self.vx = model.nq + model.jnt_dofadr[model.name2id("rootx", "joint")]

    def __call__(self, physics_states) -> dict[str, np.ndarray]:
        s = np.atleast_2d(np.asarray(physics_states, np.float64))
        return {"height": s[:, self.z], "pitch": (s[:, self.pitch] + np.pi) % (2 * np.pi) - np.pi,
                "velocity": s[:, self.vx]}

    def cells(self, physics_states) -> np.ndarray:
        """The distinct grid cells the states occupy, as integer ids."""
        f = self(physics_states)
        ids = np.zeros(len(f["height"]), np.int64)
        for name, (lo, hi, bins) in COVERAGE_BINS.items():
            ids = ids * bins + np.clip(((f[name] - lo) / (hi - lo) * bins).astype(np.int64), 0, bins - 1)
        return np.unique(ids)


# ------------------------------------------------------------------------------------------------- training
EPISODE_STEPS = 1000     # DMC's time limit: every episode has exactly this many transitions


def save_rnd_actor(actor: RNDActor, path, metadata: dict) -> Path:
    return save_module(actor, path, metadata)


def load_rnd_actor(path) -> tuple[RNDActor, dict]:
    """An RND actor snapshot on the CPU, in eval mode, and its metadata (weights_only: nothing is unpickled)."""
    actor = load_module(path, "rnd_actor", "cpu")
    return actor, actor.metadata


def sample_windows(buf: dict, size: int, n: int, batch: int, rng: np.random.Generator) -> dict:
    """A batch of n-step windows (s_t, a_t, s_{t+1..t+n}) from the first ``size`` transitions, each inside one
    episode (transition t is step ``t % EPISODE_STEPS`` of its episode)."""
    per_episode = EPISODE_STEPS - n + 1                     # window starts in a full episode
    full, partial = divmod(size, EPISODE_STEPS)
    u = rng.integers(full * per_episode + max(0, partial - n + 1), size=batch)
    t = (u // per_episode) * EPISODE_STEPS + u % per_episode   # the partial episode continues the count
    window = t[:, None] + np.arange(n)
    return {"obs": torch.from_numpy(buf["obs"][t]), "actions": torch.from_numpy(buf["act"][t]),
            "next_obs": torch.from_numpy(buf["next_obs"][window])}


def train_rnd(cfg: RNDConfig, out_dir, progress: bool = True) -> list[dict]:
    """Run the reward-free RND agent for ``cfg.total_steps`` environment steps, writing an actor snapshot and a
    coverage point every ``snapshot_every`` steps (and at step 0) to ``out_dir``, and a resumable checkpoint (at an
    episode end) every ``checkpoint_every``. Returns the snapshot log, also in ``out_dir/snapshots.json`` with the
    config and provenance.

    Episode k is seeded ``100_003 * seed + k``; episodes last 1000 steps (time limit only, so targets bootstrap
    through episode ends). The live reward of the domain's ``run`` task is logged, never trained on.
    """
    if cfg.checkpoint_every % EPISODE_STEPS:
        raise ValueError(f"checkpoint_every must be a multiple of {EPISODE_STEPS} (checkpoints fall on episode "
                         f"ends), got {cfg.checkpoint_every}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    generator = torch.Generator().manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    features = StateFeatures(cfg.domain)
    probe = make_env(cfg.domain, "run", 0)
    obs_dim = flat_observation(probe.reset().observation).shape[0]
    act_dim = probe.action_spec().shape[0]
    agent = RNDAgent(obs_dim, act_dim, cfg, generator)

    N = cfg.total_steps
    buf = {"obs": np.zeros((N, obs_dim), np.float32), "next_obs": np.zeros((N, obs_dim), np.float32),
           "act": np.zeros((N, act_dim), np.float32)}
    cells: set = set()
    state = {"step": 0, "returns": [], "log": [], "wall_s": 0.0, "updates": 0}
    ckpt_path = out_dir / "checkpoint.pt"
    # total_steps is left out: a finished run continues to a larger budget, as if it had never stopped
    identity = json.dumps({k: v for k, v in asdict(cfg).items() if k != "total_steps"}, sort_keys=True)
    if ckpt_path.exists():
        ckpt = read_checkpoint(ckpt_path, "run")
        if ckpt["config"] != identity:
            raise CheckpointError(f"{ckpt_path} belongs to another configuration; use another --out or delete it")
        agent.load_state_dict(ckpt["agent"])
        for name, opt in (("actor", agent.actor_opt), ("critic", agent.critic_opt), ("rnd", agent.rnd_opt)):
            opt.load_state_dict(ckpt["optimizers"][name])
        generator.set_state(ckpt["generator"])
        rng.bit_generator.state = json.loads(ckpt["numpy_rng"])
        state = json.loads(ckpt["state"])
        if state["step"] > N:
            raise ValueError(f"{out_dir} is already trained to {state['step']} steps, more than {N}")
        for key in buf:
            buf[key][:state["step"]] = ckpt[key].numpy()
        cells = set(ckpt["cells"].tolist())
    prov = provenance()
    started = time.time() - state["wall_s"]

    def snapshot(step):
        file = f"step_{step:07d}.pt"
        entry = {"step": step, "file": file, "coverage_cells": len(cells),
                 "run_return_recent": float(np.mean(state["returns"][-5:])) if state["returns"] else None,
                 "wall_s": round(time.time() - started, 1)}
        save_rnd_actor(agent.actor, out_dir / file, {"rnd_config": asdict(cfg), **entry})
        state["log"].append(entry)
        atomic_write_text(out_dir / "snapshots.json", json.dumps(
            {"config": asdict(cfg), "provenance": prov, "coverage_bins": COVERAGE_BINS, "snapshots": state["log"]},
            indent=1))

    def checkpoint(step):
        state["wall_s"] = time.time() - started
        save_checkpoint(ckpt_path, "run", config=identity, agent=agent.state_dict(), generator=generator.get_state(),
                        optimizers={"actor": agent.actor_opt.state_dict(), "critic": agent.critic_opt.state_dict(),
                                    "rnd": agent.rnd_opt.state_dict()},
                        numpy_rng=json.dumps(rng.bit_generator.state), state=json.dumps(state),
                        cells=torch.tensor(sorted(cells), dtype=torch.int64),
                        **{key: torch.from_numpy(buf[key][:step].copy()) for key in buf})

    if state["step"] == 0:
        snapshot(0)
    bar = tqdm(total=N, initial=state["step"], desc=f"RND {cfg.domain}", disable=not progress, mininterval=2)
    while state["step"] < N:
        env = make_env(cfg.domain, "run", 100_003 * cfg.seed + state["step"] // EPISODE_STEPS)
        ts = env.reset()
        obs, ret, physics = flat_observation(ts.observation), 0.0, [env.physics.get_state().copy()]
        while not ts.last() and state["step"] < N:
            step = state["step"]
            if step < cfg.random_steps:
                act = rng.uniform(-1, 1, act_dim).astype(np.float32)
            else:
                act = agent.sample_actions(torch.from_numpy(obs), rng)
            ts = env.step(act)
            buf["obs"][step], buf["act"][step] = obs, act
            obs = buf["next_obs"][step] = flat_observation(ts.observation)
            physics.append(env.physics.get_state().copy())
            ret += ts.reward
            state["step"] = step = step + 1
            if step >= max(cfg.random_steps, cfg.batch_size) and step % cfg.update_every == 0:
                agent.update(sample_windows(buf, step, cfg.n_step, cfg.batch_size, rng))
                state["updates"] += 1
            if step % cfg.snapshot_every == 0 or step == N:
                cells.update(features.cells(physics).tolist())
                snapshot(step)
            bar.update(1)
        cells.update(features.cells(physics).tolist())
        state["returns"].append(ret)
        bar.set_postfix(cells=len(cells), run_return=f"{ret:.0f}")
        if state["step"] % cfg.checkpoint_every == 0 or state["step"] == N:
            checkpoint(state["step"])
    bar.close()
    return state["log"]


def main(argv=None):
    import argparse

    from .cli import positive_int, user_errors
    from .envs import DOMAIN_TASKS

    p = argparse.ArgumentParser(prog="python -m cfgrl_core.rnd",
                                description="Train the reward-free RND agent on a DMC domain and save actor "
                                            "snapshots (for the rnd data recipe).")
    p.add_argument("--domain", required=True, choices=sorted(DOMAIN_TASKS))
    p.add_argument("--steps", type=positive_int, default=RNDConfig.total_steps)
    p.add_argument("--snapshot-every", type=positive_int, default=RNDConfig.snapshot_every)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=positive_int, default=1)
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    with user_errors(p):
        torch.set_num_threads(args.threads)
        cfg = RNDConfig(domain=args.domain, total_steps=args.steps, snapshot_every=args.snapshot_every,
                        seed=args.seed)
        for entry in train_rnd(cfg, args.out):
            print(entry)


if __name__ == "__main__":
    main()
