"""What the chapters share: the library's own source shown at the equation it implements, a finished run's trained
networks with the data they were trained on, and Markdown tables.

d2l's rule holds here: the code a chapter shows is the code that ships, printed from the installed package.
"""
from __future__ import annotations

import inspect
from pathlib import Path


def source_markdown(*objects) -> str:
    """The source of functions, methods or classes as Markdown code blocks, each headed by where it lives."""
    blocks = []
    for obj in objects:
        module = inspect.getmodule(obj)
        where = Path(inspect.getsourcefile(obj)).name if module is None else module.__name__.replace(".", "/") + ".py"
        blocks.append(f"`{where}` · `{obj.__qualname__}`\n\n```python\n{inspect.getsource(obj).rstrip()}\n```")
    return "\n\n".join(blocks)


def show_source(*objects) -> None:
    """Display :func:`source_markdown` in a notebook (rendered as code in Jupyter, Colab and the built book)."""
    from IPython.display import Markdown, display

    display(Markdown(source_markdown(*objects)))


def markdown_table(header, rows) -> str:
    """A Markdown table: ``header`` a list of column titles, ``rows`` lists of cells (formatted with ``str``)."""
    header = [str(h) for h in header]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        row = [str(c) for c in row]
        if len(row) != len(header):
            raise ValueError(f"a row has {len(row)} cells for {len(header)} columns: {row}")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def trained_run(task: str, path=None, dataset: str | None = None, with_data: bool = True, device="cpu") -> dict:
    """A finished run's networks (:func:`cfgrl_core.checkpoint.load_trained`; default: the shipped ``book`` networks
    of ``task``, seed 0) and the dataset they were trained on (``dataset`` overrides its size, e.g. ``"smoke"``;
    generated on first use). Returns the trained dict plus ``domain`` and ``task_name`` and, with ``with_data``,
    ``data_root`` and ``data`` (:func:`cfgrl_core.dataset.load_dataset`)."""
    from .checkpoint import load_trained, trained_asset
    from .collect import SIZES, ensure_dataset
    from .dataset import load_dataset
    from .envs import parse_task

    trained = load_trained(path or trained_asset(task), device)
    domain, task_name = parse_task(task)
    out = {**trained, "domain": domain, "task_name": task_name}
    if with_data:
        size = dataset or trained["config"]["dataset"]
        out["data_root"] = root = ensure_dataset(domain, size, progress=False)
        out["data"] = load_dataset(root, domain, "td3_snapshots", task_name, episodes=SIZES[size], progress=False)
    return out
