"""Config file + flags merging and validation errors."""

from pathlib import Path

import pytest

from hlm_cli import spec as spec_mod
from hlm_cli.errors import ConfigError, HlmError, PriorError
from hlm_cli.spec import (
    MAX_DRAWS,
    check_memory,
    deep_merge,
    estimate_posterior_bytes,
    load_fit_spec,
)


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "run.toml"
    p.write_text(text)
    return p


def test_flags_win_over_config(tmp_path):
    cfg = write(tmp_path, 'formula = "y ~ x"\nfamily = "t"\n[sampler]\ndraws = 500\ntarget_accept = 0.8\n')
    spec = load_fit_spec(cfg, data=Path("d.csv"), out=Path("o"), draws=200, formula=None)
    assert spec.formula == "y ~ x" and spec.family == "t"
    assert spec.sampler.draws == 200 and spec.sampler.target_accept == 0.8


def test_top_level_sampler_keys_and_dashes_in_config(tmp_path):
    cfg = write(tmp_path, 'formula = "y ~ x"\ndraws = 300\ntarget-accept = 0.95\ncategorical = ["g"]\n')
    spec = load_fit_spec(cfg, data=Path("d.csv"), out=Path("o"))
    assert spec.sampler.draws == 300 and spec.sampler.target_accept == 0.95 and spec.categorical == ["g"]


def test_priors_from_config_table_and_flags(tmp_path):
    cfg = write(tmp_path, 'formula = "y ~ x"\n[priors]\nIntercept = "Normal(0, 5)"\nsigma = "HalfNormal(1)"\n')
    spec = load_fit_spec(cfg, data=Path("d.csv"), out=Path("o"), priors=["sigma=HalfNormal(10)"])
    assert spec.priors == {"Intercept": "Normal(0, 5)", "sigma": "HalfNormal(10)"}


def test_unknown_key_is_named(tmp_path):
    cfg = write(tmp_path, 'formula = "y ~ x"\n[sampler]\ndraw = 10\n')
    with pytest.raises(ConfigError) as ei:
        load_fit_spec(cfg, data=Path("d.csv"), out=Path("o"))
    assert "unknown setting 'sampler.draw'" in str(ei.value)
    assert "draws" in ei.value.hint


@pytest.mark.parametrize("key, value, message, hint", [
    ("draws", 0, "--draws must be >= 1 (got 0)", "--draws takes a whole number from 1 to 10000000"),
    ("tune", 0, "--tune must be >= 1 (got 0)", "nutpie needs at least 1 warm-up iteration"),
    ("chains", 0, "--chains must be >= 1 (got 0)", "from 1 to 128"),
    ("chains", 1000, "--chains must be <= 128 (got 1000)", "e.g. --chains 4"),
    ("cores", 0, "--cores must be >= 1 (got 0)", "leave it out to use all cores"),
    ("seed", -1, "--seed must be >= 0 (got -1)", "from 0 to 4294967295"),
    ("seed", 2**32, "--seed must be <= 4294967295 (got 4294967296)", "e.g. --seed 1"),
    ("seed", 10**20, "--seed must be <= 4294967295 (got 100000000000000000000)", "2^32 - 1"),
    ("target_accept", 1.0, "--target-accept must be < 1.0 (got 1.0)", "strictly between 0 and 1"),
    ("target_accept", 0.0, "--target-accept must be > 0.0 (got 0.0)", "e.g. --target-accept 0.95"),
    ("target_accept", 1.5, "--target-accept must be < 1.0 (got 1.5)", "strictly between 0 and 1"),
    ("target_accept", float("nan"), "--target-accept must be a finite number (got nan)", "between 0 and 1"),
    ("max_treedepth", 0, "--max-treedepth must be >= 1 (got 0)", "from 1 to 20"),
    ("max_treedepth", 100, "--max-treedepth must be <= 20 (got 100)", "e.g. --max-treedepth 12"),
    ("sampler", "stan", "--sampler must be one of 'nutpie', 'pymc', 'numpyro' or 'blackjax' (got 'stan')", "e.g. --sampler nutpie"),
    ("parameterization", "weird", "--parameterization must be one of", "auto, centered, noncentered or zerosum"),
    ("adaptation", "full", "--adaptation must be one of", "diag, draw_diag or low_rank"),
    ("family", "", "--family must not be empty (got '')", "gaussian, t, bernoulli"),
    ("se", " ", "--se must not be empty (got ' ')", "--se takes the column of known standard errors"),
])
def test_bad_flags_name_the_option_rule_and_value(key, value, message, hint):
    with pytest.raises(ConfigError) as ei:
        load_fit_spec(None, data=Path("d.csv"), out=Path("o"), formula="y ~ x", **{key: value})
    assert str(ei.value) == message or str(ei.value).startswith(message)
    assert hint in ei.value.hint


def test_empty_formula_flag():
    with pytest.raises(ConfigError) as ei:
        load_fit_spec(None, data=Path("d.csv"), out=Path("o"), formula="  ")
    assert str(ei.value) == "--formula must not be empty (got '  ')"
    assert 'e.g. --formula "logfc ~ 1 + (1|gene)"' in ei.value.hint


def test_draws_times_chains_is_bounded():
    with pytest.raises(ConfigError) as ei:
        load_fit_spec(None, data=Path("d.csv"), out=Path("o"), formula="y ~ x", draws=10_000_000)
    assert "--draws 10000000 with 4 chains is 40000000 draws in all" in str(ei.value)
    assert "fewer draws" in ei.value.hint
    spec = load_fit_spec(None, data=Path("d.csv"), out=Path("o"), formula="y ~ x", draws=2_500_000, chains=4)
    assert spec.sampler.draws * spec.sampler.chains == MAX_DRAWS


def test_valid_edges_are_accepted():
    spec = load_fit_spec(None, data=Path("d.csv"), out=Path("o"), formula="y ~ x", tune=1, seed=2**32 - 1,
                         chains=128, draws=1, target_accept=0.999, max_treedepth=20, cores=1)
    s = spec.sampler
    assert (s.tune, s.seed, s.chains, s.draws, s.target_accept, s.max_treedepth, s.cores) == (1, 2**32 - 1, 128, 1, 0.999, 20, 1)


@pytest.mark.parametrize("toml, message, hint", [
    ('draws = "many"', "run.toml: draws must be a whole number (got 'many')", "draws = 1000"),
    ("draws = true", "run.toml: draws must be a whole number (got true, a boolean)", "draws takes a whole number"),
    ('draws = "10"', "run.toml: draws must be a whole number (got '10')", "draws = 1000"),
    ("[sampler]\nchains = 2.5", "run.toml: sampler.chains must be a whole number (got 2.5)", "sampler.chains = 4"),
    ("[sampler]\nchains = 2.0", "run.toml: sampler.chains must be a whole number (got 2.0)", "from 1 to 128"),
    ("tune = 0", "run.toml: tune must be >= 1 (got 0)", "nutpie needs at least 1"),
    ("[sampler]\nseed = 18446744073709551616", "run.toml: sampler.seed must be <= 4294967295", "2^32 - 1"),
    ("target-accept = 1", "run.toml: target-accept must be < 1.0 (got 1)", "target-accept = 0.95"),
    ("[sampler]\ntarget_accept = true", "run.toml: sampler.target_accept must be a number (got true, a boolean)", "between 0 and 1"),
    ("[sampler]\ntarget_accept = nan", "run.toml: sampler.target_accept must be a finite number (got nan)", "between 0 and 1"),
    ("[sampler]\ntarget_accept = inf", "run.toml: sampler.target_accept must be a finite number (got inf)", "between 0 and 1"),
    ("[sampler]\nmax_treedepth = 100", "run.toml: sampler.max_treedepth must be <= 20 (got 100)", "from 1 to 20"),
    ("priors = 3", "run.toml: priors must be a table (got 3)", 'Intercept = "Normal(0, 5)"'),
    ("[priors]\nsigma = 3", "run.toml: priors.sigma must be text (a quoted string) (got 3)", 'TERM = "Dist(args)"'),
    ('categorical = "g"', "run.toml: categorical must be a list (got 'g')", 'categorical = ["cell_line"]'),
    ('categorical = ["g", 1]', "run.toml: categorical[1] must be text (a quoted string) (got 1)", "a list of column names"),
    ('dropna = "yes"', "run.toml: dropna must be true or false (got 'yes')", "dropna = true"),
    ("plots = 1", "run.toml: plots must be true or false (got 1)", "true or false"),
    ('family = ""', "run.toml: family must not be empty (got '')", "gaussian, t, bernoulli"),
    ("family = 3", "run.toml: family must be text (a quoted string) (got 3)", 'family = "gaussian"'),
    ('family = "gausian"', "run.toml: family: unknown family 'gausian'", "gaussian"),
    ('sampler = "stan"', "run.toml: sampler must be one of 'nutpie'", 'sampler = "nutpie"'),
    ('[sampler]\nsampler = "stan"', "run.toml: sampler.sampler must be one of 'nutpie'", 'sampler.sampler = "nutpie"'),
    ('out = ""', "run.toml: out must not be empty (got '')", 'out = "results/ko"'),
    ('out = "a\\u0000b"', "run.toml: out must not contain a NUL character", "the run directory"),
    ("out = 3", "run.toml: out must be a path (a quoted string) (got 3)", "out ="),
    ('command = "rm -rf"', "run.toml: unknown setting 'command'", "settings:"),
    ('config_file = "x"', "run.toml: unknown setting 'config_file'", "settings:"),
    ("[sampler.extra]\nx = 1", "run.toml: unknown setting 'sampler.extra'", "settings:"),
    ("[priors]\nsigma = \"HalfNormal(-1)\"", "run.toml: priors.sigma = 'HalfNormal(-1)': HalfNormal's sigma must be > 0 (got -1)",
     "e.g. HalfNormal(1)"),
    ('priors = ["sigma=HalfNormal(inf)"]', "run.toml: priors[0] = 'sigma=HalfNormal(inf)': HalfNormal's sigma must be a finite number (got inf)",
     "HalfNormal(sigma) with sigma > 0"),
    ("priors = [3]", 'run.toml: priors[0] must be text such as "sigma=HalfNormal(1)" (got 3)', "priors = ["),
    ('priors = ["sigma=HalfNormal(1)", "sigma=HalfNormal(2)"]', "run.toml: two priors given for 'sigma'", "one prior"),
    ("draws = 5000000\nchains = 4", "run.toml: draws 5000000 with 4 chains is 20000000 draws in all", "fewer draws"),
])
def test_bad_config_values_name_the_key_type_and_value(tmp_path, toml, message, hint):
    cfg = tmp_path / "run.toml"
    cfg.write_text('formula = "y ~ x"\n' + ("" if toml.startswith("out") else 'out = "o"\n') + toml + "\n")
    with pytest.raises(HlmError) as ei:
        load_fit_spec(cfg, data=Path("d.csv"), out=None)  # --out not given: the config's out counts
    text = str(ei.value).replace(str(tmp_path) + "/", "")
    assert text.startswith(message), text
    assert hint in (ei.value.hint or "")


def test_flag_overrides_a_bad_config_value_and_flag_errors_name_the_flag(tmp_path):
    cfg = write(tmp_path, 'formula = "y ~ x"\n[sampler]\ntune = 0\n')
    assert load_fit_spec(cfg, data=Path("d.csv"), out=Path("o"), tune=50).sampler.tune == 50
    cfg = write(tmp_path, 'formula = "y ~ x"\n[sampler]\ntune = 100\n')
    with pytest.raises(ConfigError, match=r"^--tune must be >= 1 \(got 0\)$"):
        load_fit_spec(cfg, data=Path("d.csv"), out=Path("o"), tune=0)


def test_config_that_is_a_directory_or_not_utf8(tmp_path):
    with pytest.raises(ConfigError) as ei:
        load_fit_spec(tmp_path, data=Path("d.csv"), out=Path("o"))
    assert "is a directory, not a file" in str(ei.value) and "--config" in ei.value.hint
    bad = tmp_path / "latin1.toml"
    bad.write_bytes('formula = "y ~ x"\nfamily = "caf\u00e9"\n'.encode("latin-1"))
    with pytest.raises(ConfigError) as ei:
        load_fit_spec(bad, data=Path("d.csv"), out=Path("o"))
    assert "is not UTF-8 text (byte 0xe9 on line 2)" in str(ei.value) and "UTF-8" in ei.value.hint


def test_duplicate_prior_flags_are_refused():
    with pytest.raises(PriorError, match="two --prior given for 'sigma'"):
        load_fit_spec(None, data=Path("d.csv"), out=Path("o"), formula="y ~ x",
                      priors=["sigma=HalfNormal(1)", "sigma = HalfNormal(2)"])


def test_unknown_family_flag_keeps_its_message():
    with pytest.raises(ConfigError) as ei:
        load_fit_spec(None, data=Path("d.csv"), out=Path("o"), formula="y ~ x", family="gausian")
    assert str(ei.value) == "unknown family 'gausian'" and "gaussian" in ei.value.hint


def test_estimate_posterior_bytes():
    # log-likelihood and predictions: rows x chains x draws x 8 bytes each; parameters likewise
    assert estimate_posterior_bytes(4, 1000, 10, 100) == 4 * 1000 * (2 * 100 + 10) * 8
    assert estimate_posterior_bytes(1, 1, 0, 0) == 0
    assert estimate_posterior_bytes(2, 3, 5, 0) == 2 * 3 * 5 * 8


def test_check_memory_refuses_what_does_not_fit():
    need = estimate_posterior_bytes(4, 1_000_000, 50, 10_000)
    with pytest.raises(ConfigError) as ei:
        check_memory(4, 1_000_000, 50, 10_000, available=10**9)
    msg = str(ei.value)
    assert "about 641.6 GB in memory" in msg and "only 1.0 GB is available" in msg
    assert "4 chains x 1000000 draws x (10000 rows x 2 + 50 parameters) x 8 bytes" in msg
    fits = int(10**9 / 2 // estimate_posterior_bytes(4, 1, 50, 10_000))
    assert f"--draws {fits} or fewer" in ei.value.hint
    assert check_memory(4, fits, 50, 10_000, available=10**9) <= 10**9 / 2
    with pytest.raises(ConfigError, match="only 1 kB"):
        check_memory(4, 1000, 50, 10_000, available=1000)
    assert check_memory(4, 1000, 50, 100, available=10**12) == estimate_posterior_bytes(4, 1000, 50, 100)
    assert need > 0


def test_check_memory_reads_meminfo_and_falls_back(tmp_path, monkeypatch):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       32000000 kB\nMemFree:  100 kB\nMemAvailable:    2000000 kB\n")
    assert spec_mod.available_memory(meminfo) == 2_000_000 * 1024
    assert spec_mod.available_memory(tmp_path / "missing") is None or spec_mod.available_memory(tmp_path / "missing") > 0
    monkeypatch.setattr(spec_mod, "available_memory", lambda: None)
    big = estimate_posterior_bytes(4, 10**6, 10, 10**6)
    assert check_memory(4, 10**6, 10, 10**6) == big  # unknown memory: nothing is refused
    monkeypatch.setattr(spec_mod, "available_memory", lambda: 10**6)
    with pytest.raises(ConfigError, match="only 1 MB is available"):
        check_memory(4, 10**6, 10, 10**6)


def test_missing_formula():
    with pytest.raises(ConfigError) as ei:
        load_fit_spec(None, data=Path("d.csv"), out=Path("o"))
    assert "formula is required" in str(ei.value)


def test_bad_toml_and_missing_config(tmp_path):
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_fit_spec(write(tmp_path, "formula = "), data=Path("d.csv"), out=Path("o"))
    with pytest.raises(ConfigError, match="does not exist"):
        load_fit_spec(tmp_path / "nope.toml", data=Path("d.csv"), out=Path("o"))


def test_prior_flag_errors_surface_early():
    with pytest.raises(PriorError):
        load_fit_spec(None, data=Path("d.csv"), out=Path("o"), formula="y ~ x", priors=["Intercept=Nrmal(0, 1)"])


def test_deep_merge():
    assert deep_merge({"a": 1, "s": {"x": 1, "y": 2}}, {"s": {"y": 3}}) == {"a": 1, "s": {"x": 1, "y": 3}}


def test_example_configs_load():
    root = Path(__file__).resolve().parents[2] / "configs"
    for cfg in sorted(root.glob("*.toml")):
        spec = load_fit_spec(cfg, data=Path("d.csv"), out=Path("o"))
        assert spec.formula


@pytest.mark.parametrize("extra, message, hint", [
    (["--tune", "0"], "error: --tune must be >= 1 (got 0)", "nutpie needs at least 1 warm-up iteration"),
    (["--draws", "10000000"], "error: --draws 10000000 with 4 chains is 40000000 draws in all", "fewer draws"),
    (["--seed", "99999999999999999999"], "error: --seed must be <= 4294967295 (got 99999999999999999999)", "from 0 to 4294967295"),
    (["--seed", "-1"], "error: --seed must be >= 0 (got -1)", "from 0 to 4294967295"),
    (["--target-accept", "1.0"], "error: --target-accept must be < 1.0 (got 1.0)", "strictly between 0 and 1"),
    (["--max-treedepth", "100"], "error: --max-treedepth must be <= 20 (got 100)", "from 1 to 20"),
    (["--chains", "0"], "error: --chains must be >= 1 (got 0)", "from 1 to 128"),
    (["--cores", "0"], "error: --cores must be >= 1 (got 0)", "use all cores"),
    (["--family", ""], "error: --family must not be empty (got '')", "gaussian"),
    (["--prior", "Intercept"], "error: --prior 'Intercept' has no '='", "TERM=Dist(args)"),
    (["--prior", "sigma=HalfNormal(-1)"], "error: --prior 'sigma=HalfNormal(-1)': HalfNormal's sigma must be > 0 (got -1)", "HalfNormal(1)"),
    (["--prior", "sigma=HalfNormal(1e999999)"], "error: --prior 'sigma=HalfNormal(1e999999)': HalfNormal's sigma must be a finite number (got inf)", "HalfNormal(1)"),
    (["--prior", "Intercept=Normal(0)"], "error: --prior 'Intercept=Normal(0)': Normal needs sigma", "Normal(0, 10)"),
    (["--formula", ""], "error: --formula number 2 is empty", "give a formula each time"),
])
def test_cli_refuses_before_reading_data(tmp_path, capsys, extra, message, hint):
    """The data file does not exist: an option error must come first, and nothing is written."""
    from hlm_cli.cli.app import main

    out = tmp_path / "run"
    code = main(["fit", str(tmp_path / "absent.csv"), "--formula", "y ~ 1 + (1|g)", "--out", str(out), *extra])
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    # a sampler number out of range is a usage error (exit 2, as Typer's own range checks were);
    # a bad prior, formula or family text is bad input (exit 1)
    usage = any(f"error: --{flag} " in message for flag in ("tune", "draws", "seed", "target-accept", "max-treedepth", "chains", "cores"))
    assert code == (2 if usage else 1), err
    assert lines[0].startswith(message) and lines[-1].startswith("hint:") and hint in err
    assert "Traceback" not in err and "absent.csv" not in err
    assert not out.exists()


def test_cli_config_errors_and_batch_workers(tmp_path, capsys):
    from hlm_cli.cli.app import main

    out = tmp_path / "run"
    cfg = tmp_path / "c.toml"
    cfg.write_text('formula = "y ~ 1"\ndraws = true\n')
    assert main(["fit", str(tmp_path / "absent.csv"), "--config", str(cfg), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert f"error: {cfg}: draws must be a whole number (got true, a boolean)" in err and "hint:  draws takes" in err
    assert main(["fit", str(tmp_path / "absent.csv"), "--config", str(tmp_path), "--out", str(out)]) == 1
    assert "is a directory, not a file" in capsys.readouterr().err
    assert main(["batch", "x.csv", "--formula", "y ~ 1", "--out", str(out), "--workers", "0"]) == 2
    err = capsys.readouterr().err
    assert "error: --workers must be >= 1 (got 0)" in err and "hint:" in err
    assert main(["batch", "x.csv", "--formula", "y ~ 1", "--out", str(out), "--tune", "0"]) == 2
    assert "error: --tune must be >= 1 (got 0)" in capsys.readouterr().err
    assert main(["batch", "x.csv", "--formula", "y ~ 1", "--out", str(out), "--scheduler", " "]) == 1
    assert "error: --scheduler is empty" in capsys.readouterr().err
    assert main(["batch", "x.csv", "--formula", "y ~ 1", "--formula", "", "--out", str(out)]) == 1
    assert "error: --formula must not be empty" in capsys.readouterr().err
    assert main(["batch", "x.csv", "--formula", "y ~ 1", "--out", str(out), "--tune", "0"]) == 2
    assert "error: --tune must be >= 1 (got 0)" in capsys.readouterr().err
    assert not out.exists()


def test_family_names_below_the_spec_match_the_family_table():
    from hlm_cli.formula import families as names
    from hlm_cli.model.families import ALIASES, FAMILIES, get_family

    assert names.NAMES == tuple(FAMILIES)
    assert names.ALIASES == ALIASES
    for alias in ALIASES:
        assert names.family_key(alias.upper()) == get_family(alias).name
    with pytest.raises(ConfigError) as ei:
        names.family_key("gausian")
    assert str(ei.value) == "unknown family 'gausian'"
    assert ei.value.hint == "choose one of: " + ", ".join(FAMILIES)


def test_spec_imports_nothing_from_the_layers_above_it():
    import subprocess
    import sys

    code = ("import sys; import hlm_cli.spec; "
            "bad = [m for m in sys.modules if m.startswith(('hlm_cli.model', 'hlm_cli.workflows', 'hlm_cli.outputs', 'hlm_cli.sampling'))]; print(bad)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip() == "[]", r.stdout + r.stderr


def test_unknown_family_in_a_config_names_the_key(tmp_path):
    cfg = write(tmp_path, 'formula = "y ~ x"\nfamily = "poison"\n')
    with pytest.raises(ConfigError) as ei:
        load_fit_spec(cfg, data=Path("d.csv"), out=Path("o"))
    assert str(ei.value) == f"{cfg}: family: unknown family 'poison'"
    assert ei.value.hint.startswith("choose one of: gaussian, t, bernoulli")


def test_formula_list_refuses_an_empty_later_formula():
    assert spec_mod.formula_list(None) == []
    assert spec_mod.formula_list(["y ~ 1", "y ~ x"]) == ["y ~ 1", "y ~ x"]
    with pytest.raises(ConfigError) as ei:
        spec_mod.formula_list(["y ~ 1", "y ~ x", "  "])
    assert str(ei.value) == "--formula number 3 is empty"
    assert "--formula" in ei.value.hint


@pytest.mark.parametrize("kwargs, message", [
    (dict(out=None, inputs=["a.csv"], manifest=None, workers=None, scheduler=None), "hlm batch needs --out"),
    (dict(out=Path("o"), inputs=[], manifest=None, workers=None, scheduler=None), "no input files given"),
    (dict(out=Path("o"), inputs=["a.csv"], manifest=None, workers=0, scheduler=None), "--workers must be >= 1 (got 0)"),
    (dict(out=Path("o"), inputs=None, manifest=Path("m.txt"), workers=None, scheduler=" "), "--scheduler is empty"),
])
def test_batch_options_refused(kwargs, message):
    with pytest.raises(HlmError) as ei:
        spec_mod.check_batch_options(**kwargs)
    assert str(ei.value) == message and ei.value.hint
    assert ei.value.exit_code == (2 if "--workers" in message else 1)


def test_batch_specs_one_per_distinct_formula_with_placeholders():
    specs = spec_mod.load_batch_specs(None, out=Path("res"), formulas=["y ~ 1", "y ~ x", "y ~ 1"],
                                      priors=["sigma=HalfNormal(2)"], draws=300, family=None)
    assert [s.formula for s in specs] == ["y ~ 1", "y ~ x"]
    assert all(s.data == Path("INPUT") and s.out == Path("res/INPUT") for s in specs)
    assert all(s.sampler.draws == 300 and s.priors == {"sigma": "HalfNormal(2)"} for s in specs)
    with pytest.raises(ConfigError, match="formula is required"):
        spec_mod.load_batch_specs(None, out=Path("res"), formulas=None, priors=None)
