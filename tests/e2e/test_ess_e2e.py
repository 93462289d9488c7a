"""hlm fit --ess N end to end (issue 22): a tiny model reaches the target long before --draws,
stops early, keeps exactly the checkpoint's draws and says so on the terminal and in run.json."""

import json

import xarray as xr

from hlm_cli.cli.app import main


def test_fit_with_ess_stops_early_and_says_so(tmp_path, tiny_csv, capsys):
    out = tmp_path / "run"
    code = main(["fit", str(tiny_csv), "--formula", "y ~ x + (1|g)", "--out", str(out), "--ess", "100",
                 "--draws", "1000", "--tune", "150", "--chains", "2", "--seed", "1", "--no-plots"])
    cap = capsys.readouterr()
    assert code == 0, cap.err
    info = json.loads((out / "run.json").read_text())
    stop = info["sampler"]["ess_stop"]
    assert stop["reached"] is True and stop["target"] == 100 and stop["max_draws"] == 1000
    assert 50 <= stop["draws"] < 1000 and info["sampler"]["draws_kept"] == stop["draws"]
    assert stop["ess"] >= 100 and stop["rhat"] <= 1.01
    with xr.open_datatree(out / "posterior.nc", engine="h5netcdf") as tree:
        assert int(tree["posterior"].sizes["draw"]) == stop["draws"]
        assert int(tree["log_likelihood"].sizes["draw"]) == stop["draws"]
    said = f"reached after {stop['draws']} of 1000 draws per chain"
    assert said in " ".join(cap.out.split()) and "sampling stopped early" in " ".join(cap.out.split())
    notes = [f for f in info["diagnostics"]["findings"] if f["code"] == "ess_target"]
    assert len(notes) == 1 and notes[0]["severity"] == "note" and said in notes[0]["message"]
