"""The upstream private names hlm relies on (hlm_cli.sampling._nutpie), and what hlm does when
they are not there.

The first two tests are meant to fail on a dependency bump: a new nutpie, numba, PyTensor or
llvmlite must be checked (and hlm_cli.sampling._nutpie.SUPPORTED widened) by a developer, not
discovered by users as a silently slower first fit.
"""

from __future__ import annotations

import ast
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from hlm_cli import sampling
from hlm_cli.sampling import _nutpie, cache

ROOT = Path(__file__).resolve().parents[2]
LOGGER = "hlm_cli.sampling"


@pytest.fixture
def fresh_check():
    """Forget what _nutpie.available() found, before and after the test."""
    _nutpie._reset()
    yield
    _nutpie._reset()


def test_installed_versions_are_the_ones_the_fast_path_was_written_for():
    assert _nutpie.version_problems() == [], "widen hlm_cli.sampling._nutpie.SUPPORTED only after checking the new versions"


def test_every_private_name_the_fast_path_uses_is_there():
    assert _nutpie.check() == []


def test_nutpie_background_sampler_has_what_ess_uses():
    assert _nutpie.background_problems() == []


def test_pinned_range_covers_exactly_the_installed_minor_versions():
    from importlib.metadata import version

    for package, (low, high) in _nutpie.SUPPORTED.items():
        got = _nutpie._major_minor(version(package))
        assert low <= got < high, package
    assert _nutpie._major_minor("0.17.0") == (0, 17) and _nutpie._major_minor("3.3.8rc1") == (3, 3)


def test_a_newer_nutpie_is_named(monkeypatch):
    real = _nutpie._version
    monkeypatch.setattr(_nutpie, "_version", lambda p: "0.17.2" if p == "nutpie" else real(p))
    assert _nutpie.version_problems() == ["nutpie 0.17.2 is newer than hlm's fast path supports (0.16.x)"]
    monkeypatch.setattr(_nutpie, "_version", lambda p: "3.2.0" if p == "pytensor" else real(p))
    assert _nutpie.version_problems() == ["pytensor 3.2.0 is older than hlm's fast path supports (3.3.x)"]


def test_a_missing_private_name_fails_the_check(monkeypatch):
    import nutpie.compile_pymc as ncp

    monkeypatch.delattr(ncp, "_compute_shapes")
    monkeypatch.setattr(ncp, "_wrap_with_lock", lambda func, timeout: func)
    got = _nutpie.check()
    assert "nutpie.compile_pymc._compute_shapes is missing" in got
    assert any(p.startswith("nutpie.compile_pymc._wrap_with_lock('func', 'timeout')") for p in got)


def test_unsupported_versions_compile_the_standard_way_and_warn_once(monkeypatch, caplog, fresh_check):
    """Out of range: no cache, no quick path, nutpie.compile_pymc_model itself; one WARNING
    naming the version on the hlm_cli.sampling logger, not one per fit."""
    import nutpie

    real = _nutpie._version
    monkeypatch.setattr(_nutpie, "_version", lambda p: "0.17.0" if p == "nutpie" else real(p))
    compiled_with = []
    monkeypatch.setattr(nutpie, "compile_pymc_model", lambda model, **kw: compiled_with.append((model, kw)) or "standard")
    monkeypatch.setattr(cache, "find", lambda *a, **k: pytest.fail("the cache must not be used"))
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        for _ in range(3):
            got = sampling.compile_model("model", structure_key="k", cache_dir=None, quick=True)
            assert got == ("standard", "compiled")
    assert compiled_with == [("model", {})] * 3
    warned = [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno == logging.WARNING]
    assert warned == ["warning: nutpie 0.17.0 is newer than hlm's fast path supports (0.16.x); compiling the standard way (slower first fit)"]
    assert _nutpie.problems() == ["nutpie 0.17.0 is newer than hlm's fast path supports (0.16.x)"]


def test_a_failing_check_also_falls_back(monkeypatch, caplog, fresh_check):
    monkeypatch.setattr(_nutpie, "check", lambda: ["nutpie.compile_pymc._compute_shapes is missing"])
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert not _nutpie.available() and not _nutpie.available()
    warned = [r.getMessage() for r in caplog.records if r.name == LOGGER]
    assert warned == ["warning: nutpie.compile_pymc._compute_shapes is missing; compiling the standard way (slower first fit)"]


def test_supported_versions_say_nothing(caplog, fresh_check):
    with caplog.at_level(logging.DEBUG, logger=LOGGER):
        assert _nutpie.available()
    assert [r for r in caplog.records if r.name == LOGGER] == []


def _private_uses(path: Path) -> list[str]:
    """``lib._name`` attribute uses and ``from lib... import _name`` in one file."""
    libs = ("nutpie", "numba", "pytensor", "llvmlite", "arviz", "xarray")
    tree = ast.parse(path.read_text())
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0].startswith(libs):
            found += [f"{node.module}.{a.name}" for a in node.names if a.name.startswith("_")]
        elif isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.split(".")[0].startswith(libs) and "._" in a.name]
        elif isinstance(node, ast.Attribute) and node.attr in ("jit_fn", "_final_module", "_rebuild", "_reduce", "__wrapped__",
                                                                "_make_c_logp_func", "_make_c_expand_func", "_shapes", "_coords",
                                                                "_cached_duck_array_modules", "_get_cached_duck_array_module"):
            found.append(node.attr)
        elif isinstance(node, ast.keyword) and node.arg in ("_n_dim", "_coords", "_shapes"):
            found.append(node.arg)
    return found


def test_private_upstream_names_live_in_one_module():
    door = ROOT / "hlm_cli" / "sampling" / "_nutpie.py"
    assert _private_uses(door)  # the scan finds what the door uses
    elsewhere = {str(p.relative_to(ROOT)): _private_uses(p) for p in (ROOT / "hlm_cli").rglob("*.py") if p != door}
    assert {p: names for p, names in elsewhere.items() if names} == {}


def _python(code: str) -> str:
    """Run ``code`` in a new Python process (these tests change process-wide import state);
    its stripped standard output, after checking that it exited 0."""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_importing_sampling_or_nutpie_through_hlm_leaves_arviz_alone():
    """No process-wide stand-in: after hlm imported nutpie, `import arviz` is the real package."""
    code = (
        "import sys\n"
        "import hlm_cli.sampling\n"
        "assert 'arviz' not in sys.modules and 'nutpie' not in sys.modules\n"
        "from hlm_cli.sampling import _nutpie\n"
        "_nutpie.import_nutpie()\n"
        "assert 'nutpie' in sys.modules and 'arviz' not in sys.modules and 'arviz_plots' not in sys.modules\n"
        "import arviz, arviz_base\n"
        "assert hasattr(arviz, 'plot_dist') and arviz.from_dict is arviz_base.from_dict\n"
        "ns = sys.modules['nutpie.sample']\n"
        "assert ns.arviz.from_dict is arviz_base.from_dict and ns.arviz.dict_to_dataset is arviz_base.dict_to_dataset\n"
        "print('ok')\n"
    )
    assert _python(code) == "ok"


def test_xarray_has_what_the_duck_array_deferral_uses():
    """Fails when xarray moves its duck-array cache: the deferral then does nothing (slower fits)."""
    assert _nutpie.xarray_problems() == ()


def test_deferred_duck_arrays_import_nothing_and_answer_like_xarray():
    """After defer_duck_arrays, DataArrays from numpy import neither dask.array nor sparse; once a
    user imports them, their arrays are recognised as before (dask-backed, sparse-backed)."""
    pytest.importorskip("dask.array")  # both come with the dev extras (dask; sparse through Bambi)
    pytest.importorskip("sparse")
    code = (
        "import sys\n"
        "import numpy as np, xarray as xr\n"
        "from hlm_cli.sampling import defer_duck_arrays\n"
        "assert defer_duck_arrays() == ['dask', 'sparse'], 'nothing deferred'\n"
        "a = xr.DataArray(np.arange(6.0).reshape(2, 3), dims=('x', 'y'))\n"
        "assert float((a + 1).sum()) == 21.0 and a.to_numpy().shape == (2, 3) and 'array' in repr(a)\n"
        "assert 'dask.array' not in sys.modules and 'sparse' not in sys.modules, sorted(m for m in sys.modules if 'dask' in m or 'sparse' in m)\n"
        "import dask.array as da, sparse\n"
        "d = xr.DataArray(da.ones((4, 2), chunks=2), dims=('x', 'y'))\n"
        "assert d.chunks == ((2, 2), (2,)) and isinstance(d.data, da.Array) and float(d.sum().compute()) == 8.0\n"
        "s = xr.DataArray(sparse.COO.from_numpy(np.eye(3)), dims=('x', 'y'))\n"
        "assert isinstance(s.data, sparse.COO) and np.array_equal(s.to_numpy(), np.eye(3))\n"
        "from xarray.namedarray.pycompat import mod_version\n"
        "import dask\n"
        "assert str(mod_version('dask')) == dask.__version__\n"
        "print('ok')\n"
    )
    assert _python(code) == "ok"


def test_nothing_is_deferred_once_xarray_has_answered():
    pytest.importorskip("dask.array")
    pytest.importorskip("sparse")
    code = (
        "import sys\n"
        "import dask.array, sparse, numpy as np, xarray as xr\n"
        "xr.DataArray(np.zeros(2)).to_numpy()\n"
        "from hlm_cli.sampling import defer_duck_arrays\n"
        "print(defer_duck_arrays())\n"
    )
    assert _python(code) == "[]"
