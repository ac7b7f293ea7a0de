"""Backends: where a host call runs.

Every backend takes the same validated, time-major float64 NumPy arrays and returns float64
NumPy arrays; the modules of :mod:`.modules` do all argument checking and conversion before
any backend sees the data.

* ``golden``: the bit-exact fixed-point model (NumPy). Inputs are converted to the data format
  (round half up, saturate), results are the exact values of the output codes.
* ``numpy``: the float64 reference.
* ``torch``: float, on CUDA when available, else the CPU; ``torch:cuda`` / ``torch:cpu`` force
  one. PyTorch's own ``nn.GRU`` where it has the form asked for, a loop of tensor operations
  where it has not (``linear_before_reset=False``, a lone reverse direction).
* ``fpga:URL``: the accelerator on a board, over a serial port (``fpga:/dev/ttyUSB1``) or
  a TCP socket (``fpga:socket://127.0.0.1:5000``); plain ``fpga`` takes the URL from the
  ``GATEWORK_DEVICE`` environment variable. Bit-exact with ``golden``.
* ``sim``: the accelerator top's RTL simulated, fed the same protocol bytes as a board,
  through the same client: compiled by Verilator where it is installed (``sim:verilator``),
  else in the Amaranth simulator (``sim:amaranth``); either name forces that engine, and the
  backend's name says which runs. Bit-exact with ``golden``, and the two engines give the
  same bytes in the same cycles.
* ``auto``: the best backend that answers: the board named by ``GATEWORK_DEVICE`` if it is
  set and answers INFO, then torch (CUDA, else CPU) if it imports, else numpy.
"""

import contextlib
import logging
import os

import numpy as np

from ..golden.fixed import SaturationCounter
from ..golden.glu import glu_fixed, glu_float
from ..golden.gru import gru_fixed, gru_float, quantize_gru
from .backend import Backend, SaturationWarning, warn_saturation


__all__ = ["SaturationWarning", "Backend", "GoldenBackend", "NumpyBackend", "TorchBackend",
           "resolve_device", "sim_backend", "DEVICE_NAMES"]


logger = logging.getLogger("gatework")

DEVICE_NAMES = ("auto", "golden", "numpy", "torch", "torch:cpu", "torch:cuda", "sim",
                "sim:verilator", "sim:amaranth", "fpga")
DEVICE_ENVIRONMENT = "GATEWORK_DEVICE"


class NumpyBackend(Backend):
    name = "numpy"

    def gru(self, weights, formats, x, h0, lengths):
        return gru_float(weights, x, h0, lengths)

    def glu(self, formats, x, dim):
        return glu_float(x, dim)


class GoldenBackend(Backend):
    name = "golden"
    fixed_point = True

    def __init__(self):
        self._quantized = {}

    def _quantize(self, weights, formats):
        key = (id(weights), formats)
        cached = self._quantized.get(key)
        if cached is None or cached[0] is not weights:
            counter = SaturationCounter()
            cached = (weights, quantize_gru(weights, formats, counter))
            self._quantized = {key: cached}
            warn_saturation(counter, "loading the weights")
        return cached[1]

    def gru(self, weights, formats, x, h0, lengths):
        qweights = self._quantize(weights, formats)
        counter = SaturationCounter()
        x_codes = formats.data.quantize(x, counter, "inputs")
        h0_codes = None if h0 is None else formats.data.quantize(h0, counter, "h0 values")
        out, h_n = gru_fixed(qweights, x_codes, h0_codes, lengths, counter)
        warn_saturation(counter, "this call")
        return formats.data.to_float(out), formats.data.to_float(h_n)

    def glu(self, formats, x, dim):
        counter = SaturationCounter()
        codes = formats.data.quantize(x, counter, "inputs")
        out = glu_fixed(codes, dim, formats, counter)
        warn_saturation(counter, "this call")
        return formats.data.to_float(out)


@contextlib.contextmanager
def tf32_allowed(torch, allow):
    """Within the block, cuDNN and cuBLAS may use TF32 (10-bit mantissas) for float32 only if
    ``allow``; afterwards the switches are as they were. torch allows it in cuDNN by default,
    and a user's script may allow it in cuBLAS too: the backend computes with ``allow=False``."""
    switches = (torch.backends.cudnn, torch.backends.cuda.matmul)
    saved = [switch.allow_tf32 for switch in switches]
    for switch in switches:
        switch.allow_tf32 = allow
    try:
        yield
    finally:
        for switch, before in zip(switches, saved):
            switch.allow_tf32 = before


class TorchBackend(Backend):
    """Float GRU and GLU in PyTorch (float32)."""

    def __init__(self, device):
        import torch
        self._torch = torch
        self.device = torch.device(device)
        self.name = f"torch:{self.device.type}"
        self._modules = {}

    def _tensor(self, array):
        return self._torch.as_tensor(np.asarray(array, dtype=np.float32), device=self.device)

    def _nn_gru(self, weights):
        cached = self._modules.get(id(weights))
        if cached is not None and cached[0] is weights:
            return cached[1]
        torch = self._torch
        module = torch.nn.GRU(weights.input_size, weights.hidden_size, weights.num_layers,
                              bias=weights.bias,
                              bidirectional=weights.direction == "bidirectional")
        with torch.no_grad():
            for k, layer in enumerate(weights.layers):
                for d, cell in enumerate(layer):
                    suffix = f"_l{k}" + ("_reverse" if d == 1 else "")
                    getattr(module, "weight_ih" + suffix).copy_(self._tensor(cell.weight_ih))
                    getattr(module, "weight_hh" + suffix).copy_(self._tensor(cell.weight_hh))
                    if cell.bias:
                        getattr(module, "bias_ih" + suffix).copy_(self._tensor(cell.bias_ih))
                        getattr(module, "bias_hh" + suffix).copy_(self._tensor(cell.bias_hh))
        module = module.to(self.device).eval()
        self._modules = {id(weights): (weights, module)}
        return module

    def gru(self, weights, formats, x, h0, lengths):
        torch = self._torch
        with torch.no_grad(), tf32_allowed(torch, False):
            if weights.linear_before_reset and weights.direction != "reverse":
                out, h_n = self._gru_native(weights, x, h0, lengths)
            else:
                out, h_n = self._gru_loop(weights, x, h0, lengths)
        return (out.to(torch.float64).cpu().numpy(), h_n.to(torch.float64).cpu().numpy())

    def _gru_native(self, weights, x, h0, lengths):
        torch = self._torch
        module = self._nn_gru(weights)
        x_t = self._tensor(x)
        h0_t = None if h0 is None else self._tensor(h0)
        if lengths is None or np.all(lengths == x.shape[0]):
            return module(x_t, h0_t)
        packed = torch.nn.utils.rnn.pack_padded_sequence(
            x_t, torch.as_tensor(lengths, dtype=torch.int64), enforce_sorted=False)
        out, h_n = module(packed, h0_t)
        out, _ = torch.nn.utils.rnn.pad_packed_sequence(out, total_length=x.shape[0])
        return out, h_n

    def _gru_loop(self, weights, x, h0, lengths):
        # Forms and directions cuDNN has no kernel for, as a loop over time in few kernels a
        # step (on CUDA each launch costs microseconds): the biases that do not meet r are
        # folded into the input projections once, and the update is one lerp.
        torch = self._torch
        steps, batch, _ = x.shape
        hidden = weights.hidden_size
        ragged = lengths is not None and not np.all(lengths == steps)
        if ragged:
            # (T, N, 1): 1 while a sequence runs, 0 past its length.
            running = (torch.arange(steps, device=self.device)[:, None] <
                       torch.as_tensor(lengths, device=self.device)[None, :])[..., None]
            running_f = running.to(torch.float32)
        layer_input = self._tensor(x)
        states = []
        for k, layer in enumerate(weights.layers):
            outputs = []
            for d, cell in enumerate(layer):
                w_ih, w_hh = self._tensor(cell.weight_ih), self._tensor(cell.weight_hh)
                w_rz, w_hn = w_hh[:2 * hidden].T, w_hh[2 * hidden:].T
                if cell.bias:
                    b_ih, b_hh = self._tensor(cell.bias_ih), self._tensor(cell.bias_hh)
                else:
                    b_ih = b_hh = torch.zeros(3 * hidden, device=self.device)
                b_hn = b_hh[2 * hidden:]
                folded = b_ih + torch.cat([b_hh[:2 * hidden], torch.zeros_like(b_hn)])
                if not weights.linear_before_reset:
                    folded[2 * hidden:] += b_hn
                gi_all = torch.addmm(folded, layer_input.reshape(steps * batch, -1),
                                     w_ih.T).reshape(steps, batch, 3 * hidden)
                gi_rz, gi_n = gi_all[..., :2 * hidden], gi_all[..., 2 * hidden:]
                index = k * weights.num_directions + d
                h = (torch.zeros(batch, hidden, device=self.device) if h0 is None
                     else self._tensor(h0[index]))
                out = torch.empty(steps, batch, hidden, device=self.device)
                order = (range(steps - 1, -1, -1) if weights.direction_reversed(d)
                         else range(steps))
                for t in order:
                    rz = torch.sigmoid(torch.addmm(gi_rz[t], h, w_rz))
                    r, z = rz[:, :hidden], rz[:, hidden:]
                    if weights.linear_before_reset:
                        n = torch.tanh(torch.addcmul(gi_n[t], r, torch.addmm(b_hn, h, w_hn)))
                    else:
                        n = torch.tanh(torch.addmm(gi_n[t], r * h, w_hn))
                    h_new = torch.lerp(n, h, z)            # n + z (h - n)
                    if ragged:
                        h = torch.where(running[t], h_new, h)
                        torch.mul(h_new, running_f[t], out=out[t])
                    else:
                        h = h_new
                        out[t] = h_new
                outputs.append(out)
                states.append(h)
            layer_input = torch.cat(outputs, dim=-1)
        return layer_input, torch.stack(states)

    def glu(self, formats, x, dim):
        torch = self._torch
        with torch.no_grad():
            out = torch.nn.functional.glu(self._tensor(x), dim)
        return out.to(torch.float64).cpu().numpy()


_announced = set()


def _announce(backend, requested):
    if backend.name not in _announced:
        _announced.add(backend.name)
        how = f" (device={requested!r})" if requested != backend.name else ""
        logger.info("gatework runs on the %s backend%s", backend.name, how)


def _torch_backend(requested):
    try:
        import torch
    except ImportError as error:
        raise RuntimeError(
            f"device={requested!r} needs PyTorch, which is not installed: install it "
            f"(`pip install torch`, or the CUDA build from pytorch.org) or choose "
            f"device='golden' or 'numpy'") from error
    if requested == "torch:cuda" and not torch.cuda.is_available():
        raise RuntimeError("device='torch:cuda' was asked for, but PyTorch sees no CUDA device "
                           "(torch.cuda.is_available() is False); use device='torch:cpu'")
    if requested == "torch":
        return TorchBackend("cuda" if torch.cuda.is_available() else "cpu")
    return TorchBackend(requested.split(":", 1)[1])


def _board_url():
    url = os.environ.get(DEVICE_ENVIRONMENT, "").strip()
    return url.removeprefix("fpga:") or None


def _fpga_backend(requested):
    from .fpga import fpga_backend
    if requested == "fpga":
        url = _board_url()
        if url is None:
            raise RuntimeError(f"device='fpga' needs a board: write device='fpga:URL' (such as "
                               f"'fpga:/dev/ttyUSB1') or set {DEVICE_ENVIRONMENT}=URL")
        requested = f"fpga:{url}"
    return fpga_backend(requested)


def _sim_backend(device):
    return sim_backend(engine=device.partition(":")[2] or "auto")


def sim_backend(engine="auto", workers=1):
    """The accelerator top's RTL, simulated, behind the board's own client: what
    ``device="sim"`` (``"sim:verilator"``, ``"sim:amaranth"``) runs on.

    Parameters
    ----------
    engine : str
        ``"verilator"``, ``"amaranth"`` or ``"auto"`` (see
        :func:`gatework.sim.device.simulated_accelerator`).
    workers : int
        Simulators to share a GRU call's batch: with more than one, the sequences are split
        into that many shards of consecutive sequences, each run by a simulator of its own in
        a worker process (started on first use, with the engine asked for), and the results
        are put back in order: the same numbers as one simulator gives, each sequence being
        computed alone. Pass the backend as ``device=``; ``close()`` stops the workers. The
        workers are spawned, so a script that uses them must start its work under
        ``if __name__ == "__main__":``, as Python's ``multiprocessing`` asks.
    """
    from ..sim.device import simulated_accelerator
    from .fpga import FpgaBackend

    if not (isinstance(workers, int) and workers >= 1):
        raise ValueError(f"workers must be a positive int, not {workers!r}")

    class SimBackend(FpgaBackend):
        """The accelerator top's RTL, simulated, behind the board's own client."""

        #: The worker processes, once started.
        _pool = None

        def gru(self, weights, formats, x, h0, lengths):
            batch = x.shape[1]
            if workers == 1 or batch < 2:
                return super().gru(weights, formats, x, h0, lengths)
            # What the board's own call checks and warns of first, here once for every shard.
            self._checked_lengths(weights, formats, x, lengths)
            self._codes(weights, formats, x, h0)
            shards = np.array_split(np.arange(batch), min(workers, batch))
            futures = [self._workers().submit(
                _simulated_gru, engine, weights, formats, x[:, shard],
                None if h0 is None else h0[:, shard],
                None if lengths is None else np.asarray(lengths)[shard]) for shard in shards]
            results = [future.result() for future in futures]
            return (np.concatenate([output for output, _ in results], axis=1),
                    np.concatenate([h_n for _, h_n in results], axis=1))

        def _workers(self):
            if self._pool is None:
                import concurrent.futures
                import multiprocessing
                self._pool = concurrent.futures.ProcessPoolExecutor(
                    workers, mp_context=multiprocessing.get_context("spawn"))
            return self._pool

        def close(self):
            if self._pool is not None:
                self._pool.shutdown(cancel_futures=True)
                self._pool = None
            super().close()

    # Simulated time runs far slower than a board: its INFO says it is a simulation, and the
    # client then waits for each answer as long as its work takes to simulate.
    simulation = simulated_accelerator(engine=engine)
    backend = SimBackend(simulation)
    backend.name = f"sim:{simulation.engine}"
    return backend


#: A worker process's own simulated backend, by engine (see sim_backend).
_WORKER_BACKENDS = {}


def _simulated_gru(engine, weights, formats, x, h0, lengths):
    """A shard of a GRU call, in a worker process, on its own simulator."""
    import warnings
    if engine not in _WORKER_BACKENDS:
        _WORKER_BACKENDS[engine] = sim_backend(engine)
    with warnings.catch_warnings():
        # The caller's process has warned of them, for the whole batch.
        warnings.simplefilter("ignore", SaturationWarning)
        return _WORKER_BACKENDS[engine].gru(weights, formats, x, h0, lengths)


def resolve_device(device):
    """Turn a ``device=`` argument into a backend, and log the choice once per backend."""
    if isinstance(device, Backend):
        return device
    if not isinstance(device, str) or (device not in DEVICE_NAMES and
                                       not device.startswith("fpga:")):
        raise ValueError(f"device must be one of {', '.join(map(repr, DEVICE_NAMES))} or "
                         f"'fpga:URL', not {device!r}")
    if device.startswith("fpga"):
        backend = _fpga_backend(device)
    elif device.startswith("sim"):
        backend = _sim_backend(device)
    elif device == "golden":
        backend = GoldenBackend()
    elif device == "numpy":
        backend = NumpyBackend()
    elif device.startswith("torch"):
        backend = _torch_backend(device)
    else:
        backend = None
        if _board_url() is not None:
            from ..golden.messages import ProtocolError
            try:
                backend = _fpga_backend("fpga")
            except (OSError, RuntimeError, ValueError, ProtocolError) as error:
                logger.warning("the board at %s=%s did not answer (%s); using a reference "
                               "backend", DEVICE_ENVIRONMENT, _board_url(), error)
        if backend is None:
            try:
                backend = _torch_backend("torch")
            except RuntimeError:
                backend = NumpyBackend()
    _announce(backend, device)
    return backend
