"""The command line and the benchmarks behind it, run as a user would."""

import json
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from gatework.golden.formats import DEFAULT_FORMATS
from gatework.host.tools import bench
from gatework.hdl import BLOCKS
from gatework.host.tools.cli import main


def test_demo_prints_every_backend(capsys):
    assert main(["demo", "--steps", "6", "--batch", "3"]) == 0
    printed = capsys.readouterr()
    out = printed.out
    # The compiled engine where Verilator is installed (as the project's test setup does).
    assert "compiled by Verilator" in out
    assert re.search(r"sim:verilator: .* \d+ clock cycles in \d+\.\d\d s; outputs", out), out
    for backend in ("numpy", "golden", "torch:cpu", "sim:verilator"):
        assert f"\n{backend} " in out
    golden_line = next(line for line in out.splitlines() if line.startswith("golden"))
    max_error, mean_error = map(float, re.findall(r"\d\.\d\de[-+]\d\d", golden_line))
    assert 0 < mean_error <= max_error, golden_line
    assert "outputs and final states identical to golden" in out
    assert "device='sim'" in out and out.count("identical to golden") == 2
    assert 0 < max_error < 5e-3, golden_line


def test_console_script_is_installed():
    result = subprocess.run([sys.executable, "-m", "gatework.host.tools.cli", "info"],
                            capture_output=True, text=True, check=True)
    assert str(DEFAULT_FORMATS.data) in result.stdout
    assert "'golden'" in result.stdout


def test_bench_accuracy_quick_writes_markdown(tmp_path):
    out = tmp_path / "numerics.md"
    assert main(["bench", "accuracy", "--quick", "--out", str(out)]) == 0
    text = out.read_text()
    assert "| sigmoid |" in text and "| tanh |" in text
    assert "(default)" in text
    assert "Worst case at the default formats" in text


def test_bench_torch_quick_writes_markdown_and_json(tmp_path):
    torch = pytest.importorskip("torch")
    out, records = tmp_path / "torch.md", tmp_path / "torch.json"
    assert main(["bench", "torch", "--quick", "--out", str(out), "--json", str(records)]) == 0
    text = out.read_text()
    data = json.loads(records.read_text())
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for device in devices:
        for batch in bench.TORCH_BATCHES:
            assert re.search(rf"^\| {device} \| 8 \| 16 \| {batch} \| [\d.]+ us \| [\d.]+ us "
                             rf"\| [\d.]+ us \|$", text, re.MULTILINE), (device, batch)
    assert sorted({(r["device"], r["linear_before_reset"]) for r in data["accuracy"]}) == sorted(
        (device, form) for device in devices for form in (False, True))
    # float32 over 100 steps, against float64: far inside the bound, and not exactly equal.
    assert all(0 < r["max_error"] <= 2e-5 for r in data["accuracy"])
    assert all(r["api_s"] > 0 for r in data["speed"])


def test_accuracy_bound_at_default_formats():
    # The bound the defaults were chosen for, at the largest size: D = H = 64, T = 100.
    results = bench.measure_accuracy(sizes=((64, 64, 100),), candidates=(
        (str(DEFAULT_FORMATS.data), str(DEFAULT_FORMATS.weight), str(DEFAULT_FORMATS.bias)),),
        progress=lambda message: None)
    for result in results:
        print(result.linear_before_reset, result.max_error, result.mean_error)
        assert result.max_error <= 5e-3
        assert result.mean_error <= 1e-3
        assert result.max_error > 0
        assert result.saturated == 0


def test_digits_float_vs_fixed():
    result = bench.train_digits(seed=0, progress=lambda message: None)
    print(result)
    assert result.float_accuracy > 0.9, "the classifier did not learn"
    assert result.drop_points <= 0.5
    assert result.saturated == 0
    assert result.test_samples == 450 and result.device is None


def test_ragged_vowels_float_vs_fixed_and_through_the_simulated_rtl():
    # All 370 test utterances (7 to 29 frames, each at its own length) through the
    # accelerator's RTL (compiled where Verilator is, as the project's test setup installs
    # it), in requests of the default build's batch: final states golden's bit for bit.
    result = bench.train_vowels(seed=0, progress=lambda message: None, device="sim")
    print(result)
    assert result.float_accuracy > 0.9, "the classifier did not learn"
    assert result.drop_points <= 0.5
    assert result.saturated == 0
    assert result.test_samples == 370 and result.device.startswith("sim:")
    assert result.device_identical
    assert "370 test utterances" in bench.classifier_report(result)
    assert "identical to golden's" in bench.classifier_report(result)


def test_bad_arguments_exit_with_a_message(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", "nonsense"])
    assert exit_info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_speed_report_relative_column():
    text = bench.speed_report({"golden fixed point (bit-exact)": 0.3,
                               "NumPy float64 reference": 0.1})
    assert "| 3.00x |" in text and "| 1.00x |" in text
    assert np.isclose(float(text.split("| golden fixed point (bit-exact) | ")[1].split(" ms")[0]),
                      300.0)


@pytest.mark.parametrize("block", sorted(BLOCKS))
def test_verilog_export_compiles(block, tmp_path):
    out = tmp_path / f"{block}.v"
    assert main(["verilog", block, "--name", f"gatework_{block}", "-o", str(out)]) == 0
    text = out.read_text()
    assert f"module gatework_{block}(" in text
    if shutil.which("iverilog"):
        subprocess.run(["iverilog", "-g2012", "-o", str(tmp_path / "sim.vvp"), str(out)],
                       check=True, capture_output=True)


def test_verilog_export_takes_block_options(tmp_path):
    wide, narrow = tmp_path / "wide.v", tmp_path / "narrow.v"
    assert main(["verilog", "rescale", "--input-width", "48", "-o", str(wide)]) == 0
    assert main(["verilog", "rescale", "--input-width", "20", "-o", str(narrow)]) == 0
    assert "input [47:0] i__payload;" in wide.read_text()
    assert "input [19:0] i__payload;" in narrow.read_text()


def test_run_a_saved_torch_model(tmp_path, capsys):
    import torch
    torch.manual_seed(0)
    module = torch.nn.GRU(3, 5, num_layers=2, bidirectional=True).double()
    torch.save(module.state_dict(), tmp_path / "gru.pt")
    x = np.random.default_rng(0).standard_normal((6, 2, 3))
    np.save(tmp_path / "x.npy", x)
    out = tmp_path / "out.npy"
    assert main(["run", str(tmp_path / "gru.pt"), str(tmp_path / "x.npy"), "--device", "numpy",
                 "-o", str(out)]) == 0
    expected, expected_h_n = module(torch.as_tensor(x))
    assert np.abs(np.load(out) - expected.detach().numpy()).max() < 1e-9
    assert np.abs(np.load(tmp_path / "out.h_n.npy") - expected_h_n.detach().numpy()).max() < 1e-9


def test_run_refuses_a_file_that_is_not_a_gru(tmp_path, capsys):
    import torch
    torch.save({"something": torch.zeros(1)}, tmp_path / "other.pt")
    np.save(tmp_path / "x.npy", np.zeros((2, 1, 3)))
    assert main(["run", str(tmp_path / "other.pt"), str(tmp_path / "x.npy")]) == 2
    assert "not a torch.nn.GRU state dict" in capsys.readouterr().err


def test_info_asks_a_board(capsys):
    from gatework.golden.config import BuildConfig
    from gatework.golden.device_model import DeviceModel
    from gatework.sim.server import serve_tcp
    config = BuildConfig(lanes=4, max_hidden_size=32)
    with serve_tcp(DeviceModel(config)) as port:
        assert main(["info", "--device", f"fpga:socket://127.0.0.1:{port}"]) == 0
    out = capsys.readouterr().out
    assert "lanes 4" in out and "hidden 32" in out
