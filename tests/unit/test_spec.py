"""Config file + flags merging and validation errors."""

from pathlib import Path

import pytest

from hlm_cli.errors import ConfigError, PriorError
from hlm_cli.spec import deep_merge, load_fit_spec


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


@pytest.mark.parametrize("key, value, fragment", [
    ("draws", 0, "sampler.draws"),
    ("target_accept", 1.5, "sampler.target_accept"),
    ("sampler", "stan", "sampler.sampler"),
    ("parameterization", "weird", "sampler.parameterization"),
])
def test_bad_values_name_the_key(key, value, fragment):
    with pytest.raises(ConfigError) as ei:
        load_fit_spec(None, data=Path("d.csv"), out=Path("o"), formula="y ~ x", **{key: value})
    assert fragment in str(ei.value) and "command line" in str(ei.value)


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
