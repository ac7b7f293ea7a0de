"""The netlist proof: a board build's synthesised netlist answers as its RTL and golden do.

What is simulated everywhere else is the RTL; what a bitstream holds is the netlist Yosys makes
of it, with its inferred block RAMs (and their ``no_rw_check`` promise), DSP blocks, register
copies and carry chains. :func:`verify_netlist` synthesises a board build's accelerator top as
the board build does (:func:`~gatework.boards.synthesis.synthesized_verilog`), simulates that
netlist with the family's cell models under Verilator, and feeds it and the RTL the same
protocol session; every byte must be the same, in the same clock cycle, and equal to the
protocol model's answer.

Left out: the board top around the accelerator (the UART, its receive FIFO, the PLL and the
I/O buffers): the netlist's byte streams are the accelerator top's own. Placement and routing
do not change the logic; the routed design read back from the bitstream is not simulated.
"""

import re
import time

import numpy as np

from ...boards.synthesis import cell_library, synthesized_verilog
from ...boards.targets import BOARDS
from ...golden.device_model import DeviceModel
from ...golden.gru import GRUDirectionWeights
from ...golden.messages import (LoadRequest, RunRequest, encode_glu_request, encode_load_request,
                                encode_request, encode_run_request)
from ...golden.protocol import Command
from ...hdl.top import AcceleratorTop
from ...sim.verilated import VerilatedDevice


__all__ = ["verification_session", "verify_netlist"]


def verification_session(config, max_payload, rng):
    """Wire bytes of a session that exercises a build: INFO, a LOAD with ``h0``, a RUN of
    ragged sequences from ``h0`` with the build's largest batch and steps and ``D = H`` as
    large as a LOAD of them fits ``max_payload`` (with biases where they fit too), a GLU;
    and its frame count. Every request is one the build answers ``OK``, but a GLU on a build
    without a GLU unit (``BEYOND_MAXIMA``)."""
    batch = config.max_batch

    def codes(*shape):
        return rng.integers(-0x1000, 0x1000, shape)

    for size in range(min(config.max_input_size, config.max_hidden_size), 0, -1):
        for bias in (True, False):
            biases = (codes(3 * size), codes(3 * size)) if bias else ()
            cell = GRUDirectionWeights(codes(3 * size, size), codes(3 * size, size), *biases)
            load = encode_load_request(LoadRequest(0, 0, cell, h0=codes(batch, size)))
            if len(load) <= max_payload:
                break
        else:
            continue
        break
    lengths = np.maximum(1, config.max_steps - np.arange(batch))
    run = RunRequest(codes(int(lengths.sum()), size), lengths, 1, size, config.max_steps,
                     "forward", use_h0=True)
    frames = [encode_request(Command.INFO, 1), encode_request(Command.LOAD, 2, load),
              encode_request(Command.RUN, 3, encode_run_request(run)),
              encode_request(Command.GLU, 4, encode_glu_request(codes(2, 2 * size)))]
    return b"".join(frames), len(frames)


def verify_netlist(board, build=None, *, seed=0, progress=None):
    """Simulate the synthesised netlist of ``board``'s ``build`` (default: the board's small
    build) beside its RTL, on :func:`verification_session`.

    Returns a dict: the board, the cells of the netlist's Verilog, seconds to synthesise and
    to compile, the cycles each took, and ``identical`` (netlist and RTL gave the same bytes
    after the same cycles) and ``as_model`` (those bytes are the protocol model's).
    """
    progress = progress or (lambda line: None)
    if isinstance(board, str):
        board = BOARDS[board]
    build = board.small if build is None else build

    def top():
        return AcceleratorTop(build.config, build.max_payload,
                              board.clock_hz(build.clock_mhz),
                              register_slices=board.register_slices)

    wire, frames = verification_session(build.config, build.max_payload,
                                        np.random.default_rng(seed))
    expected = DeviceModel(build.config, build.max_payload,
                           board.clock_hz(build.clock_mhz)).feed(wire)
    progress(f"{board.name}: synthesising the accelerator top ({board.family})...")
    start = time.perf_counter()
    netlist = synthesized_verilog(top(), board.family)
    synthesis_seconds = time.perf_counter() - start
    library = cell_library(board.family)
    missing = _cells_without_models(netlist, library)
    if missing:
        raise NotImplementedError(
            f"{board.name}: the {board.family} netlist uses cells that Yosys' simulation "
            f"library ({library.name}) has no model of: {', '.join(missing)}; it cannot be "
            f"simulated until such a model is written")
    answers = {}
    start = time.perf_counter()
    devices = {"netlist": VerilatedDevice(netlist, library=[library],
                                          name=f"{board.name} netlist", cycle_limit=None),
               "rtl": VerilatedDevice(top(), name=f"{board.name} RTL", cycle_limit=None)}
    compile_seconds = time.perf_counter() - start
    for name, device in devices.items():
        with device:
            answer = device.feed(wire, timeout=600)
            answers[name] = (answer, device.cycles)
        progress(f"  {name}: {len(answer)} bytes back after {device.cycles} cycles")
    (netlist_answer, netlist_cycles), (rtl_answer, rtl_cycles) = (answers["netlist"],
                                                                  answers["rtl"])
    return {
        "board": board.name, "family": board.family, "frames": frames,
        "netlist_bytes": len(netlist), "synthesis_seconds": synthesis_seconds,
        "compile_seconds": compile_seconds,
        "netlist_cycles": netlist_cycles, "rtl_cycles": rtl_cycles,
        "identical": netlist_answer == rtl_answer and netlist_cycles == rtl_cycles,
        "as_model": netlist_answer == expected and netlist_answer.count(0) == frames,
    }


def _cells_without_models(netlist, library):
    """The cells ``netlist`` instantiates that no file of ``library``'s folder defines."""
    used = set(re.findall(r"^  ([A-Za-z_]\w*) (?:#\(|\\?\S+ \()", netlist, re.M))
    defined = set()
    for path in library.parent.glob("*.v*"):
        if path.name.endswith(("_bb.v", "_map.v")):
            continue
        defined.update(re.findall(r"^\s*module\s+(\w+)", path.read_text(), re.M))
    return sorted(used - defined - {"top"})
