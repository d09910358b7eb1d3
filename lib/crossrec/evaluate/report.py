"""The evaluation's outputs for people: a mean ± std table over seeds, a Markdown report and PNG
plots (metric by cohort against the baselines, training curves, recall@K over K)."""
from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from crossrec.schemas import columns as C
from crossrec.schemas.evaluation import COHORTS

TABLE_METRICS = ("ndcg", "recall", "hit_rate", "mrr", "precision", "f1", "coverage", "diversity",
                 "novelty")


def summarise(rows: list[dict[str, Any]]) -> dict[tuple[str, str, str, int], tuple[float, float, int]]:
    """{(model, cohort, metric, k): (mean, sample std (0 for one seed), seeds)} over seeds."""
    by: dict[tuple[str, str, str, int], list[float]] = defaultdict(list)
    for r in rows:
        by[(r[C.MODEL_NAME], r[C.COHORT], r[C.METRIC], r[C.K])].append(r[C.METRIC_VALUE])
    return {key: (float(np.mean(v)), float(np.std(v, ddof=1)) if len(v) > 1 else 0.0, len(v))
            for key, v in by.items()}


def _models(rows: list[dict[str, Any]]) -> list[str]:
    return list(dict.fromkeys(r[C.MODEL_NAME] for r in rows))


def table(rows: list[dict[str, Any]], k: int, metrics: tuple[str, ...] = TABLE_METRICS) -> str:
    """A Markdown table: one row per model x cohort, ``metric@k`` mean ± std over seeds."""
    s = summarise(rows)
    head = "| model | cohort | " + " | ".join(f"{m}@{k}" for m in metrics) + " |"
    lines = [head, "|---|---|" + "---|" * len(metrics)]
    for model in _models(rows):
        for cohort in COHORTS:
            cells = []
            for m in metrics:
                mean, std, _ = s.get((model, cohort, m, k), (math.nan, math.nan, 0))
                cells.append(f"{mean:.4f} ± {std:.4f}")
            if any(not c.startswith("nan") for c in cells):
                lines.append(f"| {model} | {cohort} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    return plt


def plot_by_cohort(rows: list[dict[str, Any]], k: int, path: Path,
                   metrics: tuple[str, ...] = ("ndcg", "recall", "hit_rate", "mrr")) -> Path:
    """Grouped bars: each metric@k by cohort, one bar per model, std over seeds as error bars."""
    plt = _plt()
    s, models = summarise(rows), _models(rows)
    fig, axes = plt.subplots(1, len(metrics), figsize=(4 * len(metrics), 3.6), squeeze=False)
    width = 0.8 / max(len(models), 1)
    for ax, metric in zip(axes[0], metrics):
        for j, model in enumerate(models):
            vals = [s.get((model, c, metric, k), (math.nan, 0.0, 0)) for c in COHORTS]
            ax.bar(np.arange(len(COHORTS)) + j * width, [v[0] for v in vals], width,
                   yerr=[v[1] for v in vals], label=model, capsize=2)
        ax.set_xticks(np.arange(len(COHORTS)) + width * (len(models) - 1) / 2, COHORTS)
        ax.set_title(f"{metric}@{k}")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_recall_over_k(rows: list[dict[str, Any]], path: Path, metric: str = "recall") -> Path:
    """recall@K over K, one line per model, solid cold and dashed warm."""
    plt = _plt()
    s, models = summarise(rows), _models(rows)
    fig, ax = plt.subplots(figsize=(6, 4))
    for j, model in enumerate(models):
        for cohort, style in zip(COHORTS, ("-", "--")):
            ks = sorted(key[3] for key in s if key[:3] == (model, cohort, metric))
            if ks:
                ax.plot(ks, [s[(model, cohort, metric, k)][0] for k in ks], style, marker="o",
                        color=f"C{j}", label=f"{model} ({cohort})")
    ax.set_xscale("log")
    ax.set_xlabel("K")
    ax.set_ylabel(f"{metric}@K")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_curves(curves: dict[str, list[dict[str, float]]], path: Path) -> Path | None:
    """Each model's training curve series over ``step``; None when no model reported one."""
    curves = {m: pts for m, pts in curves.items() if pts}
    if not curves:
        return None
    plt = _plt()
    series = sorted({key for pts in curves.values() for p in pts for key in p if key != "step"})
    fig, axes = plt.subplots(1, len(series), figsize=(4.5 * len(series), 3.5), squeeze=False)
    for ax, name in zip(axes[0], series):
        for model, pts in curves.items():
            xy = [(p["step"], p[name]) for p in pts if name in p and "step" in p]
            if xy:
                ax.plot(*zip(*xy), marker=".", label=model)
        ax.set_xlabel("step")
        ax.set_title(name)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def write_report(out: Path, rows: list[dict[str, Any]], meta: dict[str, Any],
                 curves: dict[str, list[dict[str, float]]]) -> list[Path]:
    """report.md and its PNGs into ``out``; returns the files written."""
    out.mkdir(parents=True, exist_ok=True)
    k = meta["k"]
    files = [plot_by_cohort(rows, k, out / "metrics_by_cohort.png"),
             plot_recall_over_k(rows, out / "recall_at_k.png")]
    curve = plot_curves(curves, out / "training_curve.png")
    settings = "\n".join(f"- `{m}`: `{meta['settings'].get(m, {})}`" for m in _models(rows))
    md = [f"# Evaluation {meta['run_date']}: target `{meta['target']}`, source `{meta['source']}`",
          "", f"Seeds of the cold-user draw: {meta['seeds']}; cohorts per seed: {meta['cohorts']}. "
          f"Mean ± std over seeds.", "", table(rows, k), "",
          "![metrics by cohort](metrics_by_cohort.png)", "", "## Recall@K over K", "",
          "![recall at K](recall_at_k.png)", "", "## Training curves", "",
          "![training curve](training_curve.png)" if curve else
          "No model reported a training curve.", "", "## Settings", "", settings, ""]
    if meta.get("tuning"):
        md += ["## Tuning (validation split carved from the training data)", ""]
        for model, trials in meta["tuning"].items():
            md += [f"- `{model}`: " + "; ".join(f"`{t['params']}` cold {t['cold']:.4f} warm "
                                                 f"{t['warm']:.4f}" for t in trials)]
    (out / "report.md").write_text("\n".join(md) + "\n")
    return [out / "report.md", *files, *([curve] if curve else [])]
