"""CSV reading and data checks, each bad input an InputError naming the problem."""

import numpy as np
import pandas as pd
import pytest

from hlm_cli import data
from hlm_cli.errors import InputError
from hlm_cli.model.families import check_response, get_family


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        data.read_csv(tmp_path / "nope.csv")


def test_directory(tmp_path):
    with pytest.raises(InputError, match="is a directory"):
        data.read_csv(tmp_path)


def test_empty_file(tmp_path):
    p = tmp_path / "e.csv"
    p.write_text("")
    with pytest.raises(InputError, match="is empty"):
        data.read_csv(p)


def test_header_only(tmp_path):
    p = tmp_path / "h.csv"
    p.write_text("y,x\n")
    with pytest.raises(InputError, match="no data rows"):
        data.read_csv(p)


def test_unreadable_csv(tmp_path):
    p = tmp_path / "bad.csv"
    p.write_text('y,x\n1,2\n3,"4\n5,6,7,8\n')
    with pytest.raises(InputError, match="not a readable CSV"):
        data.read_csv(p)


def test_binary_garbage(tmp_path):
    p = tmp_path / "bin.csv"
    p.write_bytes(b"\xff\xfe\x00\x01" * 50)
    with pytest.raises(InputError):
        data.read_csv(p)


def test_sha256_is_stable(tiny_csv):
    assert data.read_csv(tiny_csv).sha256 == data.read_csv(tiny_csv).sha256


def test_require_columns_lists_columns(tiny_csv):
    t = data.read_csv(tiny_csv)
    with pytest.raises(InputError) as ei:
        data.require_columns(t, ["gg"])
    assert "column 'gg' is not in tiny.csv" in str(ei.value)
    assert "did you mean 'g'" in ei.value.hint


def test_dropna_counts_and_no_dropna_refuses(tmp_path):
    p = tmp_path / "na.csv"
    pd.DataFrame({"y": [1.0, np.nan, 3.0, 4.0], "x": [1, 2, np.nan, 4], "other": [np.nan] * 4}).to_csv(p, index=False)
    t = data.read_csv(p)
    kept = data.handle_missing(t, ["y", "x"], dropna=True)
    assert kept.rows_used == 2 and kept.dropped == 2 and kept.dropped_by_column == {"y": 1, "x": 1}
    assert list(data.csv_lines(kept)) == [2, 5]
    with pytest.raises(InputError, match=r"missing value\(s\) in column 'y' \(first on CSV line 3\)"):
        data.handle_missing(t, ["y", "x"], dropna=False)


def test_all_rows_missing(tmp_path):
    p = tmp_path / "na.csv"
    pd.DataFrame({"y": [np.nan, np.nan], "x": [1, 2]}).to_csv(p, index=False)
    with pytest.raises(InputError, match="every row"):
        data.handle_missing(data.read_csv(p), ["y", "x"], dropna=True)


def test_categorical_numeric_column(tiny_df, tmp_path):
    p = tmp_path / "c.csv"
    tiny_df.assign(line=np.arange(36) % 10).to_csv(p, index=False)
    t = data.make_categorical(data.read_csv(p), ["line"])
    assert list(t.frame["line"].cat.categories) == [str(i) for i in range(10)]
    with pytest.raises(InputError, match="--categorical names column 'nope'"):
        data.make_categorical(t, ["nope"])


@pytest.mark.parametrize("family, y, fragment", [
    ("poisson", [1, 2, -1], "non-negative whole numbers"),
    ("poisson", [1, 2.5, 3], "non-negative whole numbers"),
    ("bernoulli", [0, 1, 2], "only 0 and 1"),
    ("gamma", [1.0, 0.0], "values > 0"),
    ("beta", [0.5, 1.0], "strictly between 0 and 1"),
    ("lognormal", [1.0, -2.0], "values > 0"),
])
def test_response_outside_support(family, y, fragment):
    with pytest.raises(InputError) as ei:
        check_response(get_family(family), np.array(y, dtype=float), "y")
    assert fragment in str(ei.value)


def test_non_numeric_response():
    with pytest.raises(InputError, match="not numeric"):
        check_response(get_family("gaussian"), np.array(["a", "b"], dtype=object), "y")


def test_se_checks_name_the_row(tmp_path):
    p = tmp_path / "se.csv"
    pd.DataFrame({"y": [1, 2, 3], "s": [1.0, 0.0, 2.0]}).to_csv(p, index=False)
    with pytest.raises(InputError, match="CSV line 3 has 0.0$"):
        data.check_se(data.read_csv(p), "s")
