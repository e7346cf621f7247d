"""Self-contained HTML reports: escaped text, tables and matplotlib figures inlined as SVG."""

from __future__ import annotations

import html
import io
from collections.abc import Callable, Sequence

STYLE = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;
color:#222}table{border-collapse:collapse;margin:1em 0;font-size:14px}td,th{border:1px solid #ccc;
padding:4px 8px;vertical-align:top;text-align:left}th{background:#f3f3f3}.num{text-align:right}
.flag{background:#fff1f0}.passage{font-size:13px;color:#444;white-space:pre-wrap}
figure{display:inline-block;margin:0 1em 1em 0}code{background:#f6f6f6}"""


def esc(value: object) -> str:
    return html.escape("" if value is None else str(value))


def table(header: Sequence[str], rows: Sequence[Sequence[object]], raw: bool = False) -> str:
    """An HTML table; cells are escaped unless ``raw`` (for cells built with ``esc``)."""
    cell = (lambda v: str(v)) if raw else esc
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def figure(draw: Callable[[object], None], caption: str, size: tuple[float, float] = (5, 3.6)) -> str:
    """``draw(ax)`` on a fresh matplotlib axes, returned as inline SVG with a caption."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams["svg.hashsalt"] = "rag"  # the same figure gives the same bytes
    fig, ax = plt.subplots(figsize=size)
    try:
        draw(ax)
        fig.tight_layout()
        buffer = io.StringIO()
        fig.savefig(buffer, format="svg", metadata={"Date": None})
    finally:
        plt.close(fig)
    svg = buffer.getvalue()
    svg = svg[svg.index("<svg"):]
    return f"<figure>{svg}<figcaption>{esc(caption)}</figcaption></figure>"


def page(title: str, body: Sequence[str]) -> str:
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{esc(title)}</title>"
            f"<style>{STYLE}</style></head><body><h1>{esc(title)}</h1>{''.join(body)}"
            "</body></html>\n")
