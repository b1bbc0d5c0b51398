"""Report: Holm, mean ± std over seeds, bootstrap determinism, Wilcoxon vs the best, the table
writers' exact output and the whole build on a tiny results table."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pandas as pd
import pytest

from otlp_aiops.report import stats, tables
from otlp_aiops.report.build import build_report


def _row(method, seed, case, metric, value, dataset="d", task="rca", fault_type="cpu"):
    return {"dataset": dataset, "task": task, "method": method, "seed": seed, "case_id": case,
            "fault_type": fault_type, "metric": metric, "value": value, "run_id": f"run-{method}-{seed}"}


def test_holm_known_values():
    # sorted 0.005·4 = 0.02, 0.01·3 = 0.03, 0.03·2 = 0.06, 0.04·1 → max(0.06, 0.04) = 0.06
    assert stats.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02], abs=1e-15)
    got = stats.holm([0.02, math.nan, 0.5])  # NaN does not count: m = 2
    assert got[0] == pytest.approx(0.04, abs=1e-15) and math.isnan(got[1]) and got[2] == 0.5
    assert list(stats.holm([0.6, 0.7])) == [1.0, 1.0]
    assert stats.holm([]).shape == (0,)


def _tiny() -> pd.DataFrame:
    vals = {("m1", 0): [1, 1, 0], ("m1", 1): [1, 0, 0], ("m2", 0): [0, 0, 0], ("m2", 1): [0, 0, 1]}
    rows = [_row(m, s, f"c{i}", "ac_at_1", float(v), fault_type="cpu" if i < 2 else "mem")
            for (m, s), vs in vals.items() for i, v in enumerate(vs)]
    return stats.validate_results(pd.DataFrame(rows))


def test_mean_std_over_seeds_and_per_fault_type():
    s = stats.summarize(_tiny(), seed=0, n_resamples=200).set_index("method")
    # per seed: m1 2/3 and 1/3, m2 0 and 1/3
    assert s.loc["m1", "mean"] == pytest.approx(0.5, abs=1e-15)
    assert s.loc["m1", "std"] == pytest.approx(math.sqrt(2) / 6, abs=1e-15)
    assert s.loc["m2", "mean"] == pytest.approx(1 / 6, abs=1e-15)
    assert s.loc["m2", "std"] == pytest.approx(math.sqrt(2) / 6, abs=1e-15)
    assert (s["n_seeds"] == 2).all() and (s["n_cases"] == 3).all()
    f = stats.summarize(_tiny(), seed=0, by_fault_type=True, n_resamples=200).set_index(["scope", "method"])
    assert f.loc[("cpu", "m1"), "mean"] == 0.75  # seeds: mean(1,1)=1, mean(1,0)=0.5
    assert f.loc[("mem", "m2"), "mean"] == 0.5  # seeds: 0, 1
    assert math.isnan(f.loc[("mem", "m2"), "ci_low"])  # one case: no interval


def test_bootstrap_is_seeded():
    df = _tiny()
    a = stats.summarize(df, seed=11, n_resamples=500)
    b = stats.summarize(df, seed=11, n_resamples=500)
    pd.testing.assert_frame_equal(a, b)
    v = np.array([0.0, 1.0, 0.5, 0.25, 1.0, 0.0, 0.75])
    lo, hi = stats.bootstrap_ci(v, [3, 4], n_resamples=1000)
    assert (lo, hi) == stats.bootstrap_ci(v, [3, 4], n_resamples=1000)
    assert lo < v.mean() < hi and lo >= 0.0 and hi <= 1.0
    assert (lo, hi) != stats.bootstrap_ci(v, [5, 4], n_resamples=1000)
    assert stats.bootstrap_ci(np.array([0.3, 0.3, 0.3]), 0) == (0.3, 0.3)
    assert all(math.isnan(x) for x in stats.bootstrap_ci(np.array([1.0]), 0))


def _exact_wilcoxon_two_sided(n: int, w: int) -> float:
    """P(W ≤ w) · 2 for the signed-rank statistic over all 2^n sign patterns (no ties)."""
    count = sum(1 for signs in itertools.product((0, 1), repeat=n)
                if sum(r for r, s in zip(range(1, n + 1), signs, strict=True) if s) <= w)
    return min(1.0, 2 * count / 2**n)


def test_wilcoxon_against_best_with_holm():
    a = np.array([0.9, 0.8, 0.85, 0.95, 0.7, 0.75, 0.65, 0.6])
    b = a - np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.05, 0.15, 0.25])  # worse on every case
    c = a + np.array([0.01, -0.02, 0.03, -0.04, 0.05, -0.06, 0.07, -0.08])  # mixed, mean 0.005 lower
    rows = [_row(m, 0, f"c{i}", "mrr", float(v)) for m, vs in (("a", a), ("b", b), ("c", c))
            for i, v in enumerate(vs)]
    df = stats.validate_results(pd.DataFrame(rows))
    summ = stats.summarize(df, seed=0, n_resamples=200)
    sig = stats.significance(df, summ).set_index("method")
    assert set(sig.index) == {"b", "c"} and (sig["best_method"] == "a").all() and (sig["n_pairs"] == 8).all()
    p_b = 2 / 2**8  # all eight differences negative
    p_c = _exact_wilcoxon_two_sided(8, 1 + 3 + 5 + 7)  # W+ = 16 < W- = 20
    assert sig.loc["b", "p_value"] == pytest.approx(p_b, abs=1e-12)
    assert sig.loc["c", "p_value"] == pytest.approx(p_c, abs=1e-12)
    assert sig.loc["b", "p_holm"] == pytest.approx(2 * p_b, abs=1e-12)
    assert sig.loc["c", "p_holm"] == pytest.approx(p_c, abs=1e-12)
    assert bool(sig.loc["b", "significantly_worse"]) and not bool(sig.loc["c", "significantly_worse"])


def test_markdown_and_latex_exact():
    summ = pd.DataFrame([
        ("d", "rca", "all", "alpha", "ac_at_1", 0.8, 0.05, 2, 10, 0.7, 0.9),
        ("d", "rca", "all", "alpha", "mrr", 0.85, math.nan, 1, 0, math.nan, math.nan),
        ("d", "rca", "all", "beta", "ac_at_1", 0.6, 0.1, 2, 10, 0.5, 0.7),
        ("d", "rca", "all", "beta", "mrr", 0.9, 0.02, 2, 10, 0.8, 0.95),
    ], columns=[*stats.GROUP, "mean", "std", "n_seeds", "n_cases", "ci_low", "ci_high"])
    sig = pd.DataFrame([("d", "rca", "all", "ac_at_1", "beta", "alpha", 10, 0.001, 0.002, True),
                        ("d", "rca", "all", "mrr", "alpha", "beta", 10, 0.3, 0.3, False)],
                       columns=["dataset", "task", "scope", "metric", "method", "best_method", "n_pairs",
                                "p_value", "p_holm", "significantly_worse"])
    header, rows = tables.build_table(summ, sig, dataset="d", task="rca",
                                      metrics=["ac_at_1", "mrr", "ac_at_5"])
    assert tables.to_markdown(header, rows) == (
        "| method | AC@1 | MRR |\n"
        "|---|---|---|\n"
        "| alpha | **0.80 ± 0.05 [0.70, 0.90]** | 0.85 |\n"
        "| beta | 0.60 ± 0.10 [0.50, 0.70] † | **0.90 ± 0.02 [0.80, 0.95]** |\n")
    # LaTeX: a float for a two-column paper; cells without the interval (it stays in md/csv)
    assert tables.to_latex(header, rows, "d: 5% of ± cases †", label="tab:d_rca x") == (
        "% Needs \\usepackage{booktabs} (rules) and \\usepackage{graphicx} (\\resizebox).\n"
        "\\begin{table}[tbp]\n\\centering\n"
        "\\caption{d: 5\\% of $\\pm$ cases $^{\\dagger}$}\n\\label{tab:d_rca-x}\n"
        "\\resizebox{\\ifdim\\width>\\columnwidth\\columnwidth\\else\\width\\fi}{!}{%\n"
        "\\begin{tabular}{lrr}\n\\toprule\nmethod & AC@1 & MRR \\\\\n\\midrule\n"
        "alpha & \\textbf{0.80 $\\pm$ 0.05} & 0.85 \\\\\n"
        "beta & 0.60 $\\pm$ 0.10$^{\\dagger}$ & \\textbf{0.90 $\\pm$ 0.02} \\\\\n"
        "\\bottomrule\n\\end{tabular}}\n\\end{table}\n")
    assert tables.tex_escape("a_b & 5%") == "a\\_b \\& 5\\%"


def test_ac_at_k_curve():
    rows = [_row("m", 0, "c0", "rank", 1.0), _row("m", 0, "c1", "rank", 3.0),
            _row("m", 0, "c2", "rank", math.nan)]
    rows += [_row("m", 0, f"c{i}", "n_services", 4.0) for i in range(3)]
    c = stats.ac_at_k_curve(stats.validate_results(pd.DataFrame(rows)))
    assert list(c["k"]) == [1, 2, 3, 4]
    assert list(c["ac"]) == pytest.approx([1 / 3, 1 / 3, 2 / 3, 2 / 3], abs=1e-15)


def test_report_settings_are_a_strict_frozen_config():
    import dataclasses
    from pathlib import Path

    import yaml

    from otlp_aiops.config import ConfigError
    from otlp_aiops.report.config import ReportConfig

    params = yaml.safe_load((Path(__file__).resolve().parents[2] / "params.yaml").read_text())
    cfg = ReportConfig.from_params(params)
    assert cfg.bootstrap_seed == params["report"]["bootstrap_seed"]
    assert ReportConfig.from_params({}) == ReportConfig(0, 0.05, 2000, "nemenyi")
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.alpha = 0.1  # type: ignore[misc]
    with pytest.raises(ConfigError, match=r"p.yaml report: unknown setting\(s\) bootstrap_sed"):
        ReportConfig.from_params({"report": {"bootstrap_sed": 1}}, "p.yaml")
    with pytest.raises(ConfigError, match="posthoc must be one of nemenyi, conover"):
        ReportConfig.from_params({"report": {"posthoc": "dunn"}})
    with pytest.raises(ConfigError, match="alpha must be between 0 and 1"):
        ReportConfig.from_params({"report": {"alpha": 5}})


def test_validation_errors_name_the_problem(tmp_path):
    df = _tiny()
    with pytest.raises(ValueError, match="missing columns \\['run_id'\\]"):
        stats.validate_results(df.drop(columns=["run_id"]), "x.csv")
    with pytest.raises(ValueError, match=r"2 duplicate rows.*d/rca/m1/seed 0/case 'c0'/ac_at_1"):
        stats.validate_results(pd.concat([df, df.iloc[:1]]), "x.csv")
    with pytest.raises(ValueError, match="row 0: task 'rcaa'"):
        stats.validate_results(df.assign(task="rcaa"), "x.csv")
    with pytest.raises(FileNotFoundError):
        stats.load_results(tmp_path / "nope")


def test_build_report_end_to_end(tmp_path):
    rng = np.random.default_rng(0)
    rows = []
    for m, skill in (("baro", 0.9), ("nsigma", 0.6), ("random", 0.2)):
        for seed in (0, 1):
            for i in range(12):
                rank = 1.0 if rng.random() < skill else float(rng.integers(2, 6))
                ft = "cpu" if i % 2 else "mem"
                avg5 = float(sum(rank <= k for k in range(1, 6)) / 5)
                for metric, v in (("ac_at_1", float(rank == 1)), ("ac_at_3", float(rank <= 3)),
                                  ("ac_at_5", 1.0), ("avg_at_5", avg5),
                                  ("mrr", 1 / rank), ("seconds", 0.01), ("rank", rank), ("n_services", 5.0)):
                    rows.append(_row(m, seed, f"c{i}", metric, v, fault_type=ft))
        rows.append(_row(m, 0, "", "vus_pr", skill, task="detect", fault_type=""))
    res = tmp_path / "results"
    res.mkdir()
    pd.DataFrame(rows).to_csv(res / "all.csv", index=False)
    import matplotlib

    backend = matplotlib.get_backend()
    out = build_report([res], tmp_path / "tables", tmp_path / "figures", seed=3, n_resamples=200)
    assert out["datasets"] == ["d"] and out["methods"]["rca"] == ["baro", "nsigma", "random"]
    assert out["best"]["d/rca/avg_at_5"] == "baro"
    names = {p.name for p in (tmp_path / "tables").iterdir()}
    assert {"d_rca.md", "d_rca.tex", "d_rca.csv", "d_rca_by_fault.md", "d_detect.md", "summary.csv",
            "d_rca_ac_at_k.csv", "d_rca_ac_at_k.json", "d_rca_ac_at_k_wide.csv"} <= names
    assert not any(n.endswith(".tmp") for n in names)
    assert (tmp_path / "figures" / "rca_avg_at_5_cd.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "figures" / "d_rca_ac_at_k.png").exists()
    too_few = "detect_vus_pr_cd: critical difference needs at least 2 blocks"
    assert any(s.startswith(too_few) for s in out["skipped"])
    md = (tmp_path / "tables" / "d_rca.md").read_text()
    # no timing column: tables are tracked outputs and must be the same bytes run after run
    assert md.splitlines()[2] == "| method | AC@1 | AC@3 | AC@5 | Avg@5 | MRR |"
    assert "| baro | **" in md
    curve = pd.read_csv(tmp_path / "tables" / "d_rca_ac_at_k.csv")
    assert list(curve.columns) == ["method", "k", "ac"] and curve["k"].max() == 5
    assert (curve.loc[curve["k"] == 5, "ac"] == 1.0).all()
    import matplotlib

    assert matplotlib.get_backend() == backend  # the report never switches the caller's backend


def test_tied_wilcoxon_equals_scipy():
    # ties and a zero difference: scipy's "auto" runs an exact permutation test; ours enumerates
    from scipy.stats import wilcoxon

    x = np.array([1.0, 1.0, 0.0, 1.0, 0.5, 1.0, 0.0])
    y = np.array([0.0, 0.0, 0.0, 1.0, 0.0, 0.5, 1.0])
    assert stats._wilcoxon_p(x, y) == wilcoxon(x, y).pvalue
    # d = 1, 1, 0.5, 0.5, -1 (zeros dropped); midranks 4, 4, 1.5, 1.5, 4 → W+ = 11; 32 patterns
    r = np.array([4, 4, 1.5, 1.5, 4])
    null = [sum(r[i] for i in range(5) if (k >> i) & 1) for k in range(32)]
    assert stats._wilcoxon_p(x, y) == 2 * min(np.mean(np.array(null) <= 11), np.mean(np.array(null) >= 11))


# --- leaderboard, README block, LaTeX floats, the HTML report ------------------------------------


def _board_rows() -> pd.DataFrame:
    rows = []
    # ranker "a": seed 0 hits 2 of 4 cases at rank 1, seed 1 hits 3 of 4; "b" deterministic (one seed)
    for seed, ranks in ((0, [1, 1, 2, 4]), (1, [1, 1, 1, 3])):
        for i, r in enumerate(ranks):
            for metric, v in (("ac_at_1", float(r == 1)), ("ac_at_3", float(r <= 3)),
                              ("avg_at_5", sum(r <= k for k in range(1, 6)) / 5), ("mrr", 1 / r),
                              ("ac_at_5", 1.0), ("rank", float(r))):
                rows.append(_row("a", seed, f"c{i}", metric, v))
    for i, r in enumerate([2, 2, 1, 6]):
        rows.append(_row("b", 0, f"c{i}", "ac_at_1", float(r == 1)))
        rows.append(_row("b", 0, f"c{i}", "mrr", 1 / r))
    # a protocol variant is not a dataset of its own: left out
    rows.append(_row("a", 0, "c0", "ac_at_1", 0.0, dataset="d+offset60s"))
    # detectors: series-level values, one per seed
    for seed, (vus, f1, fa) in enumerate([(0.8, 0.5, 2.0), (0.7, 0.6, 4.0)]):
        for metric, v in (("vus_pr", vus), ("range_f1", f1), ("false_alarms_per_hour", fa), ("auc_pr", 0.1)):
            rows.append(_row("iforest", seed, "", metric, v, task="detect", fault_type=""))
    return stats.validate_results(pd.DataFrame(rows))


def test_leaderboard_exact_values():
    from otlp_aiops.report import leaderboard as lb

    board = lb.leaderboard(_board_rows())
    assert board == {"d": {
        "rca": {
            # AC@1: seeds 2/4 and 3/4 -> 0.625; AC@3: 3/4 and 4/4 -> 0.875; Avg@5 per seed
            # (5+5+4+2)/20=0.8, (5+5+5+3)/20=0.9 -> 0.85; MRR (1+1+.5+.25)/4=.6875,
            # (1+1+1+1/3)/4=.8333 -> 0.7604
            "a": {"ac_at_1": 0.625, "ac_at_3": 0.875, "avg_at_5": 0.85, "mrr": 0.7604},
            "b": {"ac_at_1": 0.25, "mrr": 0.5417},  # (0.5+0.5+1+1/6)/4
        },
        "detect": {"iforest": {"vus_pr": 0.75, "range_f1": 0.55, "false_alarms_per_hour": 3.0}},
    }}
    assert list(board["d"]) == ["rca", "detect"]
    text = lb.leaderboard_json(board)
    assert text.endswith("}\n") and json.loads(text) == board  # what `dvc metrics show` reads


def _key_paths(d: dict, prefix: str = "") -> list[str]:
    """The dotted key paths of a nested dict's leaves: the column names `dvc exp show` gives a
    file's values."""
    out = []
    for k, v in d.items():
        out += _key_paths(v, f"{prefix}{k}.") if isinstance(v, dict) else [f"{prefix}{k}"]
    return out


def test_write_leaderboard_one_file_dataset_task_method_metric(tmp_path):
    from otlp_aiops.report import leaderboard as lb

    df = _board_rows()
    # "d+offset60s": left out
    two = pd.concat([df[df["dataset"] == "d"].assign(dataset="e"), df], ignore_index=True)
    path = lb.write_leaderboard(lb.leaderboard(two), tmp_path / "metrics" / "leaderboard.json")
    assert path == tmp_path / "metrics" / "leaderboard.json"
    assert sorted(p.name for p in (tmp_path / "metrics").iterdir()) == ["headline.json", "leaderboard.json"]
    board = json.loads(path.read_text())
    per_ds = ["rca.a.ac_at_1", "rca.a.ac_at_3", "rca.a.avg_at_5", "rca.a.mrr", "rca.b.ac_at_1", "rca.b.mrr",
              "detect.iforest.vus_pr", "detect.iforest.range_f1", "detect.iforest.false_alarms_per_hour"]
    assert _key_paths(board) == [f"{ds}.{k}" for ds in ("d", "e") for k in per_ds]
    # the DVC metric: Avg@5 and VUS-PR only ("b" has no Avg@5, so it is left out)
    head = json.loads((tmp_path / "metrics" / "headline.json").read_text())
    assert _key_paths(head) == [f"{ds}.{k}" for ds in ("d", "e")
                                for k in ("rca.a.avg_at_5", "detect.iforest.vus_pr")]
    assert head["d"]["rca"]["a"]["avg_at_5"] == board["d"]["rca"]["a"]["avg_at_5"]
    assert board["e"] == board["d"] and board["d"]["rca"]["a"]["mrr"] == 0.7604
    # written again with fewer datasets: the one file holds exactly those
    lb.write_leaderboard(lb.leaderboard(df), path)
    assert list(json.loads(path.read_text())) == ["d"]


def test_committed_leaderboard_is_the_dvc_metric_of_the_benchmark_datasets():
    """metrics/headline.json: the report stage's one DVC metrics file, the headline of
    metrics/leaderboard.json (an output), a dataset per benchmark.datasets."""
    from pathlib import Path

    import yaml

    from otlp_aiops.report import leaderboard as lb

    root = Path(__file__).resolve().parents[2]
    stage = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]["report"]
    assert [next(iter(m)) for m in stage["metrics"]] == ["metrics/headline.json"]
    assert "metrics/leaderboard.json" in [next(iter(m)) if isinstance(m, dict) else m for m in stage["outs"]]
    board = json.loads((root / "metrics" / "leaderboard.json").read_text())
    assert json.loads((root / "metrics" / "headline.json").read_text()) == lb.headline(board)
    params = yaml.safe_load((root / "params.yaml").read_text())
    assert sorted(board) == sorted(params["benchmark"]["datasets"])
    for ds, tasks in board.items():
        assert list(tasks) == ["rca", "detect"], ds
        assert sorted(tasks["rca"]) == sorted(m for m in tasks["rca"] if m.split("-transfer")[0] in
                                              params["benchmark"]["rca"])
        for task, methods in tasks.items():
            for method, vals in methods.items():
                assert list(vals) == [k for k in lb.HEADLINE[task] if k in vals] and vals, (ds, task, method)


def test_leaderboard_markdown_and_readme_block(tmp_path):
    from otlp_aiops.report import leaderboard as lb

    df = _board_rows()
    summ = stats.summarize(df, seed=0, n_resamples=200)
    sig = stats.significance(df, summ)
    md = lb.leaderboard_markdown(summ, sig, datasets=["d"])
    lines = md.splitlines()
    assert lines[0] == "| ranker (d) | AC@1 | AC@3 | Avg@5 | MRR |"
    assert lines[2] == "| a | **0.62 ± 0.18** | **0.88 ± 0.18** | **0.85 ± 0.07** | **0.76 ± 0.10** |"
    assert lines[3] == "| b | 0.25 | — | — | 0.54 |"
    assert "| detector (d) | VUS-PR | R-F1 | FA/h |" in lines
    assert "| iforest | **0.75 ± 0.07** | **0.55 ± 0.07** | **3.00 ± 1.41** |" in lines
    # two datasets: the cross-dataset tables, datasets as columns in the given order
    two = pd.concat([df, df.assign(dataset="e")], ignore_index=True)
    s2 = stats.summarize(two, seed=0, n_resamples=200)
    md2 = lb.leaderboard_markdown(s2, stats.significance(two, s2), datasets=["e", "d"])
    assert md2.splitlines()[0] == "| ranker (Avg@5) | e | d |"
    assert "| b | — | — |" in md2 and "| detector (VUS-PR / R-F1) | e | d |" in md2

    readme = tmp_path / "README.md"
    readme.write_text("# x\n<!-- leaderboard -->\nold\n<!-- /leaderboard -->\nrest\n")
    table = tmp_path / "leaderboard.md"
    table.write_text("| a |\n|---|\n")
    assert lb.update_readme(readme, table) is True
    assert readme.read_text() == "# x\n<!-- leaderboard -->\n| a |\n|---|\n<!-- /leaderboard -->\nrest\n"
    assert lb.update_readme(readme, table) is False
    readme.write_text("no markers\n")
    with pytest.raises(ValueError, match="no <!-- leaderboard -->"):
        lb.update_readme(readme, table)


def test_readme_shows_the_committed_leaderboard():
    """The README's tables are the report's leaderboard.md, copied by
    `otlp-aiops report --readme README.md`."""
    from pathlib import Path

    from otlp_aiops.report import leaderboard as lb

    root = Path(__file__).resolve().parents[2]
    text = (root / "README.md").read_text(encoding="utf-8")
    checked = 0
    for marker, path in (("leaderboard", "benchmarks/tables/leaderboard.md"),
                         ("leaderboard-real", "benchmarks/real/tables/leaderboard.md")):
        if f"<!-- {marker} -->" not in text or not (root / path).exists():
            continue
        block = (root / path).read_text(encoding="utf-8")
        assert lb.replace_between_markers(text, block, marker) == text, f"README block {marker} != {path}"
        checked += 1
    assert checked >= 1


def _report_rows() -> list[dict]:
    rng = np.random.default_rng(1)
    rows = []
    for m, skill in (("baro", 0.9), ("nsigma", 0.6), ("random", 0.2)):
        for seed in (0, 1):
            for i in range(8):
                rank = 1.0 if rng.random() < skill else float(rng.integers(2, 7))
                ft = "cpu" if i % 2 else "mem"
                for metric, v in (("ac_at_1", float(rank == 1)), ("ac_at_3", float(rank <= 3)),
                                  ("avg_at_5", float(sum(rank <= k for k in range(1, 6)) / 5)),
                                  ("mrr", 1 / rank), ("rank", rank), ("n_services", 6.0)):
                    rows.append(_row(m, seed, f"inc-{i}", metric, v, fault_type=ft))
    for m, vus in (("pca", 0.9), ("iforest", 0.7)):
        rows.append(_row(m, 0, "", "vus_pr", vus, task="detect", fault_type=""))
        rows.append(_row(m, 0, "", "range_f1", vus - 0.2, task="detect", fault_type=""))
        for metric in ("auc_pr", "range_precision", "range_recall", "false_alarms_per_hour", "pa_f1"):
            rows.append(_row(m, 0, "", metric, vus / 2, task="detect", fault_type=""))
        for i in range(8):
            rows.append(_row(m, 0, f"inc-{i}", "detected", float(i % 3 != 0), task="detect",
                             fault_type="cpu"))
            rows.append(_row(m, 0, f"inc-{i}", "detection_delay_s", 15.0 if i % 3 else math.nan,
                             task="detect", fault_type="cpu"))
    return rows


def test_html_report_is_offline_and_complete(tmp_path):
    import json as _json
    import re

    import pyarrow as pa
    import pyarrow.parquet as pq

    from otlp_aiops.report import html

    raw, interim = tmp_path / "raw" / "d", tmp_path / "interim" / "d"
    raw.mkdir(parents=True)
    interim.mkdir(parents=True)
    (raw / "dataset.json").write_text(_json.dumps({"name": "demo", "source": "a test", "licence": "CC-BY-4.0",
                                                   "counts": {"spans": 1200, "logs": 30}}))
    pq.write_table(pa.table({"incident_id": [f"inc-{i}" for i in range(8)],
                             "root_cause_service": [f"svc{i % 3}" for i in range(8)],
                             "fault_type": ["mem", "cpu"] * 4}), raw / "incidents.parquet")
    (interim / "ingest_report.json").write_text(_json.dumps({"totals": {
        "files": 2, "bytes": 3 * 2**20, "records_read": 1230, "records_quarantined": 0,
        "rows_written": {"spans": 1200, "logs": 30, "metrics_number": 500}}}))
    card = html.dataset_card("d", raw, interim)
    fields = dict(card.fields)
    assert fields["licence"] == "CC-BY-4.0" and fields["source"] == "a test"
    assert fields["signals"] == "traces (1,200 spans), logs (30 records), metrics (500 points)"
    assert fields["incidents"] == "8" and card.fault_types == {"cpu": 4, "mem": 4} and not card.missing
    assert card.root_causes["inc-4"] == "svc1"

    res = tmp_path / "results"
    res.mkdir()
    pd.DataFrame(_report_rows()).to_csv(res / "all.csv", index=False)
    page_path = tmp_path / "report" / "index.html"
    build_report([res], tmp_path / "tables", tmp_path / "figures", seed=0, n_resamples=100,
                 html_path=page_path, cards={"d": card})
    page = page_path.read_text()
    # no network: every src / href is a data: URI or an in-page anchor; no http(s) URL anywhere
    refs = re.findall(r'(?:src|href)\s*=\s*"([^"]*)"', page)
    assert refs and all(r.startswith(("data:image/png;base64,", "#")) for r in refs)
    assert not re.search(r"https?://", page) and "<script" not in page and "@import" not in page
    assert page.count("data:image/png;base64,") == 2  # the AC@k curve and the CD diagram
    assert "CC-BY-4.0" in page and "traces (1,200 spans)" in page  # the dataset card
    assert "Per-case drill-down: d" in page
    # drill-down row: case, fault type, true root cause, then each ranker's mean rank over seeds
    assert re.search(r"<td class=\"text\">inc-4</td><td class=\"text\">mem</td>"
                     r"<td class=\"text\">svc1</td>", page)
    assert "missed" in page and "100% · 15 s" in page  # detectors per incident
    assert "| ranker (d) |" not in page and "<th>ranker (d)</th>" in page  # leaderboard as HTML


def test_report_outputs_are_the_same_bytes_twice(tmp_path):
    """Two processes with different string-hash seeds (set order differs) write the same bytes."""
    import os
    import subprocess
    import sys

    res = tmp_path / "results"
    res.mkdir()
    pd.DataFrame(_report_rows()).to_csv(res / "all.csv", index=False)
    code = ("import sys; from pathlib import Path; from otlp_aiops.report.build import build_report; "
            "o = Path(sys.argv[2]); build_report([sys.argv[1]], o / 'tables', o / 'figures', seed=0, "
            "n_resamples=100, html_path=o / 'report' / 'index.html')")
    outs = []
    for run, hash_seed in (("a", "1"), ("b", "2")):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed, "MPLBACKEND": "Agg"}
        subprocess.run([sys.executable, "-c", code, str(res), str(tmp_path / run)], check=True, env=env,
                       timeout=300)
        outs.append({p.relative_to(tmp_path / run): p.read_bytes()
                     for p in sorted((tmp_path / run).rglob("*")) if p.is_file()})
    assert outs[0].keys() == outs[1].keys() and len(outs[0]) >= 20
    assert [k for k in outs[0] if outs[0][k] != outs[1][k]] == []


def test_latex_tables_are_floats_for_a_two_column_paper(tmp_path):
    res = tmp_path / "results"
    res.mkdir()
    pd.DataFrame(_report_rows()).to_csv(res / "all.csv", index=False)
    build_report([res], tmp_path / "tables", tmp_path / "figures", seed=0, n_resamples=100)
    for name in ("d_rca", "d_rca_by_fault", "d_detect"):
        tex = (tmp_path / "tables" / f"{name}.tex").read_text()
        lines = tex.splitlines()
        assert lines[0].startswith("% Needs \\usepackage{booktabs}") and "graphicx" in lines[0]
        assert lines[1] == "\\begin{table}[tbp]" and lines[-1] == "\\end{table}"
        assert lines[3].startswith("\\caption{d: ") and lines[4] == f"\\label{{tab:{name}}}"
        assert lines[5] == "\\resizebox{\\ifdim\\width>\\columnwidth\\columnwidth\\else\\width\\fi}{!}{%"
        assert "\\toprule" in lines and "\\midrule" in lines and "\\bottomrule" in lines
        assert lines[-2] == "\\end{tabular}}"
        assert "±" not in tex and "†" not in tex  # math-mode forms only
        assert tex.count("{") == tex.count("}") + tex.count("\\{") - tex.count("\\}")
        assert "p $<$ 0.05" in lines[3]  # a bare "<" prints "¡" in an OT1 text font
    body = (tmp_path / "tables" / "d_rca.tex").read_text()
    assert "[" not in body.split("\\midrule")[1]  # no interval in the LaTeX cells
    # at most five metric columns in LaTeX (the Markdown keeps all eight detection metrics)
    det = (tmp_path / "tables" / "d_detect.tex").read_text().splitlines()
    assert det[det.index("\\toprule") + 1] == "method & VUS-PR & AUC-PR & R-F1 & delay (s) & FA/h \\\\"
    assert (tmp_path / "tables" / "d_detect.md").read_text().splitlines()[2].count("|") == 10
