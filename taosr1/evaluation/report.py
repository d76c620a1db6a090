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


def _fmt(v, spec: str = ".4f") -> str:
    return "" if v is None or (isinstance(v, float) and v != v) else format(v, spec)


def write_report(path: str | Path, title: str, rows: list[dict], tiers: dict[str, dict[str, int]],
                 notes: list[str], curves: dict[str, list[dict]] | None = None) -> Path:
    """``rows``: one dict per system (system, kind, n, accuracy, macro_f1 and its interval, per_class, confusion);
    ``curves``: per model, its training curve (examples seen → dev macro-F1) from its card."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    systems = [r["system"] for r in rows]
    fig, ax = plt.subplots(figsize=(8, 0.4 * len(rows) + 1.2))
    y = np.arange(len(rows))[::-1]
    vals = np.array([r["macro_f1"] for r in rows])
    lo = np.array([r.get("macro_f1_low") if r.get("macro_f1_low") is not None else r["macro_f1"] for r in rows])
    hi = np.array([r.get("macro_f1_high") if r.get("macro_f1_high") is not None else r["macro_f1"] for r in rows])
    colors = ["#3b6ea8" if r["kind"] == "model" else "#999999" for r in rows]
    ax.errorbar(vals, y, xerr=[vals - lo, hi - vals], fmt="none", ecolor="#333", capsize=3)
    ax.scatter(vals, y, c=colors, zorder=3)
    ax.set_yticks(y, systems)
    ax.set_xlabel("macro-F1 (95% interval, query-level bootstrap)")
    ax.set_title("macro-F1 by system (blue: models, grey: baselines)")
    ax.grid(axis="x", alpha=0.3)
    ci_png = _png(fig)

    curve_png = ""
    if curves:
        fig, ax = plt.subplots(figsize=(7, 3.4))
        for name, pts in curves.items():
            ax.plot([p["examples"] for p in pts], [p["macro_f1"] for p in pts], marker="o", label=name)
        ax.set_xlabel("training examples seen")
        ax.set_ylabel("dev macro-F1 (corpus dev split)")
        ax.set_title("learning curves")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
        curve_png = _png(fig)
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

    def interval(r: dict) -> str:
        return f"[{_fmt(r.get('macro_f1_low'), '.3f')}, {_fmt(r.get('macro_f1_high'), '.3f')}]" \
            if r.get("macro_f1_low") is not None else ""

    def diff(r: dict) -> str:
        if r.get("diff_macro_f1") is None:
            return ""
        return f"{r['diff_macro_f1']:+.3f} [{r['diff_macro_f1_low']:+.3f}, {r['diff_macro_f1_high']:+.3f}]"

    table = "".join(
        f"<tr><td>{html.escape(r['system'])}</td><td>{r['kind']}</td><td>{html.escape(str(r.get('reading') or ''))}"
        f"</td><td>{r['n']}</td><td>{r['accuracy']:.4f}</td>"
        f"<td><b>{r['macro_f1']:.4f}</b></td><td>{interval(r)}</td><td>{_fmt(r.get('cuts_macro_f1'))}</td>"
        f"<td>{_fmt(r.get('cumpt_macro_f1'))}</td><td>{_fmt(r.get('spearman'))}</td><td>{_fmt(r.get('qwk'))}</td>"
        f"<td>{diff(r)}</td>"
        + "".join(f"<td>{r['per_class'][f'f1_{lv}']:.3f}</td>" for lv in LEVELS)
        + f"<td>{_fmt(r.get('ndcg_10'))}</td><td>{_fmt(r.get('tier_agreement'))}</td></tr>"
        for r in rows)
    head = "".join(f"<th>F1 {LABEL_TEXT[lv]}</th>" for lv in LEVELS)
    doc = f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1100px}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}img{{margin:4px}}</style></head><body>
<h1>{html.escape(title)}</h1>
<ul>{''.join(f'<li>{html.escape(n)}</li>' for n in notes)}</ul>
<table><tr><th>system</th><th>kind</th><th>reading</th><th>n</th><th>accuracy</th><th>macro-F1</th><th>95% interval</th>
<th>cuts macro-F1</th><th>CumPT macro-F1</th><th>Spearman</th><th>QWK</th><th>&Delta; macro-F1 vs best baseline [95%]</th>
{head}<th>NDCG@10</th><th>tier agreement</th></tr>
{table}</table>
<h2>Macro-F1 with intervals</h2><img id="intervals" src="data:image/png;base64,{ci_png}">
{f'<h2>Learning curves</h2><img id="curves" src="data:image/png;base64,{curve_png}">' if curve_png else ''}
<h2>Per-class F1</h2><img src="data:image/png;base64,{f1_png}">
<h2>Confusion matrices</h2>{''.join(f'<img src="data:image/png;base64,{c}">' for c in cms)}
{f'<h2>Tiers</h2><img src="data:image/png;base64,{tier_png}">' if tier_png else ''}
<p>systems: {', '.join(html.escape(s) for s in systems)}</p></body></html>"""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(doc)
    return out
