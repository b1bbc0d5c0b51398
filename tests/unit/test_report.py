"""Report: Holm, mean ± std over seeds, bootstrap determinism, Wilcoxon vs the best, the table
writers' exact output and the whole build on a tiny results table."""

from __future__ import annotations

import itertools
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
    header, rows = tables.build_table(summ, sig, dataset="d", task="rca", metrics=["ac_at_1", "mrr", "ac_at_5"])
    assert tables.to_markdown(header, rows) == (
        "| method | AC@1 | MRR |\n"
        "|---|---|---|\n"
        "| alpha | **0.80 ± 0.05 [0.70, 0.90]** | 0.85 |\n"
        "| beta | 0.60 ± 0.10 [0.50, 0.70] † | **0.90 ± 0.02 [0.80, 0.95]** |\n")
    assert tables.to_latex(header, rows) == (
        "\\begin{tabular}{lrr}\n\\toprule\nmethod & AC@1 & MRR \\\\\n\\midrule\n"
        "alpha & \\textbf{0.80 $\\pm$ 0.05 [0.70, 0.90]} & 0.85 \\\\\n"
        "beta & 0.60 $\\pm$ 0.10 [0.50, 0.70]$^{\\dagger}$ & \\textbf{0.90 $\\pm$ 0.02 [0.80, 0.95]} \\\\\n"
        "\\bottomrule\n\\end{tabular}\n")
    assert tables.tex_escape("a_b & 5%") == "a\\_b \\& 5\\%"


def test_ac_at_k_curve():
    rows = [_row("m", 0, "c0", "rank", 1.0), _row("m", 0, "c1", "rank", 3.0), _row("m", 0, "c2", "rank", math.nan)]
    rows += [_row("m", 0, f"c{i}", "n_services", 4.0) for i in range(3)]
    c = stats.ac_at_k_curve(stats.validate_results(pd.DataFrame(rows)))
    assert list(c["k"]) == [1, 2, 3, 4]
    assert list(c["ac"]) == pytest.approx([1 / 3, 1 / 3, 2 / 3, 2 / 3], abs=1e-15)


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
                for metric, v in (("ac_at_1", float(rank == 1)), ("ac_at_3", float(rank <= 3)),
                                  ("ac_at_5", 1.0), ("avg_at_5", float(sum(rank <= k for k in range(1, 6)) / 5)),
                                  ("mrr", 1 / rank), ("seconds", 0.01), ("rank", rank), ("n_services", 5.0)):
                    rows.append(_row(m, seed, f"c{i}", metric, v, fault_type=ft))
        rows.append(_row(m, 0, "", "vus_pr", skill, task="detect", fault_type=""))
    res = tmp_path / "results"
    res.mkdir()
    pd.DataFrame(rows).to_csv(res / "all.csv", index=False)
    out = build_report([res], tmp_path / "tables", tmp_path / "figures", seed=3, n_resamples=200)
    assert out["datasets"] == ["d"] and out["methods"]["rca"] == ["baro", "nsigma", "random"]
    assert out["best"]["d/rca/avg_at_5"] == "baro"
    names = {p.name for p in (tmp_path / "tables").iterdir()}
    assert {"d_rca.md", "d_rca.tex", "d_rca.csv", "d_rca_by_fault.md", "d_detect.md", "summary.csv",
            "d_rca_ac_at_k.csv", "d_rca_ac_at_k.json", "d_rca_ac_at_k_wide.csv"} <= names
    assert not any(n.endswith(".tmp") for n in names)
    assert (tmp_path / "figures" / "rca_avg_at_5_cd.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "figures" / "d_rca_ac_at_k.png").exists()
    assert any(s.startswith("detect_vus_pr_cd: critical difference needs at least 2 blocks") for s in out["skipped"])
    md = (tmp_path / "tables" / "d_rca.md").read_text()
    assert md.splitlines()[2] == "| method | AC@1 | AC@3 | AC@5 | Avg@5 | MRR | s/case |"
    assert "| baro | **" in md
    curve = pd.read_csv(tmp_path / "tables" / "d_rca_ac_at_k.csv")
    assert list(curve.columns) == ["method", "k", "ac"] and curve["k"].max() == 5
    assert (curve.loc[curve["k"] == 5, "ac"] == 1.0).all()
    import matplotlib

    assert matplotlib.get_backend().lower() == "agg"


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
