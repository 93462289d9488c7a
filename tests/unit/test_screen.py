"""hlm batch --by (hlm_cli.workflows.screen): splitting, names, level sets, one model structure
for features with different observed levels, lfsr, features.csv, errors. Nothing is sampled."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from hlm_cli.cli.app import main
from hlm_cli.errors import InputError
from hlm_cli.workflows import screen

FORMULA = "expr ~ treatment + (1|cell_line)"


def screen_table(genes: int = 4, lines: int = 4, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = [(f"g{i}", f"CL{j}", t, r, rng.normal()) for i in range(genes) for j in range(lines)
            for t in ("control", "treated") for r in range(2)]
    return pd.DataFrame(rows, columns=["gene", "cell_line", "treatment", "replicate", "expr"])


# -- names and splitting


def test_safe_names_keep_plain_names_and_sanitize_the_rest():
    assert screen.safe_names(["KRAS", "gene_001", "a.b-c"]) == ["KRAS", "gene_001", "a.b-c"]
    assert screen.safe_names(["HLA-A/B", ".hidden", "x y", ""]) == ["HLA-A_B", "_hidden", "x_y", "feature"]
    assert len(screen.safe_names(["x" * 200])[0]) == 80


def test_safe_names_disambiguate_collisions_by_the_original_name_not_the_order():
    a = screen.safe_names(["A/B", "A_B", "c"])
    b = screen.safe_names(["c", "A_B", "A/B"])
    assert a[0] != a[1] and a[0].startswith("A_B-") and a[1].startswith("A_B-") and a[2] == "c"
    assert {a[0], a[1]} == {b[2], b[1]} and a[0] == b[2]
    low = screen.safe_names(["KRAS", "kras"])  # one directory on a case-insensitive file system
    assert low[0].lower() != low[1].lower()


def test_split_keeps_order_of_appearance_and_every_column():
    df = screen_table(3)
    df = pd.concat([df[df.gene == "g2"], df[df.gene != "g2"]])
    parts = screen.split(df, "gene")
    assert [f for f, _ in parts] == ["g2", "g0", "g1"]
    assert all(len(rows) == 16 and list(rows.columns) == list(df.columns) for _, rows in parts)
    assert set(parts[0][1]["gene"]) == {"g2"}


def test_split_refuses_a_missing_column_with_a_hint():
    with pytest.raises(InputError, match="--by column 'gen' is not in screen.csv") as err:
        screen.split(screen_table(), "gen", "screen.csv")
    assert "gene" in err.value.hint


def test_split_refuses_empty_feature_names():
    df = screen_table()
    df.loc[3, "gene"] = None
    with pytest.raises(InputError, match="1 empty value"):
        screen.split(df, "gene")


# -- level sets and one structure


def test_level_sets_are_the_whole_tables_sorted_levels():
    df = screen_table(2, 3)
    df.loc[df.gene == "g1", "cell_line"] = "CL9"
    assert screen.level_sets(df, [FORMULA], "gene") == {"cell_line": ["CL0", "CL1", "CL2", "CL9"]}
    both = screen.level_sets(df, ["expr ~ treatment + (1|cell_line:treatment)"], "gene")
    assert both["cell_line:treatment"][:2] == ["CL0:control", "CL0:treated"]


def test_level_sets_refuse_by_as_a_grouping_factor():
    with pytest.raises(InputError, match="also a grouping factor") as err:
        screen.level_sets(screen_table(), ["expr ~ treatment + (1|gene)"], "gene")
    assert "drop" in err.value.hint


def test_design_uses_the_given_level_set_and_refuses_a_level_outside_it():
    from hlm_cli.formula import parse
    from hlm_cli.formula.design import build_design

    df = screen_table(1, 3)
    formula = parse(FORMULA, list(df.columns))
    d = build_design(formula, df, group_levels={"cell_line": ["CL0", "CL1", "CL2", "CL7"]})
    g = d.groups[0]
    assert g.levels == ["CL0", "CL1", "CL2", "CL7"]
    assert g.n_obs_per_level.tolist() == [4, 4, 4, 0]
    assert list(np.asarray(g.levels)[g.index]) == df["cell_line"].tolist()
    assert build_design(formula, df).groups[0].levels == ["CL0", "CL1", "CL2"]  # unchanged without
    with pytest.raises(InputError, match="'CL2', which is not in its level set"):
        build_design(formula, df, group_levels={"cell_line": ["CL0", "CL1"]})


def _feature_files(tmp_path: Path, n: int) -> tuple[list[Path], dict]:
    """n features of 32 rows each, observed in 8, 7, 6 or 5 of 8 cell lines (more replicates
    where fewer lines)."""
    rng = np.random.default_rng(1)
    lines = [f"CL{j}" for j in range(8)]
    frames = []
    for i in range(n):
        seen = lines[: 8 - i % 4]
        cl = [seen[k % len(seen)] for k in range(32)]
        frames.append(pd.DataFrame({"gene": f"g{i:02d}", "cell_line": cl, "treatment": ["control", "treated"] * 16,
                                    "expr": rng.normal(size=32)}))
    table = pd.concat(frames, ignore_index=True)
    parts = screen.split(table, "gene")
    named = screen.write_features(tmp_path, parts, screen.safe_names([f for f, _ in parts]))
    return [Path(p) for p, _ in named], screen.level_sets(table, [FORMULA], "gene")


@pytest.mark.parametrize("parameterization", ["noncentered", "auto"])
def test_twenty_features_with_different_observed_levels_share_one_model_structure(tmp_path, parameterization):
    """The compile cache keys compiled models by BuiltModel.structure_key: one key, one compile
    (the e2e test counts the compiles of a real batch)."""
    from hlm_cli.spec import FitSpec
    from hlm_cli.workflows.fit import prepare

    files, levels = _feature_files(tmp_path, 20)

    def key(path, group_levels):
        spec = FitSpec(data=path, formula=FORMULA, out=tmp_path / "o", group_levels=group_levels,
                       sampler={"parameterization": parameterization})
        return prepare(spec).built.structure_key

    keys = {key(p, levels) for p in files}
    without = {key(p, {}) for p in files}
    if parameterization == "noncentered":
        assert len(keys) == 1
        assert len(without) == 4  # 8, 7, 6, 5 observed levels: what the level sets avoid
    else:  # the automatic choice may still pick the centered form for some features
        assert len(keys) <= 2 < len(without)


def test_feature_files_are_stable_and_fingerprints_of_other_batches_unchanged(tmp_path):
    from hlm_cli.outputs.batch_out import fingerprint
    from hlm_cli.spec import FitSpec

    df = screen_table(3)
    parts = screen.split(df, "gene")
    names = screen.safe_names([f for f, _ in parts])
    first = [Path(p).read_bytes() for p, _ in screen.write_features(tmp_path, parts, names)]
    second = [Path(p).read_bytes() for p, _ in screen.write_features(tmp_path, parts, names)]
    assert first == second
    assert json.loads((tmp_path / ".features" / "features.json").read_text()) == {"g0": "g0", "g1": "g1", "g2": "g2"}
    back = pd.read_parquet(tmp_path / ".features" / "g1.parquet")
    pd.testing.assert_frame_equal(back, parts[1][1].reset_index(drop=True))
    base = FitSpec(data="x.csv", formula=FORMULA, out="o").model_dump(mode="json")
    plain = {k: v for k, v in base.items() if k not in ("group_levels", "lean")}
    assert fingerprint(base) == fingerprint(plain)  # the new settings leave old fingerprints alone
    assert fingerprint({**base, "group_levels": {"cell_line": ["a", "b"]}}) != fingerprint(base)
    assert fingerprint({**base, "lean": True}) != fingerprint(base)


# -- lfsr and the tables


def test_sign_stats_lfsr_and_p_direction():
    assert screen.sign_stats(np.array([-1.0, 1.0, 2.0, 3.0])) == (0.75, 0.25)
    assert screen.sign_stats(np.array([-3.0, -2.0, -1.0, 1.0])) == (0.75, 0.25)
    # a draw at exactly 0 counts against both signs (Stephens: P(b >= 0), P(b <= 0))
    assert screen.sign_stats(np.array([0.0, 0.0, 1.0, 1.0])) == (0.5, 0.5)
    assert screen.sign_stats(np.array([1.0, 2.0, 3.0])) == (1.0, 0.0)


def test_selection_and_estimated_false_sign_rate():
    t = pd.DataFrame({"feature": list("abcd") * 2, "term": ["x"] * 4 + ["y"] * 4,
                      "lfsr": [0.01, 0.03, 0.2, 0.049, 0.5, 0.5, 0.5, 0.001]})
    out, summ = screen.select(t, 0.05)
    assert out["selected"].tolist() == [True, True, False, True, False, False, False, True]
    s = summ.set_index("term")
    assert s.loc["x", "selected"] == 3 and s.loc["x", "est_false_sign_rate"] == pytest.approx((0.01 + 0.03 + 0.049) / 3)
    assert s.loc["y", "selected"] == 1 and s.loc["y", "est_false_sign_rate"] == pytest.approx(0.001)
    none, summ = screen.select(t, None)
    assert none["selected"].isna().all() and summ.empty


def test_ash_learns_the_null_share_and_keeps_the_selection_honest():
    """Adaptive shrinkage: 70% null effects; the per-feature lfsr (flat prior) selects about
    10% of the nulls at 0.05, the shrunk lfsr almost none, and its mean estimates the truth."""
    rng = np.random.default_rng(0)
    n = 1000
    effect = np.where(rng.random(n) < 0.7, 0.0, rng.normal(0, 2.0, n))
    se = np.full(n, 0.4)
    bhat = effect + rng.normal(0, se)
    res = screen.ash(bhat, se)
    assert res["pi0"][0] == pytest.approx(0.7, abs=0.08)
    naive = np.array([min(np.mean(d >= 0), np.mean(d <= 0)) for d in (b + rng.normal(0, 0.4, 2000) for b in bhat)])
    for lfsr, limit in ((res["lfsr"], 0.05), (naive, None)):
        sel = lfsr < 0.05
        wrong = np.mean((effect[sel] == 0) | (np.sign(effect[sel]) != np.sign(bhat[sel])))
        if limit is None:
            assert wrong > 0.1  # what per-feature lfsr does with many nulls
        else:
            assert wrong < limit and lfsr[sel].mean() == pytest.approx(wrong, abs=0.03)
    assert abs(res["mean"][effect == 0]).mean() < abs(bhat[effect == 0]).mean() / 2  # nulls shrunk
    assert np.isnan(screen.ash(np.array([1.0, np.nan]), np.array([1.0, 1.0]))["lfsr"]).all()  # too few


def test_selection_uses_the_shrunk_lfsr_when_present():
    t = pd.DataFrame({"feature": list("abc"), "term": "x", "lfsr": [0.01, 0.01, 0.3], "lfsr_ash": [0.02, 0.2, 0.01]})
    out, summ = screen.select(t, 0.05)
    assert out["selected"].tolist() == [True, False, True]
    assert summ.loc[0, "lfsr_column"] == "lfsr_ash" and summ.loc[0, "est_false_sign_rate"] == pytest.approx(0.015)


def _fake_run(folder: Path, seed: int = 0) -> tuple[Path, dict]:
    """A run directory as hlm fit writes it (run.json, posterior.nc), with known draws."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    draws = {"Intercept": rng.normal(1, 0.1, (2, 100)), "treatment": rng.normal(-0.05, 0.1, (2, 100, 1))}
    post = xr.Dataset({"Intercept": (("chain", "draw"), draws["Intercept"]),
                       "treatment": (("chain", "draw", "treatment_dim"), draws["treatment"])},
                      coords={"treatment_dim": ["treated"]})
    xr.DataTree.from_dict({"posterior": post}).to_netcdf(folder / "posterior.nc", engine="h5netcdf")
    info = {"parameters": {"population": ["Intercept", "treatment"]}, "config": {"ci": 0.9}, "data": {"sha256": "abc"}}
    (folder / "run.json").write_text(json.dumps(info))
    return folder, draws


def test_feature_rows_from_a_run_directory(tmp_path):
    run, draws = _fake_run(tmp_path / "g1")
    rows = {r["term"]: r for r in screen.feature_rows(run, ci=0.9)}
    assert list(rows) == ["Intercept", "treatment[treated]"]
    b = draws["treatment"].reshape(-1)
    r = rows["treatment[treated]"]
    assert r["mean"] == pytest.approx(b.mean()) and r["sd"] == pytest.approx(b.std(ddof=1))
    assert (r["lower"], r["upper"]) == pytest.approx(tuple(np.quantile(b, [0.05, 0.95])))
    assert r["lfsr"] == pytest.approx(min((b >= 0).mean(), (b <= 0).mean()))
    assert rows["Intercept"]["lfsr"] == 0.0 and rows["Intercept"]["p_direction"] == 1.0


def test_features_csv_columns_and_failed_features(tmp_path):
    from hlm_cli.outputs.batch_out import Entry

    _fake_run(tmp_path / "g1")
    (tmp_path / ".features").mkdir()
    (tmp_path / ".features" / "features.json").write_text(json.dumps({"g1": "g/1", "g2": "g 2"}))
    entries = [Entry("a", "m1", FORMULA, "g1", "abc", "fp"), Entry("b", "m1", FORMULA, "g2", "def", "fp")]
    status = pd.DataFrame({"run_dir": ["g1", "g2"], "status": ["ok", "failed"]})
    feats, vp = screen.assemble(tmp_path, entries, status)
    feats, summ = screen.select(feats, 0.05)
    paths = screen.write_tables(tmp_path, feats, vp, summ, 0.05)
    written = pd.read_csv(paths["features"], keep_default_na=False)
    assert list(written.columns) == screen.FEATURE_COLUMNS
    assert written["feature"].tolist() == ["g/1", "g/1", "g 2"]  # original names, not directory names
    assert written["status"].tolist() == ["ok", "ok", "failed"] and written.loc[2, "mean"] == ""
    assert list(pd.read_csv(paths["varpart"]).columns) == screen.VARPART_COLUMNS
    sel = pd.read_csv(paths["selected"])
    assert sel["term"].tolist() == ["Intercept"] and "est_false_sign_rate" in sel.columns
    screen.write_tables(tmp_path, feats, vp, summ, None)
    assert not paths["selected"].exists()  # no stale selection without --lfsr


def test_volcano_and_report_table(tmp_path):
    feats = pd.DataFrame({"feature": ["a", "b", "a", "b"], "term": ["Intercept", "Intercept", "x", "x"],
                          "mean": [1.0, 2.0, -1.5, 0.1], "sd": 0.1, "lower": 0.0, "upper": 1.0, "p_direction": 0.9,
                          "lfsr": [0.0, 0.01, 0.001, 0.4], "status": "ok"})
    feats, summ = screen.select(feats, 0.05)
    assert screen.plot_volcano(feats, tmp_path / "v.png").read_bytes()[:4] == b"\x89PNG"
    (tmp_path / "batch_report.html").write_text("<html><body><p>runs</p></body></html>")
    section = screen.features_section(feats, summ, 0.05)
    screen.add_to_report(tmp_path, section)
    screen.add_to_report(tmp_path, section)  # replaced, not added twice
    page = (tmp_path / "batch_report.html").read_text()
    assert page.count('id="features-table"') == 1 and page.count("<script>") == 1
    assert "features-filter" in page and "x: 1 of 2 (estimated false sign rate 0.001)" in page
    assert "http" not in section  # no CDN: the page works offline


# -- the command line refuses before fitting anything


def test_by_with_a_missing_column_exits_1_with_a_hint(tmp_path, capsys):
    path = tmp_path / "screen.csv"
    screen_table().to_csv(path, index=False)
    code = main(["batch", str(path), "--by", "gen", "--formula", FORMULA, "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 1
    assert "error: --by column 'gen' is not in screen.csv" in err and "hint:" in err and "gene" in err
    assert not list((tmp_path / "out").glob("*/run.json"))


def test_by_with_several_inputs_is_refused(tmp_path, capsys):
    for name in ("a.csv", "b.csv"):
        screen_table().to_csv(tmp_path / name, index=False)
    code = main(["batch", str(tmp_path / "a.csv"), str(tmp_path / "b.csv"), "--by", "gene", "--formula", FORMULA,
                 "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 1 and "--by splits one table, but 2 inputs were given" in err and "hint:" in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("args, message", [
    (["--lfsr", "0.05"], "--lfsr works with --by only"),
    (["--by", "gene", "--lfsr", "1.5"], "--lfsr must be between 0 and 1"),
    (["--by", "gene", "--formula", "expr ~ treatment + (1|gene)"], "also a grouping factor"),
])
def test_screen_option_errors(tmp_path, capsys, args, message):
    path = tmp_path / "screen.csv"
    screen_table().to_csv(path, index=False)
    formula = [] if "--formula" in args else ["--formula", FORMULA]
    code = main(["batch", str(path), *formula, "--out", str(tmp_path / "out"), *args])
    err = capsys.readouterr().err
    assert code == 1 and message in err and "hint:" in err
