"""Reading, aggregating and plotting the runner's results files (``results.json`` per task and seed).

Every number is a mean over the *test* episodes of one seed; seeds are then aggregated as

    mean over seeds  ±  t_{0.975, n-1} · sd / sqrt(n)          (a 95% confidence interval over n seeds).

The headline CFGRL w and AWR T of each seed are the ones with the best *validation* return (separate episodes), so the
reported numbers are not the maximum over settings on the reported episodes. For comparison, :func:`aggregate` also
gives that optimistic protocol of the official code (max over settings on the test episodes).
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np

from .book import markdown_table
from .run import choose_on_validation

# two-sided 95% Student-t quantiles t_{0.975, df}
_T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
         15: 2.131, 20: 2.086, 30: 2.042}


def t_quantile_975(df: int) -> float:
    """t_{0.975, df} (looked up; the nearest smaller tabulated df is conservative; 1.96 beyond 30)."""
    if df < 1:
        return float("nan")
    if df > 30:
        return 1.96
    return _T975[max(k for k in _T975 if k <= df)]


def mean_ci(values) -> tuple[float, float]:
    """(mean, half-width of the 95% t-interval); half-width nan for a single value."""
    v = np.asarray(values, dtype=float)
    if v.size == 0:
        raise ValueError("mean_ci needs at least one value")
    if v.size == 1:
        return float(v[0]), float("nan")
    return float(v.mean()), t_quantile_975(v.size - 1) * float(v.std(ddof=1)) / math.sqrt(v.size)


def load_results(root, kind: str = "results") -> dict[str, list[dict]]:
    """{task: [one dict per seed, ordered by seed]} from ``root/<task>/seed<k>/<kind>.json`` (the runner's layout) or
    ``root/<task>/seed<k>.json`` (``seed<k>.<kind>.json`` for other kinds: the committed layout). ``kind`` is
    ``results`` or ``ablation`` (see :mod:`cfgrl_core.ablation`)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"results folder {root} does not exist")
    flat = re.compile(r"seed\d+\.json" if kind == "results" else rf"seed\d+\.{kind}\.json")
    found: dict[str, list[dict]] = {}
    for task_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        files = sorted(task_dir.glob(f"seed*/{kind}.json")) + sorted(
            f for f in task_dir.glob("seed*.json") if flat.fullmatch(f.name))
        runs = []
        for f in files:
            try:
                runs.append(json.loads(f.read_text()))
            except json.JSONDecodeError as e:
                raise ValueError(f"results file {f} is not valid JSON ({e})") from e
        if runs:
            found[task_dir.name] = sorted(runs, key=lambda r: r["seed"])
    if not found:
        raise FileNotFoundError(f"no {kind}.json files under {root}")
    return found


def _per_seed_means(runs, key) -> dict[str, np.ndarray]:
    settings = list(runs[0][key])
    return {s: np.array([np.mean(r[key][s]) for r in runs]) for s in settings}


def aggregate(runs: list[dict]) -> dict:
    """Summary of one task's seeds: per-setting mean ± CI for CFGRL (per w) and AWR (per T), flow BC, the
    validation-chosen headline of each method, and the optimistic max-over-settings-on-test numbers."""
    out = {"seeds": [r["seed"] for r in runs]}
    for method in ("cfgrl", "awr"):
        test = _per_seed_means(runs, f"{method}_test")
        out[method] = {s: mean_ci(v) for s, v in test.items()}
        # headline: per seed, the setting with the best validation mean, scored on test
        chosen = [choose_on_validation(r[f"{method}_val"]) for r in runs]
        out[f"{method}_chosen"] = chosen
        out[f"{method}_headline"] = mean_ci([np.mean(r[f"{method}_test"][s]) for r, s in zip(runs, chosen)])
        out[f"{method}_max_on_test"] = mean_ci([max(np.mean(v) for v in r[f"{method}_test"].values()) for r in runs])
    out["flow_bc"] = out["cfgrl"]["0"]
    out["positive_fraction"] = mean_ci([r["positive_fraction"] for r in runs])
    out["train_wall_s"] = mean_ci([r["train_wall_s"] for r in runs])
    out["eval_wall_s"] = mean_ci([r["eval_wall_s"] for r in runs])
    return out


def fmt(mean_and_ci, digits: int = 0) -> str:
    m, h = mean_and_ci
    return f"{m:.{digits}f}" if not np.isfinite(h) else f"{m:.{digits}f} ± {h:.{digits}f}"


def results_table(results: dict[str, list[dict]], paper: dict | None = None) -> str:
    """A Markdown table in the form of the paper's Table 1 (AWR vs CFGRL with the same critic), plus flow BC and the
    optimistic protocol. ``paper`` maps task -> (AWR, CFGRL) numbers to print beside ours."""
    header = ["task", "seeds", "flow BC (w=0)", "AWR (T chosen on val)", "CFGRL (w chosen on val)",
              "AWR / CFGRL, max on test", "paper AWR / CFGRL"]
    rows = []
    for task, runs in results.items():
        a = aggregate(runs)
        p = (paper or {}).get(task)
        rows.append([task, len(runs), fmt(a["flow_bc"]), f"{fmt(a['awr_headline'])} (T={','.join(a['awr_chosen'])})",
                     f"{fmt(a['cfgrl_headline'])} (w={','.join(a['cfgrl_chosen'])})",
                     f"{fmt(a['awr_max_on_test'])} / {fmt(a['cfgrl_max_on_test'])}", "%s / %s" % p if p else "—"])
    return markdown_table(header, rows)


def sweep_table(results: dict[str, list[dict]]) -> str:
    """Markdown: test return (mean ± 95% CI over seeds) at every w and every T, one row per setting and one column
    per task, so that the table stays narrow however many settings were run (— where a task lacks a setting)."""
    summaries = {task: aggregate(runs) for task, runs in results.items()}
    settings = list(dict.fromkeys((method, key) for method in ("cfgrl", "awr")
                                  for a in summaries.values() for key in a[method]))
    label = {"cfgrl": "CFGRL w", "awr": "AWR T"}
    header = ["test return"] + [f"{task} ({len(runs)} seeds)" for task, runs in results.items()]
    return markdown_table(header, [[f"{label[method]}={key}"]
                                   + [fmt(a[method][key]) if key in a[method] else "—" for a in summaries.values()]
                                   for method, key in settings])


def plot_sweeps(results: dict[str, list[dict]], fig=None):
    """One row per task: CFGRL's test return against w (mean and 95% band over seeds, thin lines per seed, flow BC
    dashed) and, beside it on the same y-axis, AWR's against T. Bands are clipped to [0, 1000]."""
    import matplotlib.pyplot as plt

    tasks = list(results)
    if fig is None:
        fig = plt.figure(figsize=(10, 3.4 * len(tasks)), layout="constrained")
    axes = fig.subplots(len(tasks), 2, squeeze=False, sharey="row", width_ratios=[1.6, 1])
    for row, task in zip(axes, tasks):
        runs, a = results[task], aggregate(results[task])
        for ax, method, label, color in ((row[0], "cfgrl", "guidance weight w", "C0"),
                                         (row[1], "awr", "AWR temperature T = 1/β", "C1")):
            keys = list(a[method])
            x = np.arange(len(keys))
            for r in runs:
                ax.plot(x, [np.mean(r[f"{method}_test"][k]) for k in keys], color=color, alpha=0.25, lw=1)
            m = np.array([a[method][k][0] for k in keys])
            h = np.nan_to_num(np.array([a[method][k][1] for k in keys]))
            # the band is clipped to the possible range of a DMC return, [0, 1000]
            ax.fill_between(x, np.clip(m - h, 0, 1000), np.clip(m + h, 0, 1000), color=color, alpha=0.2, lw=0)
            ax.plot(x, m, "o-", color=color, lw=2, label="CFGRL" if method == "cfgrl" else "AWR")
            ax.axhline(a["flow_bc"][0], color="0.4", ls="--", lw=1, label="flow BC (w = 0)")
            ax.set_xticks(x, keys)
            ax.set_xlabel(label)
            ax.grid(alpha=0.3)
            ax.legend(loc="lower right", fontsize=8)
        row[0].set_ylabel(f"{task}\ntest return")
        row[0].set_title(f"{task}: CFGRL, one network, w chosen at test time", fontsize=10)
        row[1].set_title(f"{task}: AWR, one network per T", fontsize=10)
    return fig


def plot_curves(results: dict[str, list[dict]], fig=None):
    """Training curves logged by the runner: IQL losses, then the CFGRL and AWR actor losses (seed 0 of each task)."""
    import matplotlib.pyplot as plt

    tasks = list(results)
    if fig is None:
        fig = plt.figure(figsize=(10, 2.8 * len(tasks)), layout="constrained")
    axes = fig.subplots(len(tasks), 3, squeeze=False)
    for row, task in zip(axes, tasks):
        for r in results[task]:
            curves = r["curves"]   # the frozen schedule logs "critic" then "actors"; the joint one logs "joint"
            critic, actors = curves.get("critic") or curves["joint"], curves.get("actors") or curves["joint"]
            style = dict(alpha=0.8, lw=1)
            row[0].plot([c["step"] for c in critic], [c["q_loss"] for c in critic], color="C3", **style)
            row[0].plot([c["step"] for c in critic], [c["v_loss"] for c in critic], color="C2", **style)
            row[1].plot([c["step"] for c in actors], [c["cfgrl_loss"] for c in actors], color="C0", **style)
            for i, key in enumerate(k for k in actors[0] if k.startswith("awr_") and k.endswith("_loss")):
                row[2].plot([c["step"] for c in actors], [c[key] for c in actors], color=f"C{i + 4}",
                            label=key.removeprefix("awr_").removesuffix("_loss") if r is results[task][0] else None,
                            **style)
        row[0].set(title=f"{task}: IQL critic (red Q, green V)", yscale="log", xlabel="critic step")
        row[1].set(title="CFGRL flow loss", xlabel="actor step")
        row[2].set(title="AWR weighted NLL per T", xlabel="actor step")
        row[2].legend(fontsize=7)
        for ax in row:
            ax.grid(alpha=0.3)
    return fig


def ablation_table(results: dict[str, list[dict]], ablations: dict[str, list[dict]]) -> str:
    """Markdown: test return (mean ± 95% CI over seeds) of CFGRL sampled vs integrated from x_0 = 0 at every w, and
    of AWR's mean action vs samples at every T — the same networks and test episodes (:mod:`cfgrl_core.ablation`).
    One row per setting and one column per way of evaluating, so that the tables stay narrow."""
    lines = []
    for task, runs in results.items():
        abl = {a["seed"]: a for a in ablations.get(task, [])}
        runs = [r for r in runs if r["seed"] in abl]
        if not runs:
            continue
        ws, Ts = list(runs[0]["cfgrl_test"]), list(runs[0]["awr_test"])

        def table(method, symbol, keys, columns):
            # columns: {title: values_of(run, setting)}
            rows = [[f"{symbol}={k}"] + [fmt(mean_ci([np.mean(values_of(r, k)) for r in runs]))
                                         for values_of in columns.values()] for k in keys]
            return markdown_table([method, *columns], rows).split("\n")

        lines += [f"**{task}** ({len(runs)} seeds)", ""]
        lines += table("CFGRL", "w", ws, {
            "sampled, x₀ ~ N(0, I) (as reported)": lambda r, k: r["cfgrl_test"][k],
            "deterministic, x₀ = 0": lambda r, k: abl[r["seed"]]["cfgrl_deterministic_test"][k]})
        lines += [""] + table("AWR", "T", Ts, {
            "mean action (as reported)": lambda r, k: r["awr_test"][k],
            "sampled from the Gaussian": lambda r, k: abl[r["seed"]]["awr_sampled_test"][k]}) + [""]
    return "\n".join(lines)


# ------------------------------------------------------------------------------ chapter 4's investigation
INVESTIGATION = Path(__file__).parent / "assets" / "results" / "investigation"
#: the same protocol on the ``rnd`` exploration data (chapter 4, "On exploration data"), kept apart from the above
INVESTIGATION_RND = INVESTIGATION.parent / "investigation_rnd"


def load_investigation(kind: str, root=INVESTIGATION) -> dict[str, dict]:
    """The committed files of chapter 4's investigation, ``{"<task>/<file stem>": dict}``: ``kind`` is
    ``convergence`` or ``labels`` (:mod:`cfgrl_core.critic_convergence`) or ``extraction``
    (:mod:`cfgrl_core.extraction`)."""
    return {f"{f.parent.name}/{f.stem}": json.loads(f.read_text())
            for f in sorted(Path(root).glob(f"*/{kind}_*.json"))}


def plot_convergence(runs: dict[str, dict], fig=None):
    """Per task, a critic trained long: mean V, TD RMSE beside A's 10-90% spread, the share of labels flipped since the
    previous measurement, and the o = 1 rate of each behaviour group."""
    import matplotlib.pyplot as plt

    if fig is None:
        fig = plt.figure(figsize=(11, 2.9 * len(runs)), layout="constrained")
    axes = fig.subplots(len(runs), 4, squeeze=False)
    for row, (name, r) in zip(axes, runs.items()):
        c = r["curve"]
        steps = np.array([p["step"] for p in c]) / 1000
        row[0].plot(steps, [p["v_mean"] for p in c], "o-", ms=3)
        row[0].set(title=f"{r['task']} (expectile {r['expectile']:g}): mean V", xlabel="critic steps (k)")
        row[1].plot(steps, [p["td_rmse"] for p in c], "o-", ms=3, color="C3", label="TD RMSE")
        spread = np.array([p["advantage_q10_q90"] for p in c])
        row[1].plot(steps, spread[:, 1] - spread[:, 0], "o-", ms=3, color="C2", label="A: q90 - q10")
        row[1].set(title="critic noise vs advantage spread", xlabel="critic steps (k)")
        row[1].legend(fontsize=7)
        flips = [(s, p["flipped_fraction"]) for s, p in zip(steps, c) if p["flipped_fraction"] is not None]
        row[2].plot(*zip(*flips), "o-", ms=3, color="C4")
        row[2].set(title=f"labels flipped per {r['every'] // 1000}k steps", xlabel="critic steps (k)", ylim=(0, None))
        for g in c[0]["positive_by_group"]:
            row[3].plot(steps, [p["positive_by_group"][g] for p in c], "o-", ms=3, label=g)
        row[3].set(title="o = 1 rate by behaviour", xlabel="critic steps (k)", ylim=(0, 1))
        row[3].legend(fontsize=7)
        for ax in row:
            ax.grid(alpha=0.3)
    return fig


def extraction_table(r: dict) -> str:
    """Markdown: every actor and evaluation of one extraction file, its validation-chosen w, the test return of that
    choice (mean ± sd over episodes) and the best test return over w (the optimistic protocol)."""
    rows = []
    for key, s in r["summary"].items():
        actor, mode = key.split(" | ")
        rows.append([actor, mode, s["chosen"], f"{s['test_mean']:.0f} ± {s['test_std']:.0f}",
                     f"{s['best_test_mean']:.0f}"])
    return markdown_table(["actor", "evaluation", "w (validation)", "test return", "best w on test"], rows)


def labels_table(r: dict, last: int = 4) -> str:
    """Markdown: over the last ``last`` saved critics of one run, three labellings (one critic, A averaged over a window
    of checkpoints, the data's return to go against V) — the share of labels flipped between saved critics, the o = 1
    rate of the high- and low-return thirds and of random actions, and the correlation of episodes' o = 1 rate with
    their return (Spearman)."""
    names = {"single": "one critic", "averaged": f"A averaged over {r['window']} critics",
             "returns": "G_t ≥ V (return to go)"}
    rows = []
    for kind, label in names.items():
        for row in r["rows"][-last:]:
            d = row[kind]
            flipped = "–" if d["flipped_fraction"] is None else f"{d['flipped_fraction']:.0%}"
            rate = [d["positive_by_group"].get(g) for g in ("high third", "low third", "random actions")]
            rows.append([label, f"{row['step'] / 1000:g}k", flipped,
                         *("–" if x is None else f"{x:.0%}" for x in rate), f"{d['label_return_spearman']:+.2f}"])
    return markdown_table(["labels", "critic", "flipped", "o = 1: high third", "low third", "random",
                           "ρ(o = 1, return)"], rows)


def publish_investigation(task: str, critic_run, extraction_runs=(), dest=INVESTIGATION) -> list[Path]:
    """Copy one task's investigation files from the ignored run folders into the committed layout
    ``<dest>/<task>/``: ``convergence_<expectile>_<seed>.json`` and ``labels_...`` from a
    :func:`~cfgrl_core.critic_convergence.converge` run folder, ``extraction_<critic>_<seed>_<steps>.json`` from each
    :func:`~cfgrl_core.extraction.extract` run folder. Returns the written paths."""
    from .checkpoint import atomic_write_text

    critic_run = Path(critic_run)
    out = Path(dest) / task
    out.mkdir(parents=True, exist_ok=True)
    tag = f"{critic_run.parent.name}_{critic_run.name}"          # expectile0.9_seed0
    written = []
    for kind in ("convergence", "labels"):
        f = critic_run / f"{kind}.json"
        if f.exists():
            written.append(out / f"{kind}_{tag}.json")
            atomic_write_text(written[-1], f.read_text())
    for run in map(Path, extraction_runs):
        for f in sorted(run.glob("extraction_*.json")):
            written.append(out / f"extraction_{run.parent.name}_{run.name}_{f.stem.removeprefix('extraction_')}.json")
            atomic_write_text(written[-1], f.read_text())
    return written


def critic_settled(curve: list[dict], v_tol: float = 0.02, td_tol: float = 0.05, span: int = 10_000):
    """H1 of chapter 4: the first measured step after which mean V moves by less than ``v_tol`` (relative) and the TD
    RMSE by less than ``td_tol`` per ``span`` steps, at every later pair of measurements ``span`` apart; None if the
    curve never settles. Also the largest label-flip fraction measured after that step."""
    steps = [p["step"] for p in curve]
    by_step = {p["step"]: p for p in curve}

    def calm(p, q):
        return (abs(q["v_mean"] - p["v_mean"]) <= v_tol * abs(p["v_mean"])
                and abs(q["td_rmse"] - p["td_rmse"]) <= td_tol * p["td_rmse"])

    pairs = [(s, s + span) for s in steps if s + span in by_step]
    for i, (start, _) in enumerate(pairs):
        if all(calm(by_step[a], by_step[b]) for a, b in pairs[i:]):
            flips = [p["flipped_fraction"] for p in curve if p["step"] > start and p["flipped_fraction"] is not None]
            return {"step": start, "max_flipped_after": max(flips) if flips else None}
    return {"step": None, "max_flipped_after": None}


def test_returns(r: dict, key: str, w: str | None = None) -> np.ndarray:
    """Test-episode returns of one row (``"<actor> | <evaluation>"``) of an extraction file, at its validation-chosen
    setting or at ``w``."""
    actor, mode = key.split(" | ")
    return np.asarray(r["returns"][actor][mode]["test"][w or r["summary"][key]["chosen"]], float)


def awr_mean_rows(r: dict) -> list[str]:
    """An extraction file's AWR rows evaluated by their mean action: ``["awr_T1 | mean", ...]``."""
    return [k for k in r["summary"] if k.startswith("awr_") and k.endswith(" | mean")]


def best_awr(r: dict) -> str:
    """The AWR row (``"awr_T<T> | mean"``, the mean action) whose mean validation return is highest: the temperature
    chapter 4's tables report for an extraction file."""
    keys = awr_mean_rows(r)
    if not keys:
        raise ValueError("this extraction file has no AWR rows evaluated by their mean action")
    return max(keys, key=lambda k: np.mean(r["returns"][k.split(" | ")[0]]["mean"]["val"]["-"]))


def _two_se(diff: float, se: float) -> str:
    return "not separated" if abs(diff) <= 2 * se else ("above" if diff > 0 else "below")


def separated(a, b) -> dict:
    """Chapter 4's decision rule for two sets of test returns: the difference of means, its standard error
    sqrt(s_a^2 / n_a + s_b^2 / n_b), and the verdict ``"above"``/``"below"`` when |diff| > 2 SE, else ``"not separated"``."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    diff = float(a.mean() - b.mean())
    se = float(math.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b)))
    return {"diff": diff, "se": se, "verdict": _two_se(diff, se)}


def compare_gaps(cfgrl_a, awr_a, cfgrl_b, awr_b) -> dict:
    """Two recipes A and B, each given as CFGRL's and the best AWR's test returns. By the 2-SE rule of
    :func:`separated`: ``"cfgrl"`` (A − B), ``"awr"`` (A − B), each recipe's gap CFGRL − AWR (``"gap_a"``,
    ``"gap_b"``), and ``"gap_change"``: gap A − gap B, with SE sqrt(SE_A² + SE_B²)."""
    gaps = {k: separated(c, a) for k, c, a in (("a", cfgrl_a, awr_a), ("b", cfgrl_b, awr_b))}
    change = gaps["a"]["diff"] - gaps["b"]["diff"]
    se = math.sqrt(gaps["a"]["se"] ** 2 + gaps["b"]["se"] ** 2)
    return {"cfgrl": separated(cfgrl_a, cfgrl_b), "awr": separated(awr_a, awr_b),
            "gap_a": gaps["a"], "gap_b": gaps["b"],
            "gap_change": {"diff": change, "se": se, "verdict": _two_se(change, se)}}


def schedule_comparison(joint: dict, frozen: dict) -> dict:
    """Chapter 4's H10: a runner results file trained with the ``joint`` schedule against an extraction file trained
    for the same steps on a frozen critic (same task, seed, data and w values).

    Each side's CFGRL is the sampled flow at its validation-chosen w; each side's best AWR is the mean action at the
    validation-chosen T among the frozen file's temperatures (the joint run may train more; they are shown, not
    chosen). The two sides may have different numbers of test episodes (the runner's ``book20k`` preset: 10, the
    extraction files: 20); :func:`separated` does not pair them. Returns the chosen settings and, by the 2-SE rule:
    ``"cfgrl"`` (H10a, joint − frozen), ``"awr"`` (H10b), each schedule's gap CFGRL − best AWR, and ``"gap_change"``
    (H10c): joint gap − frozen gap, with SE sqrt(SE_joint² + SE_frozen²)."""
    if (joint["task"], joint["seed"]) != (frozen["task"], frozen["seed"]):
        raise ValueError(f"schedule_comparison needs one task and seed, got {joint['task']} seed {joint['seed']} "
                         f"and {frozen['task']} seed {frozen['seed']}")
    frozen_ws = set(frozen["returns"]["flow_binary"]["sample"]["val"])
    if set(joint["cfgrl_val"]) != frozen_ws:
        raise ValueError(f"the joint run's w values {sorted(joint['cfgrl_val'], key=float)} differ from the "
                         f"frozen file's {sorted(frozen_ws, key=float)}")
    temperatures = [k.split(" | ")[0].removeprefix("awr_T") for k in awr_mean_rows(frozen)]
    allowed = {T: v for T, v in joint["awr_val"].items() if T in temperatures}
    if set(allowed) != set(temperatures):
        raise ValueError(f"the joint run lacks AWR temperatures of the frozen file: {sorted(temperatures)}")
    joint_T = choose_on_validation(allowed)
    joint_w = choose_on_validation(joint["cfgrl_val"])
    cfgrl = {"joint": joint["cfgrl_test"][joint_w], "frozen": test_returns(frozen, "flow_binary | sample")}
    frozen_awr = best_awr(frozen)
    awr = {"joint": joint["awr_test"][joint_T], "frozen": test_returns(frozen, frozen_awr)}
    c = compare_gaps(cfgrl["joint"], awr["joint"], cfgrl["frozen"], awr["frozen"])
    return {"joint_w": joint_w, "joint_T": joint_T, "frozen_w": frozen["summary"]["flow_binary | sample"]["chosen"],
            "frozen_T": frozen_awr.split(" | ")[0].removeprefix("awr_T"),
            "cfgrl": c["cfgrl"], "awr": c["awr"], "joint_gap": c["gap_a"], "frozen_gap": c["gap_b"],
            "gap_change": c["gap_change"],
            "means": {f"{k} {s}": float(np.mean(v[s])) for k, v in (("cfgrl", cfgrl), ("awr", awr))
                      for s in ("joint", "frozen")}}


def over_seeds(diffs, min_seeds: int = 3) -> dict:
    """Chapter 4's rule with the seed as the unit of evidence: per-seed differences A − B (each a difference of mean
    test returns) give their mean, the half-width of its 95% Student-t interval (n − 1 degrees of freedom) and the
    verdict ``"ahead"`` (the interval lies above 0), ``"behind"`` (below) or ``"not separated"``; with fewer than
    ``min_seeds`` seeds the verdict is ``"too few seeds"`` (the interval is still given where n ≥ 2)."""
    d = np.asarray(diffs, float)
    if d.size == 0 or not np.all(np.isfinite(d)):
        raise ValueError(f"over_seeds needs finite per-seed differences, got {d.tolist()}")
    mean, half = mean_ci(d)
    if d.size < max(2, min_seeds):
        verdict = "too few seeds"
    elif mean - half > 0:
        verdict = "ahead"
    elif mean + half < 0:
        verdict = "behind"
    else:
        verdict = "not separated"
    return {"mean": mean, "half_width": half, "n": int(d.size), "verdict": verdict}


def _means_and_ses(returns) -> tuple[list, list]:
    """Means and standard errors (±1 SE over episodes) of several sets of test returns, for error bars."""
    return [x.mean() for x in returns], [x.std(ddof=1) / math.sqrt(len(x)) for x in returns]


def plot_budget(files: dict[str, list[dict]], keys=("flow_binary | sample", "flow_exp_T3 | sample",
                                                     "awr_T1 | mean", "awr_T3 | mean", "awr_T10 | mean",
                                                     "gauss_bc | mean", "gauss_binary | mean"), fig=None):
    """Per task, test return (validation-chosen setting; bars: ±1 SE over episodes) against actor steps, from the
    extraction files of one run continued to several budgets."""
    import matplotlib.pyplot as plt

    if fig is None:
        fig = plt.figure(figsize=(5.2 * len(files), 3.6), layout="constrained")
    axes = fig.subplots(1, len(files), squeeze=False)[0]
    for ax, (task, runs) in zip(axes, files.items()):
        runs = sorted(runs, key=lambda r: r["steps"])
        steps = [r["steps"] / 1000 for r in runs]
        for i, key in enumerate(k for k in keys if k in runs[0]["summary"]):
            ax.errorbar(steps, *_means_and_ses([test_returns(r, key) for r in runs]),
                        fmt="o-" if key.startswith("flow") else "s--", ms=4, capsize=2, label=key, color=f"C{i}")
        ax.set(title=task, xlabel="actor steps (k)", ylabel="test return", xscale="log")
        ax.set_xticks(steps, [f"{s:g}" for s in steps])
        ax.minorticks_off()
        ax.grid(alpha=0.3)
    axes[-1].legend(fontsize=7, loc="best")
    return fig


def plot_budget_sweeps(files: dict[str, list[dict]], ws=("0", "1", "1.5", "3", "10", "30"),
                       gaussians=("awr_T1 | mean", "awr_T3 | mean", "awr_T10 | mean", "gauss_bc | mean"), fig=None):
    """Per task, two panels against actor steps (one run continued to several budgets): the CFGRL flow sampled at each
    ``w`` (its whole sweep, not one chosen setting) and the Gaussians by their mean action (AWR at each T, Gaussian
    BC). Points are mean test returns; bars ±1 SE over test episodes."""
    import matplotlib.pyplot as plt

    if fig is None:
        fig = plt.figure(figsize=(10.4, 3.4 * len(files)), layout="constrained")
    axes = fig.subplots(len(files), 2, squeeze=False)
    cmap = plt.get_cmap("viridis")
    for (left, right), (task, runs) in zip(axes, files.items()):
        runs = sorted(runs, key=lambda r: r["steps"])
        steps = [r["steps"] / 1000 for r in runs]
        swept = runs[0]["returns"]["flow_binary"]["sample"]["test"]
        ws_here = [w for w in ws if w in swept] or list(swept)      # smoke runs sweep fewer w
        for i, w in enumerate(ws_here):
            left.errorbar(steps, *_means_and_ses([test_returns(r, "flow_binary | sample", w) for r in runs]),
                          fmt="o-", ms=4, capsize=2, color=cmap(i / max(1, len(ws_here) - 1)), label=f"w = {w}")
        for i, key in enumerate(k for k in gaussians if k in runs[0]["summary"]):
            right.errorbar(steps, *_means_and_ses([test_returns(r, key, "-") for r in runs]),
                           fmt="s--", ms=4, capsize=2, color=f"C{i}", label=key.removesuffix(" | mean"))
        for ax, what in ((left, "CFGRL flow, sampled, per w"), (right, "Gaussians, mean action")):
            ax.set(title=f"{task}: {what}", xlabel="actor steps (k)", ylabel="test return", xscale="log")
            ax.set_xticks(steps, [f"{s:g}" for s in steps])
            ax.minorticks_off()
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7, loc="best")
    return fig


def w_sweep_over_seeds(files: dict[int, dict], key: str = "flow_binary | sample") -> dict[str, list[float]]:
    """``{w: [mean test return at w on each seed]}`` of one flow row over seeds' extraction files (the whole sweep,
    not the validation-chosen ``w``); only the ``w`` every file evaluated."""
    actor, mode = key.split(" | ")
    sweeps = [r["returns"][actor][mode]["test"] for r in files.values()]
    return {w: [float(np.mean(s[w])) for s in sweeps] for w in sweeps[0] if all(w in s for s in sweeps)}


def _mean_and_se_over_seeds(values) -> tuple[float, float]:
    """Mean and ±1 SE over seeds of per-seed values (SE 0 for a single seed)."""
    v = np.asarray(values, float)
    return float(v.mean()), float(v.std(ddof=1) / math.sqrt(v.size)) if v.size > 1 else 0.0


def plot_recipes(sweeps: dict[str, dict[str, dict[str, list[float]]]], levels: dict[str, dict[str, list[float]]],
                 fig=None):
    """Per task, the CFGRL flow's test return against ``w`` for each dataset recipe: ``sweeps[task][recipe]`` is
    :func:`w_sweep_over_seeds`'s output, ``levels[task][recipe]`` one reference row's per-seed returns (drawn as a
    dashed level, the same colour). Points are means over seeds; bars and bands ±1 SE over seeds."""
    import matplotlib.pyplot as plt

    if fig is None:
        fig = plt.figure(figsize=(5.2 * len(sweeps), 3.6), layout="constrained")
    axes = fig.subplots(1, len(sweeps), squeeze=False)[0]
    for ax, (task, per_recipe) in zip(axes, sweeps.items()):
        for i, (recipe, sweep) in enumerate(per_recipe.items()):
            ws = list(sweep)
            x = np.arange(len(ws))
            m, se = zip(*(_mean_and_se_over_seeds(v) for v in sweep.values()))
            ax.errorbar(x, m, se, fmt="o-", ms=4, capsize=2, color=f"C{i}", label=f"CFGRL, {recipe}")
            lm, lse = _mean_and_se_over_seeds(levels[task][recipe])
            ax.axhline(lm, ls="--", color=f"C{i}", label=f"best AWR (mean), {recipe}")
            ax.axhspan(lm - lse, lm + lse, color=f"C{i}", alpha=0.12, lw=0)
            ax.set_xticks(x, ws)
        ax.set(title=task, xlabel="guidance weight w", ylabel="test return (mean over seeds)")
        ax.grid(alpha=0.3)
    axes[-1].legend(fontsize=7, loc="best")
    return fig
