"""Training-step throughput of the runner's own steps, with the achieved GFLOP/s beside this machine's matmul peak.

Times exactly what ``python -m cfgrl_core.run`` executes per step, built by the runner's own functions from its
presets (``build_agents``, ``resolve_config``):

  * frozen schedule: the critic step (``IQLAgent.update``) and the actors step (``run.actors_step``: one CFGRL
    actor and one AWR actor per temperature on the same batch and advantages);
  * joint schedule: ``run.joint_step`` (critic and all actors every step).

FLOPs per step are counted by ``torch.utils.flop_counter.FlopCounterMode`` (matrix multiplies, forward and backward);
the peak is the best of a few float32 2048 x 2048 matmuls on the same threads, measured in the same run. Each step is
timed eagerly and then with the presets' ``compile`` on (torch.compile of the agents' losses), side by side in this
process (alternating rounds, medians), with the compilation time. No ratio against another implementation is
printed: such a ratio needs both measured side by side (see the README).

    python benchmarks/update_speed.py [--presets book paper] [--steps 50] [--rounds 5] [--threads 2] [--device cpu]
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from cfgrl_core.networks import default_device
from cfgrl_core.run import PRESETS, actors_step, build_agents, joint_step, resolve_config


def random_batch(n, obs_dim, act_dim, device):
    g = torch.Generator().manual_seed(0)
    b = {"observations": torch.randn(n, obs_dim, generator=g), "actions": torch.rand(n, act_dim, generator=g) * 2 - 1,
         "rewards": torch.rand(n, generator=g), "next_observations": torch.randn(n, obs_dim, generator=g),
         "masks": torch.ones(n)}
    return {k: v.to(device) for k, v in b.items()}


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def matmul_peak_gflops(device, n=2048, repeats=5) -> float:
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    best = float("inf")
    for _ in range(repeats + 1):
        sync(device)
        t = time.perf_counter()
        a @ b
        sync(device)
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


def measure(step, device, steps, warmup=3, count_flops=True) -> tuple[float, float | None]:
    """(steps per second, GFLOP per step or None) of ``step()``."""
    for _ in range(warmup):
        step()
    if count_flops:
        with FlopCounterMode(display=False) as counter:
            step()
    sync(device)
    t = time.perf_counter()
    for _ in range(steps):
        step()
    sync(device)
    return steps / (time.perf_counter() - t), counter.get_total_flops() / 1e9 if count_flops else None


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--presets", nargs="+", default=["book", "paper"], help="runner presets to time")
    p.add_argument("--steps", type=int, default=50, help="steps per timed round")
    p.add_argument("--rounds", type=int, default=5, help="rounds, eager and compiled alternating; medians shown")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default=None)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    device = default_device(args.device)
    peak = matmul_peak_gflops(device)
    print(f"torch {torch.__version__}, device {device}, threads {torch.get_num_threads()}, walker sizes (obs 24, act 6)")
    print(f"matmul peak (float32 2048^2, best of 5): {peak:.1f} GFLOP/s")
    print(f"{'preset':7s} {'network':>8s} {'batch':>6s} {'step':>26s} {'steps/s':>8s} {'GFLOP/step':>11s} "
          f"{'GFLOP/s':>8s} {'of peak':>8s}")
    for preset in args.presets:
        for schedule in ("frozen", "joint"):
            steps_of = {"critic_steps": PRESETS[preset]["actor_steps"]} if schedule == "joint" else {}
            steps, compile_s = {}, {}
            for compile_ in (False, True):
                cfg = resolve_config({"preset": preset, "schedule": schedule, "compile": compile_, **steps_of})
                torch.manual_seed(0)
                critic, actors = build_agents(cfg, 24, 6, device, torch.Generator(device=device).manual_seed(0))
                batch = random_batch(cfg["batch_size"], 24, 6, device)
                width = f"{len(cfg['critic']['hidden_dims'])}x{cfg['critic']['hidden_dims'][0]}"
                named = {"frozen": {"critic (IQLAgent.update)": lambda c=critic, b=batch: c.update(b),
                                    f"actors (CFGRL + {len(actors) - 1} AWR)":
                                        lambda c=critic, a=actors, b=batch: actors_step(c, a, b)},
                         "joint": {f"joint (critic + {len(actors)} actors)":
                                   lambda c=critic, a=actors, b=batch: joint_step(c, a, b)}}[schedule]
                for name, step in named.items():
                    if compile_:
                        t = time.perf_counter()
                        step()             # the first call compiles
                        sync(device)
                        compile_s[name] = time.perf_counter() - t
                    steps[(name, compile_)] = step
            # eager and compiled alternate, so that a drift in the machine's speed hits both alike
            for name in compile_s:
                gflop = measure(steps[(name, False)], device, 1)[1]
                rates = {False: [], True: []}
                for _ in range(args.rounds):
                    for compile_ in (False, True):
                        rates[compile_].append(measure(steps[(name, compile_)], device, args.steps,
                                                       count_flops=False)[0])
                for compile_ in (False, True):
                    sps = statistics.median(rates[compile_])
                    mode = "eager" if not compile_ else (
                        f"compiled: {sps / statistics.median(rates[False]):.2f}x eager "
                        f"({compile_s[name]:.0f} s to compile)")
                    print(f"{preset:7s} {width:>8s} {cfg['batch_size']:6d} {name:>26s} {sps:8.2f} {gflop:11.3f} "
                          f"{sps * gflop:8.1f} {sps * gflop / peak:8.1%}  {mode}", flush=True)

if __name__ == "__main__":
    main()
