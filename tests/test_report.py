import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pngan.cli import main
from pngan.eval import noise_stats as ns
from pngan.io.images import write_image


def test_noise_level_function_follows_signal_dependent_std():
    g = torch.Generator().manual_seed(0)
    clean = torch.linspace(0, 1, 256).repeat(3, 256, 1).to(torch.float64)
    noisy = clean + torch.sqrt(0.0004 + 0.01 * clean) * torch.randn(clean.shape, generator=g, dtype=torch.float64)
    x, std = ns.noise_level_function([(noisy, clean)], bins=8)
    want = np.sqrt(0.0004 + 0.01 * x)
    assert np.allclose(std, want[None].repeat(3, 0), rtol=0.08)


def test_power_spectrum_white_flat_correlated_falls():
    g = torch.Generator().manual_seed(1)
    clean = torch.zeros(3, 96, 96, dtype=torch.float64)
    white = torch.randn(3, 96, 96, generator=g, dtype=torch.float64) * 0.05
    blur = F.avg_pool2d(F.pad(white[None], (1, 1, 1, 1), mode="circular"), 3, 1)[0]
    _, pw = ns.radial_power_spectrum([(white, clean)], nbins=8)
    _, pc = ns.radial_power_spectrum([(blur, clean)], nbins=8)
    assert np.all(np.abs(pw - 1) < 0.3)
    assert np.all(pc[:, 0] > 2 * pc[:, -1])


def test_histograms_integrate_to_one():
    g = torch.Generator().manual_seed(2)
    clean = torch.full((3, 64, 64), 0.5)
    x, h = ns.noise_histograms([(clean + 0.03 * torch.randn(clean.shape, generator=g), clean)])
    assert np.allclose(h.sum(1) * (x[1] - x[0]), 1.0, atol=1e-6)


def test_report_from_fake_run_and_metric_json(tmp_path):
    run = tmp_path / "run"
    (run / "samples").mkdir(parents=True)
    with open(run / "stats.jsonl", "w") as f:
        for s in range(1, 6):
            f.write(json.dumps({"step": s * 10, "loss_g": 1.0 / s, "loss_d": 0.7, "lr": 1e-4}) + "\n")
    (run / "config.yaml").write_text("seed: 0\n")
    write_image(run / "samples" / "step_00000050.png", torch.rand(3, 16, 66))
    metrics = tmp_path / "noise.json"
    metrics.write_text(json.dumps({"kind": "noise", "real": "pairs:x", "images": {"a.png": {"akld": 0.12, "mmd": 0.01}},
                                   "mean": {"akld": 0.12, "mmd": 0.01}}))
    g = torch.Generator().manual_seed(3)
    for i in range(2):
        clean = torch.rand(3, 48, 48, generator=g) * 0.6 + 0.2
        write_image(tmp_path / "real" / "clean" / f"im{i}.png", clean)
        write_image(tmp_path / "real" / "noisy" / f"im{i}.png", (clean + 0.04 * torch.randn(clean.shape, generator=g)).clamp(0, 1))
        write_image(tmp_path / "gen" / f"im{i}_0.png", (clean + 0.05 * torch.randn(clean.shape, generator=g)).clamp(0, 1))
    out = tmp_path / "rep"
    assert main(["report", str(run), str(metrics), "--out", str(out), "--real", f"pairs:{tmp_path / 'real'}",
                 "--generated", str(tmp_path / "gen"), "--max-images", "2"]) == 0
    page = (out / "index.html").read_text()
    for name in ("run0_curves.png", "run0_step_00000050.png", "crops.png", "noise_histograms.png",
                 "noise_level_function.png", "noise_spectra.png"):
        assert (out / name).stat().st_size > 1000, name
        assert f'src="{name}"' in page
    assert "0.1200" in page and "akld" in page and "seed: 0" in page
    record = json.loads((out / "report.json").read_text())
    assert "crops.png" in record["files"] and "run0_step_00000050.png" in record["files"]
    # the folder updated with other inputs keeps no figure of the earlier page
    assert main(["report", str(metrics), "--out", str(out)]) == 0
    left = sorted(p.name for p in out.iterdir())
    assert left == ["index.html", "report.json"], left
    # one input given twice (another spelling of the same path) is refused, nothing written
    assert main(["report", str(metrics), str(tmp_path / "." / "noise.json"), "--out", str(tmp_path / "rep2")]) == 2
    assert not (tmp_path / "rep2").exists()


def test_report_errors(tmp_path, capsys):
    assert main(["report", str(tmp_path / "nope.json"), "--out", str(tmp_path / "o")]) == 2
    assert "no such run folder or JSON file" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    assert main(["report", str(bad), "--out", str(tmp_path / "o")]) == 2
    assert "not a pngan metric JSON" in capsys.readouterr().err


def test_report_calibrated_column_and_noise_rows(tmp_path, monkeypatch):
    """--calibration adds the fitted baseline beside settings 1 and 2 (crops, curves), and every
    image row of the crops is followed by its noise x4 row (image - clean, centred at 0.5)."""
    from pngan.data.specs import open_dataset
    from pngan.eval import plots
    from pngan.noise.calibrated import fit_calibrated, save_calibration

    g = torch.Generator().manual_seed(5)
    for i in range(2):
        clean = torch.rand(3, 48, 48, generator=g) * 0.6 + 0.2
        write_image(tmp_path / "real" / "clean" / f"im{i}.png", clean)
        write_image(tmp_path / "real" / "noisy" / f"im{i}.png", (clean + 0.04 * torch.randn(clean.shape, generator=g)).clamp(0, 1))
    save_calibration(fit_calibrated(open_dataset(f"pairs:{tmp_path / 'real'}"), correlated=False), tmp_path / "c.json")
    seen = {}
    real_crops, real_spectra = plots.plot_crops, plots.plot_spectra

    def crops(path, rows):
        seen["rows"] = rows
        return real_crops(path, rows)

    def spectra(path, curves):
        seen["curves"] = list(curves)
        return real_spectra(path, curves)

    monkeypatch.setattr(plots, "plot_crops", crops)
    monkeypatch.setattr(plots, "plot_spectra", spectra)
    assert main(["report", "--out", str(tmp_path / "rep"), "--real", f"pairs:{tmp_path / 'real'}",
                 "--calibration", str(tmp_path / "c.json")]) == 0
    rows = seen["rows"]
    assert [r[0] for r in rows] == ["im0", "im0: noise x4", "im1", "im1: noise x4"]
    assert list(rows[0][1]) == ["clean", "setting 1 (AWGN)", "setting 2 (RAW)", "calibrated (fitted)", "real"]
    assert "calibrated (fitted)" in seen["curves"]
    # the noise row of the clean column is flat 0.5; the calibrated noise has about the real level
    assert np.allclose(rows[1][1]["clean"], 0.5)
    cal_std = float(np.std(rows[1][1]["calibrated (fitted)"] - 0.5)) / 4
    real_std = float(np.std(rows[1][1]["real"] - 0.5)) / 4
    assert 0.7 < cal_std / real_std < 1.4
    assert main(["report", "--out", str(tmp_path / "rep2"), "--calibration", str(tmp_path / "c.json")]) == 2


def test_a_figure_of_an_older_pngan_is_named_as_such(tmp_path):
    """Figures an older pngan drew carry the marker 'figure' (no command): a refusal says so, instead of
    'a figure drawn by pngan', which left the user guessing why pngan would not replace its own file."""
    from PIL import Image, PngImagePlugin

    from pngan.errors import PnganError
    from pngan.io.json_out import check_plot_target

    info = PngImagePlugin.PngInfo()
    info.add_text("pngan", "figure")
    Image.new("RGB", (4, 4)).save(tmp_path / "old.png", pnginfo=info)
    with pytest.raises(PnganError, match="older pngan, which did not record which command drew it"):
        check_plot_target(tmp_path / "old.png", "evaluate noise --plot")


def test_report_deletes_only_its_own_earlier_figures(tmp_path):
    """A folder of other commands' figures is not a report folder; a report.json whose file list names
    the page, a path outside, or a user's file is not obeyed for those."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from pngan.eval.plots import _save
    from pngan.io.json_out import write_json

    metrics = tmp_path / "noise.json"
    metrics.write_text(json.dumps({"kind": "noise", "real": "pairs:x", "images": {}, "mean": {"akld": 0.1}}))
    figs = tmp_path / "figs"
    figs.mkdir()
    _save(plt.figure(), figs / "bench.png", "benchmark denoise")
    assert main(["report", str(metrics), "--out", str(figs)]) == 2  # another command's figure: not a report folder
    assert (figs / "bench.png").is_file()
    rep = tmp_path / "rep"
    assert main(["report", str(metrics), "--out", str(rep)]) == 0
    (tmp_path / "victim.txt").write_text("mine")
    crafted = {"../victim.txt": None, "index.html": None, "": None, ".": None, "..": None, "sub/x.png": None}
    write_json(rep / "report.json", {"inputs": [], "files": crafted}, "report")
    assert main(["report", str(metrics), "--out", str(rep)]) == 0
    assert (tmp_path / "victim.txt").read_text() == "mine" and (rep / "index.html").is_file()
    # a user's file in the folder, or a figure changed since the report drew it: the update is refused
    (rep / "mine.png").write_bytes(b"not pngan's")
    assert main(["report", str(metrics), "--out", str(rep)]) == 2
    assert (rep / "mine.png").read_bytes() == b"not pngan's"
    (rep / "mine.png").unlink()
    run = tmp_path / "run"
    run.mkdir()
    (run / "stats.jsonl").write_text(json.dumps({"step": 1, "loss_g": 1.0}) + "\n")
    assert main(["report", str(run), str(metrics), "--out", str(rep)]) == 0
    (rep / "run0_curves.png").write_bytes(b"edited")
    assert main(["report", str(metrics), "--out", str(rep)]) == 2
    assert (rep / "run0_curves.png").read_bytes() == b"edited"
