"""The closed hypothesis parser, and ``hlm hypothesis`` on a hand-made run directory (no sampling)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hlm_cli.formula.hypothesis import (
    BinOp,
    HypothesisError,
    Neg,
    Num,
    Param,
    canonical,
    difference,
    parse,
    tokenize,
)
from tests.helpers import write_run

LABELS = [
    "Intercept", "Treatment", "Genotype", "Treatment:Genotype", "genotype[ko]", "genotype[wt]",
    "1|mouse[m01]", "1|mouse[m02]", "1|mouse_sigma", "sigma", "cor(Intercept,Days|Subject)",
    "treatment[placebo]|group[ko_B]", "treatment[placebo]",
]


# --------------------------------------------------------------------------------------------
# tokenizer and parser


def test_longest_label_wins_and_labels_keep_their_punctuation():
    toks = [t.text for t in tokenize("Treatment:Genotype - Treatment + 1|mouse[m01]*2 > 0", LABELS)]
    assert toks == ["Treatment:Genotype", "-", "Treatment", "+", "1|mouse[m01]", "*", "2", ">", "0", ""]
    toks = [t.text for t in tokenize("treatment[placebo] + treatment[placebo]|group[ko_B] = 0", LABELS)]
    assert toks[:3] == ["treatment[placebo]", "+", "treatment[placebo]|group[ko_B]"]


@pytest.mark.parametrize(
    ("text", "op", "left", "right"),
    [
        ("Treatment > 0", ">", Param("Treatment"), Num(0.0)),
        ("Treatment >= 0", ">", Param("Treatment"), Num(0.0)),
        ("genotype[ko] - genotype[wt] = 0", "=", BinOp("-", Param("genotype[ko]"), Param("genotype[wt]")), Num(0.0)),
        ("sigma == 1|mouse_sigma", "=", Param("sigma"), Param("1|mouse_sigma")),
        ("-Treatment < 2 * (Genotype - 1e-1)", "<", Neg(Param("Treatment")), BinOp("*", Num(2.0), BinOp("-", Param("Genotype"), Num(0.1)))),
        ("(1|mouse_sigma) / sigma <= .5", "<", BinOp("/", Param("1|mouse_sigma"), Param("sigma")), Num(0.5)),
        ("cor(Intercept,Days|Subject) > 0", ">", Param("cor(Intercept,Days|Subject)"), Num(0.0)),
    ],
)
def test_parse(text, op, left, right):
    h = parse(text, LABELS)
    assert (h.op, h.left, h.right) == (op, left, right)


def test_precedence_and_evaluation():
    rng = np.random.default_rng(0)
    draws = {k: rng.normal(size=50) for k in LABELS}
    h = parse("Treatment - Genotype * 2 / sigma + -Intercept = 3", LABELS)
    expected = draws["Treatment"] - draws["Genotype"] * 2 / draws["sigma"] + -draws["Intercept"] - 3
    np.testing.assert_allclose(difference(h, draws.__getitem__), expected)
    h = parse("Treatment - (Genotype - Intercept) > 0", LABELS)
    np.testing.assert_allclose(difference(h, draws.__getitem__), draws["Treatment"] - draws["Genotype"] + draws["Intercept"])
    # the canonical text parses back to the same quantity
    for text in ("Treatment - (Genotype - Intercept) > 1", "-(Treatment + Genotype) * 2 < -sigma", "(1|mouse_sigma) / sigma < 1"):
        h = parse(text, LABELS)
        again = parse(canonical(h), LABELS)
        assert again.right == Num(0.0)
        np.testing.assert_allclose(difference(again, draws.__getitem__), difference(h, draws.__getitem__))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("__import__('os').system('touch pwned') > 0", "\"__import__('os')\" is not a parameter of this model (a function call is not allowed)"),
        ("Intercept.__class__ > 0", "'Intercept.__class__' is not a parameter of this model (attribute access is not allowed)"),
        ("open('x') = 0", "a function call is not allowed"),
        ("exec > 0", "'exec' is not a parameter"),
        ("Treatmnt > 0", "'Treatmnt' is not a parameter"),
        ("2x > 0", "'2x' is not a parameter"),
        ("Treatment", "needs one of >, < or ="),
        ("Treatment > 0 > 1", "only one comparison"),
        ("Treatment > ", "ends too early"),
        ("(Treatment > 0", "expected ')'"),
        ("Treatment ** 2 > 0", "unexpected '*'"),
        ("Treatment @ 2 > 0", "unexpected character '@'"),
        ("Treatment[0] > 0", "'[0]' is not a parameter"),
        ("lambda: 0 > 0", "'lambda:' is not a parameter"),
        ("(" * 80 + "Treatment" + ")" * 80 + " > 0", "nested"),
        ("", "empty hypothesis"),
        ("Treatment > " + "1+" * 1500 + "1", "characters long"),
    ],
)
def test_refused(text, message):
    with pytest.raises(HypothesisError) as err:
        parse(text, LABELS)
    assert message in str(err.value)
    assert "\n" not in str(err.value)  # one line
    assert err.value.hint


def test_unknown_name_hint_suggests_the_closest_parameter():
    with pytest.raises(HypothesisError) as err:
        parse("Treatmnt > 0", LABELS)
    assert err.value.hint.startswith("did you mean 'Treatment'?")


def test_hostile_text_never_runs(tmp_path, monkeypatch):
    """No eval/exec anywhere: a payload that would create a file leaves nothing behind."""
    import builtins

    monkeypatch.chdir(tmp_path)
    calls = []
    for name in ("eval", "exec"):
        monkeypatch.setattr(builtins, name, lambda *a, _n=name, **k: calls.append(_n))
    labels = LABELS + ["os", "system"]  # even if such names were labels, calls are not grammar
    for text in ("__import__('os').system('touch pwned') > 0", "os.system('touch pwned') > 0", "system('touch pwned') = 0", "eval('1') > 0"):
        with pytest.raises(HypothesisError):
            parse(text, labels)
    assert not (tmp_path / "pwned").exists()
    assert calls == []


# --------------------------------------------------------------------------------------------
# the workflow, on a hand-made run directory


def _write_run(run, *, prior: bool, seed: int = 0, S: int = 4000):
    import xarray as xr

    rng = np.random.default_rng(seed)
    post = xr.Dataset(
        {
            "Intercept": (("chain", "draw"), rng.normal(40, 1, (2, S // 2))),
            "Treatment": (("chain", "draw"), rng.normal(3.0, 0.5, (2, S // 2))),
            "genotype": (("chain", "draw", "genotype_dim"), rng.normal([1.0, 0.0], 0.5, (2, S // 2, 2))),
            "1|mouse_sigma": (("chain", "draw"), np.abs(rng.normal(3, 0.3, (2, S // 2)))),
            "1|mouse": (("chain", "draw", "mouse"), rng.normal(0, 1, (2, S // 2, 3))),
            "sigma": (("chain", "draw"), np.abs(rng.normal(7, 0.3, (2, S // 2)))),
        },
        coords={"genotype_dim": ["ko", "wt"], "mouse": ["m01", "m02", "m03"]},
    )
    groups = {"posterior": post}
    if prior:
        # a N(0, 10) prior on the genotype levels: Savage-Dickey BF01 for ko - wt = 0 is
        # N(0 | 1, sd 0.707) / N(0 | 0, sd 14.14) = 0.2076 / 0.02821 = 7.36 (both differences normal)
        groups["prior"] = xr.Dataset(
            {k: (("chain", "draw") + post[k].dims[2:], rng.normal(0, 10, (1, 20000) + post[k].shape[2:])) for k in ("Intercept", "Treatment", "genotype")},
            coords={"genotype_dim": ["ko", "wt"]},
        )
    params = {"population": ["Intercept", "Treatment", "genotype"], "group_effects": {"mouse": ["1|mouse"]}, "group_sds": {"mouse": ["1|mouse_sigma"]}, "correlations": {}, "family": ["sigma"]}
    return write_run(run, groups, {"config": {}, "parameters": params})


def test_hypothesis_table_matches_the_draws(tmp_path):
    from hlm_cli.workflows.hypothesis import run_hypothesis

    run = _write_run(tmp_path / "run", prior=True)
    res = run_hypothesis(run, ["Treatment > 0", "genotype[ko] - genotype[wt] = 0", "Treatment < 2.5", "(1|mouse_sigma) / sigma > 1"], prob=0.9)
    t = pd.read_csv(run / "hypothesis.csv")
    assert list(t["hypothesis"]) == ["Treatment > 0", "genotype[ko] - genotype[wt] = 0", "Treatment - 2.5 < 0", "1|mouse_sigma / sigma - 1 > 0"]
    assert t.loc[0, "estimate"] == pytest.approx(3.0, abs=0.05) and t.loc[0, "post_prob"] > 0.99
    assert t.loc[2, "post_prob"] == pytest.approx(0.159, abs=0.03)  # P(N(3, .5) < 2.5)
    assert t.loc[2, "evid_ratio"] == pytest.approx(t.loc[2, "post_prob"] / (1 - t.loc[2, "post_prob"]))
    assert t.loc[3, "post_prob"] < 0.01
    # Savage-Dickey against the closed form (KDE error of a few percent)
    assert t.loc[1, "evidence"] == "Savage-Dickey BF01"
    assert t.loc[1, "evid_ratio"] == pytest.approx(7.36, rel=0.15)
    assert t.loc[1, "post_prob"] == pytest.approx(t.loc[1, "evid_ratio"] / (1 + t.loc[1, "evid_ratio"]))
    assert t.loc[1, "lower"] < 1 < t.loc[1, "upper"] and t["ci_prob"].eq(0.9).all()
    # a point hypothesis over a parameter without prior draws: interval and a note
    res = run_hypothesis(run, ["sigma = 7"], out=tmp_path / "h.csv")
    assert np.isnan(res.table.loc[0, "evid_ratio"]) and "HDI" in res.table.loc[0, "note"]


def test_point_hypothesis_without_prior_gives_a_note(tmp_path):
    from hlm_cli.workflows.hypothesis import run_hypothesis

    run = _write_run(tmp_path / "run", prior=False)
    res = run_hypothesis(run, ["genotype[ko] = 0"])
    row = res.table.iloc[0]
    assert np.isnan(row["evid_ratio"]) and np.isnan(row["post_prob"])
    assert "refit with --prior-predictive" in row["note"] and "0 is outside the 94% HDI" in row["note"]
    assert res.notes


def test_cli_refuses_a_hostile_hypothesis_with_one_line(tmp_path, capsys, monkeypatch):
    from hlm_cli.cli.app import main

    run = _write_run(tmp_path / "run", prior=False)
    monkeypatch.chdir(tmp_path)
    code = main(["hypothesis", str(run), "Treatment > 0", "__import__('os').system('touch pwned') > 0"])
    err = capsys.readouterr().err.splitlines()
    assert code == 1
    assert err[0].startswith("error: hypothesis ") and "is not a parameter of this model (a function call is not allowed)" in err[0]
    assert err[1].startswith("hint:  parameters: Intercept, Treatment, genotype[ko]")
    assert not (tmp_path / "pwned").exists()
    assert not (run / "hypothesis.csv").exists()  # all hypotheses are checked before any output


def test_cli_prints_the_table(tmp_path, capsys):
    from hlm_cli.cli.app import main

    run = _write_run(tmp_path / "run", prior=False)
    assert main(["hypothesis", str(run), "genotype[ko] > genotype[wt]", "--hdi", "0.8", "--out", str(tmp_path / "h.csv")]) == 0
    out = capsys.readouterr().out
    assert "genotype[ko] - genotype[wt] > 0" in out and "l-80% HDI" in out
    assert pd.read_csv(tmp_path / "h.csv").loc[0, "post_prob"] > 0.9


def test_hypothesis_needs_a_run_dir(tmp_path):
    from hlm_cli.errors import InputError
    from hlm_cli.workflows.hypothesis import run_hypothesis

    with pytest.raises(InputError, match="not an hlm run directory"):
        run_hypothesis(tmp_path, ["Treatment > 0"])
