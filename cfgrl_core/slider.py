"""The guidance slider: watch pi_w(a|s) ∝ pi_hat(a|s) p(o=1|s,a)^w move as w changes (chapter 6).

:class:`GuidanceView` samples K actions of a trained flow policy in one state at guidance weight w and draws them:
pairs of action dimensions, per-dimension histograms, and the critic's Q-values of the samples against those of flow
BC (w = 0). The same noise x_0 is used at every w (common random numbers), so each sample moves continuously as the
slider moves instead of being redrawn at random.

Two front ends share it:
  * :func:`guidance_widget` — a live ipywidgets UI (core widgets only: works with ipywidgets 7.6+ and 8, in Jupyter,
    JupyterLab, VS Code and Colab); the figure is re-rendered to a PNG in an ``Image`` widget, so it never flickers.
  * :func:`static_player_html` — for a page with no kernel: the figure precomputed over a grid of w and a
    self-contained HTML/JS range input that swaps embedded images (no network request, no external script).
"""
from __future__ import annotations

import base64
import hashlib
import html
import io
import json
import math
import time

import numpy as np
import torch

from .flow import check_guidance_weight

class GuidanceView:
    """Samples of pi_w in one of a few states, drawn into one matplotlib figure that is updated in place.

    policy: a label-conditioned :class:`~cfgrl_core.policy.FlowPolicy`; critic: an
    :class:`~cfgrl_core.agents.iql.IQLAgent` (its ``q_values``);
    states: (N, obs_dim) observations to choose from. ``num_samples`` K and ``steps`` Euler steps per update.
    """

    def __init__(self, policy, critic, states, *, num_samples: int = 128, steps: int = 16, seed: int = 0,
                 action_names=None, pairs=None, dpi: int = 80):
        from matplotlib.figure import Figure

        self.policy, self.critic = policy, critic
        self.states = policy.check_obs(states).to(policy.device)
        if self.states.shape[0] < 1:
            raise ValueError("states must hold at least one observation")
        self.k, self.steps, self.seed = int(num_samples), int(steps), int(seed)
        d = policy.config.action_dim
        self.names = tuple(action_names) if action_names else tuple(f"a{i}" for i in range(d))
        if len(self.names) != d:
            raise ValueError(f"action_names has {len(self.names)} names for {d} action dimensions")
        self._bc_cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}

        # two scatter panels of action pairs (default: the two hip-knee pairs of a 6-D walker/cheetah action)
        self.pairs = [tuple(p) for p in (pairs or (((0, 1), (3, 4)) if d == 6 else ((0, min(1, d - 1)),) * 2))]
        if len(self.pairs) != 2 or any(not (0 <= i < d and 0 <= j < d) for i, j in self.pairs):
            raise ValueError(f"pairs must be two (i, j) pairs of action dimensions in 0..{d - 1}, got {pairs!r}")
        self.fig = Figure(figsize=(10.5, 5.2), dpi=dpi, layout="constrained")
        gs = self.fig.add_gridspec(2, 6, height_ratios=[1.35, 1])
        self.pair_axes = [self.fig.add_subplot(gs[0, 2 * j:2 * j + 2]) for j in range(2)]
        self.q_ax = self.fig.add_subplot(gs[0, 4:])
        self.hist_axes = [self.fig.add_subplot(gs[1, i]) for i in range(min(d, 6))]
        self.bins = np.linspace(-1, 1, 25)

        self.bc_scatter, self.w_scatter = [], []
        for ax, (i, j) in zip(self.pair_axes, self.pairs):
            self.bc_scatter.append(ax.scatter([], [], s=9, c="0.7", label="flow BC (w = 0)"))
            self.w_scatter.append(ax.scatter([], [], s=11, c="C0", alpha=0.85, label="π_w"))
            ax.set(xlim=(-1.05, 1.05), ylim=(-1.05, 1.05), xlabel=self.names[i], ylabel=self.names[j], aspect="equal")
            ax.grid(alpha=0.3)
        pair_legend = self.pair_axes[0].legend(loc="lower left", fontsize=7, markerscale=1.5)
        self.bc_hist, self.w_hist = [], []
        for ax, name in zip(self.hist_axes, self.names):
            self.bc_hist.append(ax.stairs(np.zeros(len(self.bins) - 1), self.bins, color="0.6", fill=True, alpha=0.5))
            self.w_hist.append(ax.stairs(np.zeros(len(self.bins) - 1), self.bins, color="C0", lw=1.5))
            ax.set(xlim=(-1, 1), yticks=[], title=name)
            ax.title.set_fontsize(8)
            ax.tick_params(labelsize=7)
        self.q_bc = self.q_ax.stairs(np.zeros(30), np.linspace(0, 1, 31), color="0.6", fill=True, alpha=0.6)
        self.q_w = self.q_ax.stairs(np.zeros(30), np.linspace(0, 1, 31), color="C0", lw=2)
        self.q_bc_mean = self.q_ax.axvline(0, color="0.4", lw=1, ls="--")
        self.q_w_mean = self.q_ax.axvline(0, color="C0", lw=1, ls="--")
        self.q_ax.set(xlabel="Q(s, a) of the samples (critic)", yticks=[])
        self.title = self.fig.suptitle("", fontsize=9)
        self.q_legend = None
        # what changes with w is drawn over a cached background (blitting): the samples, the histograms, the Q
        # marks and the texts. The background (axes, ticks, labels) depends only on the state, through the Q axis.
        self.dynamic = [*self.bc_scatter, *self.w_scatter, *self.bc_hist, *self.w_hist, self.q_bc, self.q_w,
                        self.q_bc_mean, self.q_w_mean, self.title, pair_legend]   # legends over the samples
        for artist in self.dynamic:
            artist.set_animated(True)
        self._layout_fixed = False
        self._background = None   # (state, pixels) of the last full render
        self._state = None

    # ------------------------------------------------------------------ sampling
    @torch.no_grad()
    def sample(self, state_index: int, w: float) -> tuple[np.ndarray, np.ndarray]:
        """K actions of pi_w in state ``state_index`` and their critic values min_i Qbar_i(s, a): ((K, d), (K,))."""
        if not 0 <= int(state_index) < self.states.shape[0]:
            raise ValueError(f"state_index must lie in 0..{self.states.shape[0] - 1}, got {state_index!r}")
        check_guidance_weight(w, 1, self.policy.device)
        s = self.states[int(state_index)].unsqueeze(0)
        a = self.policy.sample(s, 1, float(w), num_samples=self.k, steps=self.steps,
                               seed=self.seed + 7919 * int(state_index))[0]
        q = self.critic.q_values(s.expand(self.k, -1), a)
        return a.cpu().numpy(), q.cpu().numpy()

    def _bc(self, state_index: int):
        if state_index not in self._bc_cache:
            self._bc_cache[state_index] = self.sample(state_index, 0.0)
        return self._bc_cache[state_index]

    # ------------------------------------------------------------------ drawing
    def draw(self, state_index: int, w: float) -> dict:
        """Sample and update every artist in place; returns the summary numbers shown in the title."""
        bc_a, bc_q = self._bc(int(state_index))
        a, q = self.sample(int(state_index), w)
        for k, (i, j) in enumerate(self.pairs):
            self.bc_scatter[k].set_offsets(bc_a[:, [i, j]])
            self.w_scatter[k].set_offsets(a[:, [i, j]])
        for k, ax in enumerate(self.hist_axes):
            hb = np.histogram(bc_a[:, k], self.bins)[0] / self.k
            hw = np.histogram(a[:, k], self.bins)[0] / self.k
            self.bc_hist[k].set_data(hb)
            self.w_hist[k].set_data(hw)
            ax.set_ylim(0, 1.05 * max(hb.max(), hw.max(), 0.05))
        # Q histogram: bins fixed per state from flow BC's spread, so that a shift with w is visible
        lo, hi = float(bc_q.min()), float(bc_q.max())
        span = max(hi - lo, 1e-3)
        bins = np.linspace(lo - 0.6 * span, hi + 0.6 * span, 31)
        hb = np.histogram(bc_q, bins)[0] / self.k
        hw = np.histogram(np.clip(q, bins[0], bins[-1]), bins)[0] / self.k
        self.q_bc.set_data(hb, bins)
        self.q_w.set_data(hw, bins)
        self.q_bc_mean.set_xdata([bc_q.mean()] * 2)
        self.q_w_mean.set_xdata([q.mean()] * 2)
        self.q_bc.set_label(f"flow BC: mean {bc_q.mean():.2f}")
        self.q_w.set_label(f"w = {w:g}: mean {q.mean():.2f}")
        if self.q_legend is not None:
            self.q_legend.remove()
        self.q_legend = self.q_ax.legend(fontsize=7, loc="upper left")
        self.q_legend.set_animated(True)
        self.q_ax.set_ylim(0, 1.1 * max(hb.max(), hw.max()))   # no y ticks: the background does not change
        if self._state != int(state_index):                     # the Q axis's x ticks do: a new background
            self.q_ax.set_xlim(bins[0], bins[-1])
            self._state, self._background = int(state_index), None
        summary = {"w": float(w), "state": int(state_index), "mean_q": float(q.mean()), "bc_mean_q": float(bc_q.mean()),
                   "spread": float(a.std(0).mean()), "bc_spread": float(bc_a.std(0).mean())}
        self.title.set_text(f"state {int(state_index)}, w = {w:g}:  mean Q {summary['mean_q']:.2f} "
                            f"(flow BC {summary['bc_mean_q']:.2f}),  action spread {summary['spread']:.3f} "
                            f"(flow BC {summary['bc_spread']:.3f}),  K = {self.k}, {self.steps} Euler steps")
        return summary

    def png(self) -> bytes:
        """The figure as PNG. The first render of a state draws everything and keeps the background (axes, ticks,
        labels: they do not depend on w); later renders restore it and draw only what changed (blitting), then
        encode fast. The constrained layout is solved on the first render and then frozen."""
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from PIL import Image

        canvas = self.fig.canvas if isinstance(self.fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(self.fig)
        if self._background is None:
            canvas.draw()        # animated artists are left out: this is the background
            if not self._layout_fixed:
                self.fig.set_layout_engine("none")
                self._layout_fixed = True
                canvas.draw()
            self._background = canvas.copy_from_bbox(self.fig.bbox)
        else:
            canvas.restore_region(self._background)
        for artist in (*self.dynamic, self.q_legend):
            if artist is not None:
                self.fig.draw_artist(artist)
        buf = io.BytesIO()
        Image.fromarray(np.asarray(canvas.buffer_rgba())[..., :3]).save(buf, format="png", compress_level=1)
        return buf.getvalue()


def frame_png(frame: np.ndarray) -> bytes:
    """An (H, W, 3) uint8 image as PNG bytes."""
    import matplotlib.image

    buf = io.BytesIO()
    matplotlib.image.imsave(buf, np.ascontiguousarray(frame), format="png")
    return buf.getvalue()


def guidance_widget(view: GuidanceView, frames=None, w: float = 1.0, w_max: float = 10.0):
    """A live UI: a w slider (linear 0..w_max, or log scale 0.1..w_max), a state picker with the rendered frame of
    each state, and the view's figure redrawn on every change. Returns the top-level ``ipywidgets.VBox``; its
    ``.update(state, w)`` redraws programmatically and returns the summary, ``.last_latency_ms`` the last update's
    time (sampling + drawing)."""
    import ipywidgets as W

    if not (math.isfinite(w_max) and w_max > 0.1):
        raise ValueError(f"w_max must be a finite number > 0.1, got {w_max!r}")
    check_guidance_weight(w, 1, "cpu")
    n = view.states.shape[0]
    if frames is not None and len(frames) != n:
        raise ValueError(f"frames has {len(frames)} images for {n} states")
    frame_pngs = None if frames is None else [f if isinstance(f, bytes) else frame_png(f) for f in frames]
    lin = W.FloatSlider(value=min(w, w_max), min=0.0, max=w_max, step=0.1, description="w",
                        continuous_update=True, readout_format=".1f")
    log = W.FloatLogSlider(value=min(max(w, 0.1), w_max), base=10, min=-1, max=math.log10(w_max), step=0.02,
                           description="w (log)", continuous_update=True, readout_format=".2f")
    use_log = W.Checkbox(value=False, description="log scale")
    state = W.Dropdown(options=[(f"dataset state {i}", i) for i in range(n)], value=0, description="state")
    plot = W.Image(format="png")
    frame = W.Image(format="png", layout=W.Layout(width="220px"))
    info = W.HTML()
    log.layout.display = "none"

    box = W.VBox([W.HBox([W.VBox([lin, log, use_log, state, info]), frame]), plot])
    box.last_latency_ms = None

    def update(state_index=None, w_value=None):
        t0 = time.perf_counter()
        s = state.value if state_index is None else int(state_index)
        wv = (log.value if use_log.value else lin.value) if w_value is None else float(w_value)
        summary = view.draw(s, wv)
        plot.value = view.png()
        if frames is not None:
            frame.value = frame_pngs[s]
        box.last_latency_ms = 1000 * (time.perf_counter() - t0)
        info.value = (f"<b>mean Q</b> {summary['mean_q']:.2f} vs flow BC {summary['bc_mean_q']:.2f}<br>"
                      f"<b>spread</b> {summary['spread']:.3f} vs {summary['bc_spread']:.3f}<br>"
                      f"<small>update {box.last_latency_ms:.0f} ms</small>")
        return summary

    def on_scale(change):
        if change["new"]:
            log.value = min(max(lin.value, 0.1), w_max)
            lin.layout.display, log.layout.display = "none", None
        else:
            lin.value = log.value
            lin.layout.display, log.layout.display = None, "none"
        update()

    lin.observe(lambda change: None if use_log.value else update(), names="value")
    log.observe(lambda change: update() if use_log.value else None, names="value")
    use_log.observe(on_scale, names="value")
    state.observe(lambda change: update(), names="value")
    box.update = update
    box.controls = {"w": lin, "w_log": log, "log_scale": use_log, "state": state, "plot": plot, "frame": frame,
                    "info": info}
    update()
    return box


def static_player_html(view: GuidanceView, state_index: int, w_grid, *, frame=None, caption: str = "") -> str:
    """The view precomputed at every w of ``w_grid`` for one state, as self-contained HTML (:func:`image_player_html`)."""
    w_grid = [float(w) for w in w_grid]
    if not w_grid:
        raise ValueError("w_grid must hold at least one value")
    images, labels = [], []
    for w in w_grid:
        s = view.draw(state_index, w)
        images.append(view.png())
        labels.append(f"w = {w:g} · mean Q {s['mean_q']:.2f} (flow BC {s['bc_mean_q']:.2f}) · "
                      f"spread {s['spread']:.3f}")
    start = min(range(len(w_grid)), key=lambda i: abs(w_grid[i] - 1.0))
    side = None if frame is None else (frame if isinstance(frame, bytes) else frame_png(frame))
    return image_player_html(images, labels, start=start, caption=caption, side_png=side)


def image_player_html(images: list[bytes], labels: list[str], *, start: int = 0, caption: str = "",
                      side_png: bytes | None = None, what: str = "guidance weight w") -> str:
    """Precomputed PNG figures behind an ``<input type=range>`` that swaps them, as self-contained HTML (the images
    base64-embedded): a slider that needs no kernel, no network and no external script."""
    if not images or len(images) != len(labels):
        raise ValueError(f"need one label per image and at least one image, got {len(images)} and {len(labels)}")
    urls = ["data:image/png;base64," + base64.b64encode(png).decode() for png in images]
    uid = "cfgrl-player-" + hashlib.sha1("".join(urls).encode()).hexdigest()[:10]
    side = ""
    if side_png is not None:
        side = (f'<img alt="the state" style="width:200px;margin-left:12px;border-radius:4px" '
                f'src="data:image/png;base64,{base64.b64encode(side_png).decode()}">')
    return f"""
<div class="cfgrl-player" id="{uid}" style="font-family:sans-serif;max-width:100%">
  <div style="display:flex;align-items:center;gap:10px;flex-wrap:wrap">
    <label for="{uid}-range"><b>{html.escape(what)}</b></label>
    <input id="{uid}-range" type="range" min="0" max="{len(urls) - 1}" step="1" value="{start}"
           style="width:320px" aria-label="{html.escape(what)}">
    <span id="{uid}-label" style="font-size:0.9em">{html.escape(labels[start])}</span>{side}
  </div>
  <img id="{uid}-img" alt="figure at the chosen value" style="max-width:100%" src="{urls[start]}">
  <div style="font-size:0.85em;color:#555">{html.escape(caption)}</div>
  <script>
  (function() {{
    var images = {json.dumps(urls)}, labels = {json.dumps(labels)};
    var range = document.getElementById("{uid}-range"), img = document.getElementById("{uid}-img"),
        label = document.getElementById("{uid}-label");
    function show() {{ img.src = images[range.value]; label.textContent = labels[range.value]; }}
    range.addEventListener("input", show);
    range.addEventListener("change", show);
  }})();
  </script>
</div>"""
