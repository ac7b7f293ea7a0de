"""Models and arrays from the files users bring: ONNX exports, ``torch.save`` files, ``.npy``.

Every file that is not what it must be is refused with a ``ValueError`` (or the ``OSError`` of
a file that cannot be read) whose message names the file, says what it holds instead and what
to do. Nothing here unpickles Python objects: ``torch.load`` runs with ``weights_only=True``
and ``numpy.load`` with ``allow_pickle=False``, as loading a pickle runs arbitrary code.
"""

import pathlib
import re

import numpy as np


__all__ = ["load_gru", "load_array"]


_TORCH_SAVE_HINT = ("save the GRU's weights with torch.save(model.state_dict(), PATH) (for a "
                    "GRU inside a larger module, torch.save(model.gru.state_dict(), PATH) or "
                    "the whole state dict: its GRU is found by its key prefix), or export it "
                    "with torch.onnx.export")


def load_gru(path, *, node=None, **options):
    """A :class:`~.modules.GRU` from an ONNX file or a ``torch.save`` file of a state dict.

    Parameters
    ----------
    path : str or os.PathLike
        ``*.onnx``: imported whole (see :meth:`GRU.from_onnx`). Anything else is read with
        ``torch.load(weights_only=True)``: a ``torch.nn.GRU``'s state dict, a state dict of
        a module that holds one GRU (its keys' prefix is found and stripped), or a checkpoint
        dict holding such a state dict under one of its keys.
    node : str, optional
        For an ONNX file: import only the GRU node of this name.
    options
        Passed to the module: ``device``, ``batch_first``, ``formats``...
    """
    from .modules import GRU

    path = pathlib.Path(path)
    _check_file(path, "model")
    if path.suffix.lower() == ".onnx":
        return GRU.from_onnx(path, node=node, **options)
    if node is not None:
        raise ValueError(f"node= names a node of an ONNX graph; {path} is not an .onnx file")
    return GRU.from_torch(_torch_gru(path), **options)


def load_array(path, what, *, ndim):
    """A ``.npy`` array, refused with the file's name unless its rank is one of ``ndim``."""
    path = pathlib.Path(path)
    _check_file(path, what)
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, EOFError) as error:
        # EOFError: an empty file; ValueError: a truncated header, text, a pickle.
        raise ValueError(f"the {what} file {path} is not a NumPy .npy array ({error}); write "
                         f"it with numpy.save") from None
    if isinstance(array, np.lib.npyio.NpzFile):
        names = ", ".join(array.files)
        array.close()
        raise ValueError(f"the {what} file {path} is a NumPy .npz archive (of the arrays "
                         f"{names}), not one .npy array; write the array with numpy.save")
    if array.ndim not in ndim:
        raise ValueError(f"the {what} file {path} holds an array of shape {array.shape}; it "
                         f"must have {' or '.join(map(str, ndim))} dimensions")
    return array


def _check_file(path, what):
    if not path.exists():
        raise FileNotFoundError(f"the {what} file {path} does not exist")
    if path.is_dir():
        raise IsADirectoryError(f"the {what} file {path} is a folder, not a file")
    try:
        with open(path, "rb"):
            pass
    except PermissionError as error:
        raise PermissionError(f"the {what} file {path} cannot be read ({error.strerror}); "
                              f"check its permissions") from None


def _torch_gru(path):
    """The ``torch.nn.GRU`` whose state dict ``path`` holds, rebuilt from the state's shapes."""
    import pickle
    import torch

    _check_torch_file(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        # torch's message says how to unpickle the file anyway, which gatework will not do;
        # only the class it stopped at is worth repeating.
        found = re.search(r"GLOBAL (\S+) was not an allowed global", str(error))
        name = found and found.group(1)
        if name and name.startswith("torch.nn.modules."):
            what = f"a pickled torch.nn.{name.rsplit('.', 1)[-1]} module"
        elif name:
            what = f"a pickled {name} object"
        else:
            what = "a pickled Python object"
        raise ValueError(
            f"{path} holds {what}, not a state dict of tensors: torch.save(model) of a whole "
            f"module writes such a file; gatework does not unpickle it, as loading a pickle "
            f"runs arbitrary code. Instead, {_TORCH_SAVE_HINT}") from None
    except (RuntimeError, EOFError, OSError) as error:
        if isinstance(error, (FileNotFoundError, PermissionError)):
            raise
        # torch's C++ checks begin their messages with where in its sources they failed.
        reason = re.sub(r"^\[enforce fail at [^]]*\][\s.]*", "", str(error).splitlines()[0])
        raise ValueError(f"{path} is neither an ONNX file (.onnx) nor a file torch.save wrote "
                         f"({reason})") from None
    state = _gru_state(path, state)
    weight_ih = [key for key in state if re.fullmatch(r"weight_ih_l\d+", key)]
    hidden_size, input_size = state["weight_hh_l0"].shape[1], state["weight_ih_l0"].shape[1]
    module = torch.nn.GRU(input_size, hidden_size, len(weight_ih), bias="bias_ih_l0" in state,
                          bidirectional="weight_ih_l0_reverse" in state)
    try:
        module.load_state_dict(state)
    except RuntimeError as error:
        raise ValueError(f"{path} holds GRU weights that do not fit one torch.nn.GRU: "
                         f"{error}") from None
    return module


def _gru_state(path, state):
    """The GRU's own state dict inside what ``torch.load`` gave, or a ValueError saying why
    there is none."""
    if not isinstance(state, dict):
        raise ValueError(f"{path} holds a {type(state).__name__}, not a state dict; "
                         f"{_TORCH_SAVE_HINT}")
    tensors = {key: value for key, value in state.items() if hasattr(value, "shape")}
    prefixes = sorted({key[:-len("weight_ih_l0")] for key in tensors
                       if key.endswith("weight_ih_l0")})
    if not prefixes:
        # A training checkpoint: {"model": state_dict, "optimizer": ..., "epoch": ...}.
        nested = [(key, value) for key, value in state.items() if isinstance(value, dict)
                  and any(str(k).endswith("weight_ih_l0") for k in value)]
        if len(nested) == 1:
            return _gru_state(f"{path} (key {nested[0][0]!r})", nested[0][1])
        raise ValueError(f"{path} is not a torch.nn.GRU state dict: it has no 'weight_ih_l0'; "
                         f"{_looks_like(tensors or state)}. {_TORCH_SAVE_HINT[0].upper()}"
                         f"{_TORCH_SAVE_HINT[1:]}")
    if len(prefixes) > 1:
        raise ValueError(f"{path} holds several recurrent layers, under the key prefixes "
                         f"{prefixes}; save the one to run alone: "
                         f"torch.save(model.<name>.state_dict(), PATH)")
    prefix = prefixes[0]
    gru = {key[len(prefix):]: value for key, value in tensors.items() if key.startswith(prefix)}
    rows, hidden = gru["weight_ih_l0"].shape[0], gru["weight_hh_l0"].shape[-1]
    kind = {hidden: "torch.nn.RNN", 4 * hidden: "torch.nn.LSTM"}.get(rows)
    if "weight_hr_l0" in gru:
        kind = "torch.nn.LSTM with proj_size"
    if kind is not None or rows != 3 * hidden:
        where = f" (under the prefix {prefix!r})" if prefix else ""
        raise ValueError(f"{path} holds the weights of a {kind or 'recurrent layer'}{where}, "
                         f"not of a torch.nn.GRU: weight_ih_l0 has {rows} rows for a hidden "
                         f"size of {hidden} (a GRU has 3 x {hidden} = {3 * hidden}); gatework "
                         f"runs GRUs only")
    return gru


# torch.save wrote its legacy format, a pickle of this magic number first, before torch 1.6,
# and still does with _use_new_zipfile_serialization=False.
_LEGACY_TORCH_MAGIC = b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19"


def _check_torch_file(path):
    """Refuse a file that is not what ``torch.save`` writes, before ``torch.load`` sees it: its
    unpickler's errors on arbitrary bytes say nothing useful, and it loads TorchScript."""
    import zipfile

    with open(path, "rb") as file:
        head = file.read(len(_LEGACY_TORCH_MAGIC))
    if not head:
        raise ValueError(f"the model file {path} is empty; pass MODEL.onnx, or a state dict "
                         f"saved with torch.save(model.state_dict(), PATH)")
    if head == _LEGACY_TORCH_MAGIC:
        return
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            torchscript = any(name.endswith("/constants.pkl") for name in archive.namelist())
        if torchscript:
            raise ValueError(f"{path} is a TorchScript archive (torch.jit.save), not a state "
                             f"dict; gatework reads weights, not programs. Instead, "
                             f"{_TORCH_SAVE_HINT}")
        return
    if head.startswith(b"PK\x03\x04"):
        raise ValueError(f"{path} begins as a zip archive, as torch.save writes, but its end is "
                         f"missing or corrupt (a truncated copy or download?); save or copy it "
                         f"again")
    raise ValueError(f"{path} is neither an ONNX file (.onnx) nor a file torch.save wrote; "
                     f"pass MODEL.onnx, or a state dict saved with "
                     f"torch.save(model.state_dict(), PATH)")


def _looks_like(state):
    """What a state dict without a recurrent layer seems to be, for the error message."""
    keys = list(state)
    shapes = {key: tuple(getattr(value, "shape", ())) for key, value in state.items()}
    if keys and all(key.rsplit(".", 1)[-1] in ("weight", "bias") for key in keys):
        ranks = {len(shapes[key]) for key in keys if key.endswith("weight")}
        if ranks == {2}:
            return "its weights are those of torch.nn.Linear layers"
        if ranks and min(ranks) >= 3:
            return "its weights are those of convolution layers (torch.nn.Conv*)"
    shown = ", ".join(repr(key) for key in keys[:5])
    return f"its keys are {shown}{', ...' if len(keys) > 5 else ''}" if keys else "it is empty"
