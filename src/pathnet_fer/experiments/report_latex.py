"""The report's Markdown tables as LaTeX (``summary.tex``): one ``booktabs`` tabular per
table, under its section's heading, cells escaped."""

from __future__ import annotations

DAGGER = "†"  # the report's mark for a row trained on another budget


def _latex_cell(text: str) -> str:
    text = text.strip()
    for raw, tex in (("\\", r"\textbackslash{}"), ("_", r"\_"), ("%", r"\%"), ("&", r"\&"),
                     ("#", r"\#")):  # fmt: skip
        text = text.replace(raw, tex)
    text = text.replace("±", r"$\pm$").replace("->", r"$\rightarrow$")
    text = text.replace(DAGGER, r"$^{\dagger}$")
    return text.replace("< 0.001", r"$<$ 0.001")


def latex_tables(markdown: str) -> str:
    """The Markdown report's tables as LaTeX ``tabular`` environments (``booktabs``
    rules), one per table, each under its section heading."""
    out = [
        "% pathnet-fer summary tables; needs \\usepackage{booktabs}",
        "% mean $\\pm$ std over folds x iterations of the final generation",
    ]
    rows: list[list[str]] = []

    def flush() -> None:
        if not rows:
            return
        header, body = rows[0], rows[1:]
        out.append("\\begin{tabular}{l" + "r" * (len(header) - 1) + "}")
        out.append("\\toprule")
        out.append(" & ".join(_latex_cell(c) for c in header) + " \\\\")
        out.append("\\midrule")
        for r in body:
            out.append(" & ".join(_latex_cell(c) for c in r) + " \\\\")
        out.append("\\bottomrule")
        out.append("\\end{tabular}")
        out.append("")
        rows.clear()

    for line in markdown.splitlines():
        if line.startswith("|"):
            cells = line.strip().strip("|").split("|")
            if all(set(c.strip()) <= {"-", ":"} for c in cells):
                continue
            rows.append(cells)
            continue
        flush()
        if line.startswith("## "):
            out.append(f"\\subsection*{{{_latex_cell(line[3:])}}}")
        elif line.strip():
            out.append(f"% {_latex_cell(line)}")
    flush()
    return "\n".join(out) + "\n"
