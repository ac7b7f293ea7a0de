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
    assert "module.pt holds a pickled torch.nn.GRU module, not a state dict" in line
    assert "torch.save(model) of a whole module" in line and "runs arbitrary code" in line
    assert "torch.save(model.state_dict(), PATH)" in line
    # torch's own advice, to unpickle the file anyway, is not passed on.
    assert "weights_only" not in line and "\x1b" not in line


class Classifier(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.gru = torch.nn.GRU(3, 5, num_layers=2, bidirectional=True)
        self.fc = torch.nn.Linear(10, 2)


@pytest.mark.parametrize("module, what", [
    (torch.nn.Sequential(torch.nn.GRU(3, 3)), "a pickled torch.nn.Sequential module"),
    (Classifier(), f"a pickled {__name__}.Classifier object"),
])
def test_a_pickled_module_holding_a_gru(module, what, folder, capsys):
    torch.save(module, "model.pt")
    line = refused(capsys, "model.pt")
    assert f"model.pt holds {what}, not a state dict" in line
    assert "torch.save(model.gru.state_dict(), PATH)" in line


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
    (torch.nn.BatchNorm1d(3), "its keys are 'weight', 'bias', 'running_mean', 'running_var', "
                              "'num_batches_tracked'"),
    (torch.nn.ParameterDict({f"p{i}": torch.zeros(1) for i in range(7)}),
     "its keys are 'p0', 'p1', 'p2', 'p3', 'p4', ..."),
])
def test_a_state_dict_without_a_recurrent_layer(module, looks, folder, capsys):
    torch.save(module.state_dict(), "other.pt")
    line = refused(capsys, "other.pt")
    assert "is not a torch.nn.GRU state dict" in line and looks in line


def test_an_lstm_inside_a_module_is_named_with_its_prefix(folder, capsys):
    torch.save(torch.nn.ModuleDict({"encoder": torch.nn.LSTM(3, 4)}).state_dict(), "m.pt")
    assert "torch.nn.LSTM (under the prefix 'encoder.')" in refused(capsys, "m.pt")


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


def test_the_legacy_torch_save_format_runs(folder, capsys):
    # torch.save's format before torch 1.6, and since then on request: not a zip archive.
    module = torch.nn.GRU(3, 4)
    torch.save(module.state_dict(), "legacy.pt", _use_new_zipfile_serialization=False)
    assert run(capsys, "legacy.pt", "x.npy", "-o", "out.npy")[0] == 0
    expected, _ = GRU.from_torch(module, device="golden")(np.load("x.npy"))
    np.testing.assert_array_equal(np.load("out.npy"), expected)


def test_torchscript_is_refused_unloaded(folder, capsys):
    with warnings.catch_warnings():
        # torch deprecates TorchScript; users still have such files.
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(torch.jit.script(torch.nn.GRU(3, 4)), "script.pt")
    line = refused(capsys, "script.pt")
    assert "script.pt is a TorchScript archive (torch.jit.save), not a state dict" in line
    assert "torch.save(model.state_dict(), PATH)" in line


def test_a_truncated_or_empty_torch_file(folder, capsys):
    torch.save(torch.nn.GRU(3, 4).state_dict(), "gru.pt")
    data = (folder / "gru.pt").read_bytes()
    (folder / "cut.pt").write_bytes(data[:len(data) // 2])
    assert "cut.pt begins as a zip archive, as torch.save writes, but its end is missing" in \
        refused(capsys, "cut.pt")
    (folder / "empty.pt").write_bytes(b"")
    assert "the model file empty.pt is empty" in refused(capsys, "empty.pt")


def test_a_zip_archive_that_torch_did_not_write(folder, capsys):
    np.savez("arrays.npz", a=np.zeros(3))
    line = refused(capsys, "arrays.npz")
    assert "arrays.npz is neither an ONNX file (.onnx) nor a file torch.save wrote (" in line
    assert "enforce fail" not in line


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
    (folder / "folder.pt").mkdir()
    assert "the model file folder.pt is a folder" in refused(capsys, "folder.pt")


def test_an_unreadable_file(folder, capsys, monkeypatch):
    # Permissions cannot be relied on to refuse a read (root reads anything), so the refusal
    # is the one open() gives a user without read permission.
    import builtins
    from gatework.host import model_files
    torch.save(torch.nn.GRU(3, 4).state_dict(), "gru.pt")

    def denied(path, *args, **kwargs):
        if str(path) == "gru.pt":
            raise PermissionError(13, "Permission denied", str(path))
        return builtins.open(path, *args, **kwargs)

    monkeypatch.setattr(model_files, "open", denied, raising=False)
    assert "the model file gru.pt cannot be read (Permission denied); check its permissions" \
        in refused(capsys, "gru.pt")


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
    (folder / "empty.npy").write_bytes(b"")
    assert "the input file empty.npy is not a NumPy .npy array" in \
        refused(capsys, "gru.pt", x="empty.npy")
    np.savez("x.npz", x=np.zeros((4, 2, 3)), lengths=np.ones(2))
    assert "the input file x.npz is a NumPy .npz archive (of the arrays x, lengths), not one " \
        ".npy array" in refused(capsys, "gru.pt", x="x.npz")


def test_the_output_names_printed_are_those_written(folder, capsys):
    torch.save(torch.nn.GRU(3, 4).state_dict(), "gru.pt")
    status, err = run(capsys, "gru.pt", "x.npy", "-o", "results/out")
    assert status == 0
    assert "wrote results/out.npy and results/out.h_n.npy" in err
    assert np.load("results/out.npy").shape == (4, 2, 4)
    assert np.load("results/out.h_n.npy").shape == (1, 2, 4)


def test_an_unwritable_output_is_one_line(folder, capsys):
    torch.save(torch.nn.GRU(3, 4).state_dict(), "gru.pt")
    (folder / "file").write_text("")
    assert "the output file file/out.npy would be in file, which is a file, not a folder" in \
        refused(capsys, "gru.pt", "-o", "file/out.npy")
    (folder / "taken.npy").mkdir()
    assert "the output file taken.npy is a folder" in refused(capsys, "gru.pt", "-o", "taken")


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
    assert set(devices) == {"gatework run", "gatework info", "gatework bench digits",
                            "gatework bench vowels"}
    for text in devices.values():
        for name in DEVICE_NAMES + ("fpga:URL",):
            assert f"{name}," in text or f"{name} " in text, (name, text)


def test_onnx_models_read_by_the_command_are_checked(folder, capsys):
    # The checker is not a test of ours; this asserts the export the tests above use is sound.
    export(torch.nn.GRU(3, 4), "gru.onnx")
    onnx.checker.check_model(onnx.load("gru.onnx"))
    assert run(capsys, "gru.onnx")[0] == 0
