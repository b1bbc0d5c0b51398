"""The static HTML report: one self-contained file, readable offline.

``benchmarks/report/index.html`` holds the leaderboard, every table of the report stage, its
figures (PNG, embedded as ``data:`` URIs), a card per dataset (signals, counts, incidents by fault
type, licence — from ``data/raw/<ds>/dataset.json``, ``incidents.parquet`` and
``data/interim/<ds>/ingest_report.json``, where present) and a per-case drill-down: for every case,
its fault type and true root cause, and where each ranker put it (mean rank over seeds) and whether
each detector caught it. No script, no stylesheet or font from elsewhere: no network at all. The
same inputs give the same bytes (no date, no run ids).
"""

from __future__ import annotations

import base64
import html
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from otlp_aiops.report.stats import spec

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;\
color:#1d232b;background:#fafbfc}
header{background:#24303f;color:#fff;padding:14px 28px}header h1{margin:0;font-size:20px}
header p{margin:4px 0 0;color:#c9d3df;font-size:13px}
nav{padding:8px 28px;background:#e8edf3;font-size:13px}nav a{margin-right:14px;color:#24476b}
main{padding:8px 28px 40px;max-width:1400px}
h2{margin-top:32px;border-bottom:2px solid #d5dde6;padding-bottom:4px}h3{margin-top:22px}
table{border-collapse:collapse;margin:8px 0 14px;font-size:13px;background:#fff}
th,td{border:1px solid #d5dde6;padding:3px 8px;text-align:right;white-space:nowrap}
th{background:#eef2f6}td:first-child,th:first-child{text-align:left}
td.text{text-align:left}.best{font-weight:700}.worse{color:#8a2a2a}
.cards{display:flex;flex-wrap:wrap;gap:14px}
.card{background:#fff;border:1px solid #d5dde6;border-radius:6px;padding:10px 14px;\
min-width:300px;flex:1 1 320px}
.card h3{margin:0 0 6px}.card dl{display:grid;grid-template-columns:max-content auto;gap:2px 12px;margin:0}
.card dt{color:#5b6673}.card dd{margin:0}
figure{display:inline-block;margin:6px 12px 12px 0;background:#fff;border:1px solid #d5dde6;padding:6px}
figure img{max-width:640px;display:block}figcaption{font-size:12px;color:#5b6673;margin-top:4px}
details{margin:8px 0}summary{cursor:pointer;font-weight:600}
td.hit1{background:#c9ecd0}td.hit3{background:#eef6c8}td.hit5{background:#fbeed0}td.miss{background:#f6d5d5}
td.na{color:#9aa5b1}.legend span{display:inline-block;padding:1px 8px;margin-right:6px;\
border:1px solid #d5dde6}
.note{color:#5b6673;font-size:12px}
"""


@dataclass
class DatasetCard:
    name: str
    fields: list[tuple[str, str]] = field(default_factory=list)
    fault_types: dict[str, int] = field(default_factory=dict)
    root_causes: dict[str, str] = field(default_factory=dict)  # case id -> true root-cause service
    missing: list[str] = field(default_factory=list)


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _fmt_int(n: Any) -> str:
    try:
        return f"{int(n):,}"
    except (TypeError, ValueError):
        return str(n)


def dataset_card(name: str, raw_dir: str | Path | None, interim_dir: str | Path | None,
                 results: pd.DataFrame | None = None) -> DatasetCard:
    """What the report says about one dataset: from its dataset.json, incidents.parquet and
    ingest_report.json where they exist (each missing file is named on the card), and the fault
    types of the cases in ``results`` otherwise."""
    card = DatasetCard(name)
    raw = Path(raw_dir) if raw_dir is not None else None
    meta = _read_json(raw / "dataset.json") if raw is not None else None
    if meta is None:
        card.missing.append(f"{raw / 'dataset.json' if raw else 'data/raw/' + name + '/dataset.json'}")
        meta = {}
    f = card.fields
    if meta.get("name") and meta.get("name") != name:
        f.append(("name", str(meta["name"])))
    for key, label in (("source", "source"), ("system", "system")):
        if meta.get(key):
            f.append((label, str(meta[key])))
    lic = meta.get("licence") or meta.get("license")
    if isinstance(lic, Mapping):
        lic = lic.get("name") or lic.get("id") or json.dumps(lic, sort_keys=True)
    if meta:
        f.append(("licence", str(lic) if lic else "not stated in dataset.json"))
    if "synthetic" in meta:
        f.append(("synthetic", "yes" if meta["synthetic"] else "no"))
    tr = meta.get("time_range")
    if isinstance(tr, Mapping) and tr.get("start"):
        f.append(("time range", f"{tr.get('start')} → {tr.get('end', '?')}"))

    rep = _read_json(Path(interim_dir) / "ingest_report.json") if interim_dir is not None else None
    if rep is None:
        missing = Path(interim_dir) / "ingest_report.json" if interim_dir else "ingest_report.json"
        card.missing.append(f"{missing}")
    else:
        tot = rep.get("totals") or {}
        rows = tot.get("rows_written") or {}
        signals = []
        if rows.get("spans"):
            signals.append(f"traces ({_fmt_int(rows['spans'])} spans)")
        if rows.get("logs"):
            signals.append(f"logs ({_fmt_int(rows['logs'])} records)")
        pts = sum(int(v) for k, v in rows.items() if k.startswith("metrics_"))
        if pts:
            signals.append(f"metrics ({_fmt_int(pts)} points)")
        f.append(("signals", ", ".join(signals) if signals else "none ingested"))
        mib = tot.get("bytes", 0) / 2**20
        f.append(("OTLP input", f"{_fmt_int(tot.get('files', 0))} files, {mib:,.1f} MiB"))
        q = int(tot.get("records_quarantined", 0) or 0)
        f.append(("quarantined", f"{_fmt_int(q)} of {_fmt_int(tot.get('records_read', 0))} records"))
    counts = meta.get("counts")
    if isinstance(counts, Mapping):
        keep = {k: v for k, v in counts.items() if isinstance(v, (int, float)) and k in
                ("traces", "spans", "logs", "metric_points", "incidents", "services", "pods", "requests")}
        if keep:
            f.append(("counts", ", ".join(f"{k} {_fmt_int(v)}" for k, v in keep.items())))

    inc_path = raw / "incidents.parquet" if raw is not None else None
    if inc_path is not None and inc_path.exists():
        import pyarrow.parquet as pq

        t = pq.read_table(inc_path).to_pandas()
        f.append(("incidents", _fmt_int(len(t))))
        if "fault_type" in t:
            card.fault_types = {str(k): int(v) for k, v in
                                t["fault_type"].fillna("unknown").value_counts().sort_index().items()}
        if {"incident_id", "root_cause_service"} <= set(t.columns):
            pairs = zip(t["incident_id"], t["root_cause_service"], strict=True)
            card.root_causes = {str(i): str(s) for i, s in pairs if s is not None and s == s}
            f.append(("root-cause services", _fmt_int(len(set(card.root_causes.values())))))
    else:
        if raw is not None:
            card.missing.append(str(inc_path))
        if results is not None and len(results):
            fill_from_results(card, results)
    return card


def fill_from_results(card: DatasetCard, results: pd.DataFrame) -> None:
    """Cases and fault types from the results, for a card without incidents.parquet."""
    r = results[(results["dataset"] == card.name) & (results["case_id"] != "")]
    per_case = r.drop_duplicates("case_id")
    if len(per_case):
        counts = per_case["fault_type"].value_counts().sort_index()
        card.fault_types = {str(k): int(v) for k, v in counts.items()}
        card.fields.append(("cases (from the results)", _fmt_int(len(per_case))))


# --------------------------------------------------------------------------------------------------


def _e(s: Any) -> str:
    return html.escape(str(s), quote=True)


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A table from header / rows whose cells are plain values or tables.Cell objects."""
    from otlp_aiops.report.tables import DAGGER, MISSING, Cell

    out = ["<table><thead><tr>" + "".join(f"<th>{_e(h)}</th>" for h in header) + "</tr></thead><tbody>"]
    for row in rows:
        cells = []
        for c in row:
            if isinstance(c, Cell):
                cls = " ".join(x for x in ("best" if c.best else "", "worse" if c.worse else "") if x)
                text = _e(c.text or MISSING) + (f" {DAGGER}" if c.worse else "")
                cells.append(f'<td class="{cls}">{text}</td>' if cls else f"<td>{text}</td>")
            else:
                cells.append(f'<td class="text">{_e(c)}</td>')
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</tbody></table>")
    return "\n".join(out)


def _figure(path: Path, caption: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    mime = "image/svg+xml" if path.suffix == ".svg" else "image/png"
    return (f'<figure><img alt="{_e(caption)}" src="data:{mime};base64,{data}">'
            f"<figcaption>{_e(caption)}</figcaption></figure>")


def _md_table_to_html(md: str) -> str:
    """The leaderboard's Markdown tables (pipes, **bold**) as HTML tables; other lines as paragraphs."""
    blocks, cur = [], []
    for line in [*md.splitlines(), ""]:
        if line.startswith("|"):
            cur.append(line)
            continue
        if cur:
            rows = [[c.strip() for c in r.strip().strip("|").split("|")]
                    for r in cur if not set(r) <= set("|-: ")]
            head, body = rows[0], rows[1:]
            t = ["<table><thead><tr>" + "".join(f"<th>{_e(h)}</th>" for h in head) + "</tr></thead><tbody>"]
            for r in body:
                tds = []
                for i, c in enumerate(r):
                    c2 = re.sub(r"\*\*(.+?)\*\*", r'<span class="best">\1</span>', _e(c))
                    tds.append(f'<td class="text">{c2}</td>' if i == 0 else f"<td>{c2}</td>")
                t.append("<tr>" + "".join(tds) + "</tr>")
            t.append("</tbody></table>")
            blocks.append("\n".join(t))
            cur = []
        if line.strip():
            blocks.append(f'<p class="note">{_e(line.replace("`", ""))}</p>')
    return "\n".join(blocks)


def _card_html(card: DatasetCard) -> str:
    dl = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in card.fields)
    if card.fault_types:
        ft = ", ".join(f"{k} {v}" for k, v in card.fault_types.items())
        dl += f"<dt>fault types</dt><dd>{_e(ft)}</dd>"
    miss = (f'<p class="note">not found: {_e(", ".join(card.missing))}</p>' if card.missing else "")
    return f'<div class="card" id="card-{_e(card.name)}"><h3>{_e(card.name)}</h3><dl>{dl}</dl>{miss}</div>'


def _rank_class(rank: float) -> str:
    if rank is None or not math.isfinite(rank):
        return "miss"
    if rank <= 1:
        return "hit1"
    if rank <= 3:
        return "hit3"
    if rank <= 5:
        return "hit5"
    return "miss"


def drill_down(df: pd.DataFrame, dataset: str, card: DatasetCard | None) -> str:
    """Cases × methods: the mean rank of the true root cause over seeds (rankers), and whether each
    detector caught the incident and how late (detectors)."""
    parts = []
    r = df[(df["dataset"] == dataset) & (df["task"] == "rca") & (df["metric"] == "rank")
           & (df["case_id"] != "")]
    if len(r):
        ranks = r.groupby(["case_id", "method"])["value"].mean().unstack("method")
        ft = r.drop_duplicates("case_id").set_index("case_id")["fault_type"]
        methods = list(ranks.columns)
        head = ["case", "fault type", "root cause", *methods]
        rows = ["<table><thead><tr>" + "".join(f"<th>{_e(h)}</th>" for h in head) + "</tr></thead><tbody>"]
        for case in sorted(ranks.index):
            rc = card.root_causes.get(case, "") if card else ""
            tds = [f'<td class="text">{_e(case)}</td>', f'<td class="text">{_e(ft.get(case, ""))}</td>',
                   f'<td class="text">{_e(rc) or "–"}</td>']
            for m in methods:
                v = ranks.at[case, m]
                if v is None or not math.isfinite(v):
                    tds.append('<td class="miss">unranked</td>')
                else:
                    tds.append(f'<td class="{_rank_class(v)}">{v:.3g}</td>')
            rows.append("<tr>" + "".join(tds) + "</tr>")
        rows.append("</tbody></table>")
        legend = ('<p class="legend">Rank of the true root cause (mean over seeds): '
                  '<span class="hit1" style="background:#c9ecd0">1</span>'
                  '<span style="background:#eef6c8">≤ 3</span>'
                  '<span style="background:#fbeed0">≤ 5</span>'
                  '<span style="background:#f6d5d5">&gt; 5</span></p>')
        parts.append(f"<h4>Root-cause ranking</h4>{legend}" + "\n".join(rows))
    d = df[(df["dataset"] == dataset) & (df["task"] == "detect") & (df["case_id"] != "")
           & df["metric"].isin(["detected", "detection_delay_s"])]
    if len(d):
        piv = d.groupby(["case_id", "method", "metric"])["value"].mean().unstack("metric")
        methods = sorted(d["method"].unique())
        ft = d.drop_duplicates("case_id").set_index("case_id")["fault_type"]
        head = ["incident", "fault type", *methods]
        rows = ["<table><thead><tr>" + "".join(f"<th>{_e(h)}</th>" for h in head) + "</tr></thead><tbody>"]
        for case in sorted(d["case_id"].unique()):
            tds = [f'<td class="text">{_e(case)}</td>', f'<td class="text">{_e(ft.get(case, ""))}</td>']
            for m in methods:
                if (case, m) not in piv.index:
                    tds.append('<td class="na">–</td>')
                    continue
                det = piv.at[(case, m), "detected"] if "detected" in piv.columns else math.nan
                has_delay = "detection_delay_s" in piv.columns
                delay = piv.at[(case, m), "detection_delay_s"] if has_delay else math.nan
                if det is not None and math.isfinite(det) and det > 0:
                    txt = f"{det:.0%} · {delay:.0f} s" if math.isfinite(delay) else f"{det:.0%}"
                    tds.append(f'<td class="{"hit1" if det >= 1 else "hit5"}">{_e(txt)}</td>')
                else:
                    tds.append('<td class="miss">missed</td>')
            rows.append("<tr>" + "".join(tds) + "</tr>")
        rows.append("</tbody></table>")
        parts.append('<h4>Anomaly detection</h4><p class="note">Share of seeds that detected the incident · '
                     "mean delay of those that did.</p>" + "\n".join(rows))
    return "\n".join(parts)


def render_report(*, title: str, df: pd.DataFrame,
                  tables_by_dataset: Mapping[str, list[tuple[str, list[str], list]]],
                  leaderboard_md: str, figures: Sequence[tuple[Path, str]], cards: Mapping[str, DatasetCard],
                  datasets: Sequence[str], note: str = "") -> str:
    """The whole page as a string. ``tables_by_dataset``: dataset -> [(caption, header, rows)]."""
    nav = ['<a href="#leaderboard">Leaderboard</a>', '<a href="#datasets">Datasets</a>']
    nav += [f'<a href="#ds-{_e(d)}">{_e(d)}</a>' for d in tables_by_dataset]
    nav += ['<a href="#figures">Figures</a>']
    body = [f'<section id="leaderboard"><h2>Leaderboard</h2>{_md_table_to_html(leaderboard_md)}</section>']
    body.append('<section id="datasets"><h2>Datasets</h2><div class="cards">'
                + "".join(_card_html(cards[d]) for d in datasets if d in cards) + "</div></section>")
    for ds, tbls in tables_by_dataset.items():
        sec = [f'<section id="ds-{_e(ds)}"><h2>{_e(ds)}</h2>']
        for caption, header, rows in tbls:
            sec.append(f'<h3>{_e(caption.split(". ")[0])}</h3><p class="note">{_e(caption)}</p>')
            sec.append(_table(header, rows))
        base = ds.split("+")[0]
        if "+" not in ds:
            dd = drill_down(df, ds, cards.get(base))
            if dd:
                sec.append(f"<details><summary>Per-case drill-down: {_e(ds)}</summary>{dd}</details>")
        sec.append("</section>")
        body.append("\n".join(sec))
    figs = "".join(_figure(p, c) for p, c in figures)
    body.append(f'<section id="figures"><h2>Figures</h2>{figs}</section>')
    named = ("ac_at_1", "avg_at_5", "mrr", "vus_pr", "range_f1", "false_alarms_per_hour")
    metrics_note = ", ".join(f"{spec(m).label} = {m}" for m in named)
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{_e(title)}</title>"
            f"<style>{CSS}</style></head><body>"
            f"<header><h1>{_e(title)}</h1><p>{_e(note)}</p></header><nav>{''.join(nav)}</nav><main>"
            + "\n".join(body)
            + f'<p class="note">Metric names in metrics/leaderboard.json and MLflow: {_e(metrics_note)}.</p>'
            + "</main></body></html>\n")
