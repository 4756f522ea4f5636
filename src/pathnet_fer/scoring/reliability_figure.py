"""The reliability diagram (calibration curve) of a model's held-out predictions, and the
one way every figure of the package is saved (a 300-dpi PNG and a PDF beside it)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

PNG_DPI = 300


def save_figure(fig, path: str | Path) -> Path:
    """A 300-dpi PNG at ``path`` and a vector PDF beside it (same name, ``.pdf``): the
    PNG for screens and Markdown, the PDF for papers."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=PNG_DPI)
    fig.savefig(path.with_suffix(".pdf"))
    plt.close(fig)
    return path


def calibration_figure(table, path: str | Path, title: str = "") -> Path:
    """Reliability diagram of ``evaluation.reliability_table``: accuracy against mean
    max-probability per bin (marker area ~ faces in the bin), the diagonal = calibrated.
    ``table`` may be a dict ``{label: table}`` to draw several curves (before / after)."""
    tables = table if isinstance(table, dict) else {"": table}
    fig, ax = plt.subplots(figsize=(4.2, 4.0))
    ax.plot([0, 1], [0, 1], color="0.6", lw=1, ls="--", label="calibrated")
    eces = []
    for i, (label, t) in enumerate(tables.items()):
        used = t[t.n > 0]
        size = 20 + 300 * used.n / max(int(used.n.max()), 1)
        ece = float(t["ece"].iloc[0])
        name = f"{label} (ECE {ece:.3f})" if label else None
        ax.scatter(used.confidence, used.accuracy, s=size, color=f"C{i}", alpha=0.8, zorder=3)
        ax.plot(used.confidence, used.accuracy, color=f"C{i}", lw=1, label=name)
        eces.append(ece)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("mean max-probability (confidence)")
    ax.set_ylabel("accuracy")
    suffix = f"\nECE {eces[0]:.3f}" if len(tables) == 1 and "" in tables else ""
    ax.set_title(f"{title}{suffix}".strip(), fontsize=9)
    ax.legend(loc="upper left", fontsize=7)
    fig.tight_layout()
    return save_figure(fig, path)
