"""Rendering stored episodes (physics states) to frames and inline MP4 video."""
from __future__ import annotations

import base64
import os
import tempfile

import numpy as np

from .envs import DOMAIN_TASKS, fast_render_settings, make_env


def render_states(domain: str, physics_states: np.ndarray, height: int = 240, width: int = 320,
                  camera_id: int = 0, every: int = 4, max_frames: int = 250) -> np.ndarray:
    """Frames (n, H, W, 3) uint8 of every ``every``-th state, at most ``max_frames`` of them (fast settings)."""
    env = make_env(domain, DOMAIN_TASKS[domain][0], seed=0)
    fast_render_settings(env.physics)
    frames = []
    for s in np.asarray(physics_states)[::every][:max_frames]:
        with env.physics.reset_context():
            env.physics.set_state(s)
        frames.append(env.physics.render(height=height, width=width, camera_id=camera_id))
    return np.stack(frames)


def mp4_bytes(frames: np.ndarray, fps: int = 30) -> bytes:
    """H.264 MP4 of uint8 frames, through imageio's bundled ffmpeg."""
    import imageio.v2 as imageio

    fd, path = tempfile.mkstemp(suffix=".mp4")
    os.close(fd)
    try:
        with imageio.get_writer(path, fps=fps, codec="libx264", quality=7, macro_block_size=8,
                                ffmpeg_log_level="error") as writer:
            for f in frames:
                writer.append_data(f)
        with open(path, "rb") as f:
            return f.read()
    finally:
        os.unlink(path)


def video_html(frames: np.ndarray, fps: int = 30, caption: str | None = None, width: int | None = None) -> str:
    """A self-contained <video> element (base64 MP4) with an optional caption, for notebooks and the book."""
    data = base64.b64encode(mp4_bytes(frames, fps)).decode()
    w = f' width="{width}"' if width else ""
    cap = f"<figcaption>{caption}</figcaption>" if caption else ""
    return (f'<figure style="display:inline-block;margin:4px"><video{w} controls loop muted playsinline '
            f'src="data:video/mp4;base64,{data}"></video>{cap}</figure>')
