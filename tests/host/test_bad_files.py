"""``gatework run`` on the files users really have: each bad one gets one clear line on stderr
and exit status 2, never a traceback; a GRU saved the ways torch users save one runs."""

import argparse
import warnings

import numpy as np
import onnx
import pytest
import torch

from gatework.host import GRU
from gatework.host.backends import DEVICE_NAMES
from gatework.host.tools.cli import main


def export(module, path):
    with warnings.catch_warnings():
        # The TorchScript exporter warns that it is the legacy one, and about its tracing;
        # users still run it.
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (torch.zeros(2, 1, 3),), path, dynamo=False)


def run(capsys, model, x="x.npy", *extra):
    status = main(["run", str(model), str(x), "--device", "golden", *map(str, extra)])
    err = capsys.readouterr().err
    return status, err


@pytest.fixture
def folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    np.save("x.npy", np.random.default_rng(0).standard_normal((4, 2, 3)))
    return tmp_path


def refused(capsys, model, *more, x="x.npy"):
    status, err = run(capsys, model, x, *more)
    assert status == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gatework run: error: "), err
    assert "Traceback" not in err
    return lines[0]


def test_a_whole_pickled_module(folder, capsys):
    torch.save(torch.nn.GRU(3, 4), "module.pt")
    line = refused(capsys, "module.pt")
    assert "holds a pickled Python object" in line and "torch.save(model)" in line
    assert "runs arbitrary code" in line and "torch.save(model.state_dict(), PATH)" in line


def test_a_pickled_sequential(folder, capsys):
    torch.save(torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.ReLU()), "seq.pt")
    assert "holds a pickled Python object" in refused(capsys, "seq.pt")


@pytest.mark.parametrize("module, kind", [
    (torch.nn.LSTM(3, 4), "torch.nn.LSTM"),
    (torch.nn.LSTM(3, 4, proj_size=2), "torch.nn.LSTM with proj_size"),
    (torch.nn.RNN(3, 4), "torch.nn.RNN"),
])
def test_a_state_dict_of_another_recurrent_layer(module, kind, folder, capsys):
    torch.save(module.state_dict(), "other.pt")
    line = refused(capsys, "other.pt")
    assert f"holds the weights of a {kind}, not of a torch.nn.GRU" in line


@pytest.mark.parametrize("module, looks", [
    (torch.nn.Linear(3, 4), "torch.nn.Linear"),
    (torch.nn.Sequential(torch.nn.Conv1d(3, 4, 2)), "convolution layers"),
])
def test_a_state_dict_without_a_recurrent_layer(module, looks, folder, capsys):
    torch.save(module.state_dict(), "other.pt")
    line = refused(capsys, "other.pt")
    assert "is not a torch.nn.GRU state dict" in line and looks in line


def test_an_lstm_inside_a_module_is_named_with_its_prefix(folder, capsys):
    torch.save(torch.nn.ModuleDict({"encoder": torch.nn.LSTM(3, 4)}).state_dict(), "m.pt")
    assert "torch.nn.LSTM (under the prefix 'encoder.')" in refused(capsys, "m.pt")


class Classifier(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.gru = torch.nn.GRU(3, 5, num_layers=2, bidirectional=True)
        self.fc = torch.nn.Linear(10, 2)


@pytest.mark.parametrize("habit", ["prefixed", "checkpoint"])
def test_a_gru_inside_a_state_dict_runs(habit, folder, capsys):
    # The habits: the whole model's state dict, and a training checkpoint holding it.
    torch.manual_seed(1)
    model = Classifier()
    state = model.state_dict()
    torch.save(state if habit == "prefixed" else {"model": state, "epoch": 3}, "m.pt")
    status, _ = run(capsys, "m.pt", "x.npy", "-o", "out.npy")
    assert status == 0
    expected, expected_h_n = GRU.from_torch(model.gru, device="golden")(np.load("x.npy"))
    np.testing.assert_array_equal(np.load("out.npy"), expected)
    np.testing.assert_array_equal(np.load("out.h_n.npy"), expected_h_n)


def test_two_recurrent_layers_in_one_state_dict(folder, capsys):
    torch.save(torch.nn.ModuleDict({"a": torch.nn.GRU(3, 4), "b": torch.nn.GRU(4, 4)})
               .state_dict(), "two.pt")
    assert "several recurrent layers, under the key prefixes ['a.', 'b.']" in \
        refused(capsys, "two.pt")


def test_missing_files(folder, capsys):
    torch.save(torch.nn.GRU(3, 4).state_dict(), "gru.pt")
    assert "the model file nothing.pt does not exist" in refused(capsys, "nothing.pt")
    assert "the input file missing.npy does not exist" in refused(capsys, "gru.pt",
                                                                  x="missing.npy")
    assert "the lengths file l.npy does not exist" in refused(capsys, "gru.pt", "--lengths",
                                                              "l.npy")


def test_a_folder_as_model(folder, capsys):
    (folder / "folder.onnx").mkdir()
    assert "the model file folder.onnx is a folder" in refused(capsys, "folder.onnx")


@pytest.mark.parametrize("content", [b"\x00\x01garbage\xff" * 10, b"a text file\n"])
def test_neither_onnx_nor_torch(content, folder, capsys):
    (folder / "model.bin").write_bytes(content)
    assert "model.bin is neither an ONNX file (.onnx) nor a file torch.save wrote" in \
        refused(capsys, "model.bin")


def test_a_truncated_onnx_file(folder, capsys):
    export(torch.nn.GRU(3, 4), "gru.onnx")
    data = (folder / "gru.onnx").read_bytes()
    (folder / "cut.onnx").write_bytes(data[:len(data) * 2 // 3])
    assert "cut.onnx is not an ONNX model, or it is truncated or corrupt" in \
        refused(capsys, "cut.onnx")


def test_node_is_for_onnx_files(folder, capsys):
    torch.save(torch.nn.GRU(3, 4).state_dict(), "gru.pt")
    assert "not an .onnx file" in refused(capsys, "gru.pt", "--node", "x")


@pytest.mark.parametrize("shape, message", [
    ((3,), "shape (3,); it must have 2 or 3 dimensions"),
    ((2, 2, 2, 3), "shape (2, 2, 2, 3); it must have 2 or 3 dimensions"),
    ((4, 2, 7), "has 7 features in its last dimension (shape (4, 2, 7)); the model takes "
                "input_size=3"),
])
def test_inputs_of_the_wrong_shape(shape, message, folder, capsys):
    torch.save(torch.nn.GRU(3, 4).state_dict(), "gru.pt")
    np.save("bad.npy", np.zeros(shape))
    line = refused(capsys, "gru.pt", x="bad.npy")
    assert "the input file bad.npy" in line and message in line


def test_lengths_of_the_wrong_rank_and_an_input_that_is_not_npy(folder, capsys):
    torch.save(torch.nn.GRU(3, 4).state_dict(), "gru.pt")
    np.save("lengths.npy", np.ones((2, 1), dtype=np.int64))
    assert "the lengths file lengths.npy holds an array of shape (2, 1); it must have 1" in \
        refused(capsys, "gru.pt", "--lengths", "lengths.npy")
    (folder / "text.npy").write_text("1 2 3")
    assert "the input file text.npy is not a NumPy .npy array" in \
        refused(capsys, "gru.pt", x="text.npy")


def every_action(parser, path=("gatework",)):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from every_action(sub, path + (name,))
        elif not isinstance(action, argparse._HelpAction):
            yield " ".join(path), action


def test_every_option_has_help_and_the_device_lists_are_complete(monkeypatch):
    parsers = []
    original = argparse.ArgumentParser.parse_args

    def capture(self, *args, **kwargs):
        parsers.append(self)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", capture)
    main(["info"])
    missing = [f"{where} {action.option_strings or action.dest}"
               for where, action in every_action(parsers[0]) if not action.help]
    assert missing == []
    devices = {where: action.help for where, action in every_action(parsers[0])
               if "--device" in action.option_strings}
    assert set(devices) == {"gatework run", "gatework info"}
    for text in devices.values():
        for name in DEVICE_NAMES + ("fpga:URL",):
            assert f"{name}," in text or f"{name} " in text, (name, text)


def test_onnx_models_read_by_the_command_are_checked(folder, capsys):
    # The checker is not a test of ours; this asserts the export the tests above use is sound.
    export(torch.nn.GRU(3, 4), "gru.onnx")
    onnx.checker.check_model(onnx.load("gru.onnx"))
    assert run(capsys, "gru.onnx")[0] == 0
