"""What the chapters share: the library's own source shown at the equation it implements, a finished run's trained
networks with the data they were trained on, Markdown tables; and, as a Sphinx extension (``_config.yml`` lists
``cfgrl_core.book`` under ``extra_extensions``), math that renders without a network.

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
    """A finished run's networks (:func:`cfgrl_core.checkpoint.load_trained`; default: the shipped ``book20k`` networks
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


# ------------------------------------------------------------------------------------------ offline math
MATHJAX_PACKAGE = "django-static-mathjax"   # MathJax 3.2.2's own files, from PyPI (its Python package: ``mathjax``)


def mathjax_es5() -> Path:
    """The ``es5`` folder of the installed MathJax 3 (the ``book`` extra installs it)."""
    import importlib.util

    spec = importlib.util.find_spec("mathjax")
    es5 = None if spec is None else Path(spec.submodule_search_locations[0]) / "static" / "mathjax" / "es5"
    if es5 is None or not (es5 / "tex-mml-chtml.js").is_file():
        raise RuntimeError(f"MathJax 3 is not installed: pip install {MATHJAX_PACKAGE} (part of cfgrl-core[book])")
    return es5


def _use_local_mathjax(app, config) -> None:
    mathjax_es5()   # fail the build early, naming the package, if it is missing
    config.mathjax_path = "mathjax/tex-mml-chtml.js"   # relative to the built _static folder


def _copy_mathjax(app, exception) -> None:
    import shutil

    if exception is None and app.builder.format == "html":
        es5, out = mathjax_es5(), Path(app.outdir) / "_static" / "mathjax"
        out.mkdir(parents=True, exist_ok=True)
        shutil.copy2(es5 / "tex-mml-chtml.js", out)          # the component Sphinx loads, and what it loads lazily:
        for folder in ("input", "output", "ui", "a11y", "adaptors"):   # TeX extensions, fonts, the menu
            if (es5 / folder).is_dir():
                shutil.copytree(es5 / folder, out / folder, dirs_exist_ok=True)


def setup(app):
    """Sphinx extension: serve MathJax from the built book instead of a CDN, so formulas render offline."""
    app.connect("config-inited", _use_local_mathjax)
    app.connect("build-finished", _copy_mathjax)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
