"""The layer contracts of pyproject.toml (import-linter), and what ``import gatework.host``
loads: NumPy and our own API, nothing heavy and none of the tooling."""

import pathlib
import subprocess
import sys


ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_layer_contracts_hold():
    lint = pathlib.Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint)], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout and "5 kept" in result.stdout


def test_the_api_loads_no_tooling_and_nothing_heavy(tmp_path):
    code = ("import sys, gatework.host; "
            "heavy = {'torch', 'onnx', 'onnxruntime', 'sklearn', 'serial', 'amaranth', "
            "'matplotlib'}; "
            "loaded = {name.split('.')[0] for name in sys.modules} & heavy; "
            "ours = {name for name in sys.modules if name.startswith('gatework.') and "
            "name.split('.')[1] not in ('golden', 'host') "
            "or name.startswith('gatework.host.tools')}; "
            "print(sorted(loaded | ours))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
