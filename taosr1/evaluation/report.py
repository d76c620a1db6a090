"""The evaluation report: one HTML file with tables and plots (confusion matrices, per-class F1 by system, tiers)."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import numpy as np

from taosr1.labels import LABEL_TEXT, LEVELS


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def write_report(path: str | Path, title: str, rows: list[dict], tiers: dict[str, dict[str, int]],
                 notes: list[str]) -> Path:
    """``rows``: one dict per system (system, kind, n, accuracy, macro_f1, per_class, confusion)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    systems = [r["system"] for r in rows]
    fig, ax = plt.subplots(figsize=(8, 3.6))
    width = 0.8 / max(1, len(rows))
    for i, r in enumerate(rows):
        ax.bar(np.arange(4) + i * width, [r["per_class"][f"f1_{lv}"] for lv in LEVELS], width, label=r["system"])
    ax.set_xticks(np.arange(4) + 0.4 - width / 2, [LABEL_TEXT[lv] for lv in LEVELS])
    ax.set_ylabel("F1")
    ax.set_ylim(0, 1)
    ax.set_title("per-class F1 by system")
    ax.legend(fontsize=7, ncol=4)
    f1_png = _png(fig)

    cms = []
    for r in rows:
        fig, ax = plt.subplots(figsize=(3.2, 2.9))
        cm = np.array(r["confusion"])
        ax.imshow(cm, cmap="Blues")
        for (i, j), v in np.ndenumerate(cm):
            ax.text(j, i, str(v), ha="center", va="center", fontsize=8)
        ticks = [str(lv) for lv in LEVELS]
        ax.set_xticks(range(4), ticks)
        ax.set_yticks(range(4), ticks)
        ax.set_xlabel("predicted")
        ax.set_ylabel("gold")
        ax.set_title(r["system"], fontsize=9)
        cms.append(_png(fig))

    tier_png = ""
    if tiers:
        fig, ax = plt.subplots(figsize=(6, 2.8))
        names = list(tiers)
        bottom = np.zeros(len(names))
        for tier, color in (("Good", "#4c9f70"), ("Mid", "#e2b43b"), ("Bad", "#c8553d")):
            vals = np.array([tiers[n].get(tier, 0) for n in names], dtype=float)
            ax.bar(names, vals, bottom=bottom, label=tier, color=color)
            bottom += vals
        ax.set_title("CumPT tier distribution (gold = human labels)")
        ax.legend(fontsize=8)
        tier_png = _png(fig)

    table = "".join(
        f"<tr><td>{html.escape(r['system'])}</td><td>{r['kind']}</td><td>{r['n']}</td><td>{r['accuracy']:.4f}</td>"
        f"<td><b>{r['macro_f1']:.4f}</b></td>" + "".join(f"<td>{r['per_class'][f'f1_{lv}']:.3f}</td>" for lv in LEVELS)
        + f"<td>{'' if r.get('ndcg_10') is None else format(r['ndcg_10'], '.4f')}</td>"
        + f"<td>{'' if r.get('tier_agreement') is None else format(r['tier_agreement'], '.4f')}</td></tr>"
        for r in rows)
    head = "".join(f"<th>F1 {LABEL_TEXT[lv]}</th>" for lv in LEVELS)
    doc = f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1100px}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}img{{margin:4px}}</style></head><body>
<h1>{html.escape(title)}</h1>
<ul>{''.join(f'<li>{html.escape(n)}</li>' for n in notes)}</ul>
<table><tr><th>system</th><th>kind</th><th>n</th><th>accuracy</th><th>macro-F1</th>{head}<th>NDCG@10</th><th>tier agreement</th></tr>
{table}</table>
<h2>Per-class F1</h2><img src="data:image/png;base64,{f1_png}">
<h2>Confusion matrices</h2>{''.join(f'<img src="data:image/png;base64,{c}">' for c in cms)}
{f'<h2>Tiers</h2><img src="data:image/png;base64,{tier_png}">' if tier_png else ''}
<p>systems: {', '.join(html.escape(s) for s in systems)}</p></body></html>"""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(doc)
    return out
