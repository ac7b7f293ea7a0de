"""The netlist proof: a board build's synthesised netlist answers as its RTL and golden do.

What is simulated everywhere else is the RTL; what a bitstream holds is the netlist Yosys makes
of it, with its inferred block RAMs (and their ``no_rw_check`` promise), DSP blocks, register
copies and carry chains. :func:`verify_netlist` synthesises a board build's accelerator top as
the board build does (:func:`~gatework.boards.synthesis.synthesized_verilog`), simulates that
netlist with the family's cell models under Verilator, and feeds it and the RTL the same
protocol session; every byte must be the same, in the same clock cycle, and equal to the
protocol model's answer.

The cell models are Yosys' own, but for two ECP5 cells its library leaves without behaviour,
the DP16KD block RAM and the MULT18X18D multiplier: ours (``boards/cells/ecp5.v``) model the
modes Yosys uses them in, and a netlist that sets any other is refused, naming it
(:func:`unmodelled_modes`). Where one port of a block RAM writes a word the other reads in the
same cycle, the hardware's read is undefined: our DP16KD then reads the word inverted, so
that a design relying on such a read answers differently.

Left out of :func:`verify_netlist`: the board top around the accelerator (the UART, its
receive FIFO, the PLL and the I/O buffers): the netlist's byte streams are the accelerator
top's own.

:func:`verify_routed` checks what the bitstream holds, for an iCE40 board: nextpnr's placed
and routed netlist of the board build, written by the same run that packs the bitstream (the
logic cells with their LUT contents and flip-flops as placed, block RAMs, DSP blocks, the I/O
cells and global buffers; see :mod:`gatework.boards.routed`), the whole chip from its pins.
A UART at the build's bit time talks to its UART pins, one request at a time as the host's
client does, and every answer must be the protocol model's. Left out there: the PLL, a wire
from the clock pin (:file:`boards/cells/ice40.v`), and the timing of the routes, which
nextpnr's timing analysis covers.
"""

import time

import numpy as np

from amaranth.hdl import ClockSignal, Instance, Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ...boards.build import build_board
from ...boards.routed import ROUTED_NETLIST, routed_cell_library, routed_verilog
from ...boards.synthesis import (cell_library, cells_without_models, synthesized_verilog,
                                 unmodelled_modes)
from ...boards.targets import BOARDS
from ...golden.device_model import DeviceModel
from ...golden.gru import GRUDirectionWeights
from ...golden.messages import (LoadRequest, RunRequest, encode_glu_request, encode_load_request,
                                encode_request, encode_run_request)
from ...golden.protocol import Command
from ...hdl.top import AcceleratorTop
from ...hdl.uart import UARTReceiver, UARTTransmitter
from ...sim.device import SimulatedDevice
from ...sim.verilog import convert
from ...sim.verilated import VerilatedDevice


__all__ = ["verification_session", "verify_netlist", "verify_routed"]


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


def _resolve(board, build, progress):
    """A board by name or itself, its small build by default, and a progress callable."""
    board = BOARDS[board] if isinstance(board, str) else board
    return board, board.small if build is None else build, progress or (lambda line: None)


def verify_netlist(board, build=None, *, seed=0, rtl_engine="verilator", progress=None):
    """Simulate the synthesised netlist of ``board``'s ``build`` (default: the board's small
    build) beside its RTL, on :func:`verification_session`.

    The netlist runs under Verilator; the RTL under ``rtl_engine``: ``"verilator"``, or
    ``"amaranth"`` (no compile: the faster for a session of a few thousand cycles, such as a
    small build's; a named ULX3S build's takes 312,442).

    Returns a dict: the board, the size of the netlist's Verilog, seconds to synthesise and
    to compile the netlist, the cycles each took, and ``identical`` (netlist and RTL gave the same bytes
    after the same cycles) and ``as_model`` (those bytes are the protocol model's).
    """
    board, build, progress = _resolve(board, build, progress)
    if rtl_engine not in ("amaranth", "verilator"):
        raise ValueError(f"rtl_engine must be 'amaranth' or 'verilator', not {rtl_engine!r}")
    clock_hz = board.clock_hz(build.clock_mhz)

    def top():
        return AcceleratorTop(build.config, build.max_payload, clock_hz,
                              register_slices=board.register_slices)

    wire, frames = verification_session(build.config, build.max_payload,
                                        np.random.default_rng(seed))
    expected = DeviceModel(build.config, build.max_payload, clock_hz).feed(wire)
    progress(f"{board.name}: synthesising the accelerator top ({board.family})...")
    start = time.perf_counter()
    netlist = synthesized_verilog(top(), board.family)
    synthesis_seconds = time.perf_counter() - start
    library = cell_library(board.family)
    missing = cells_without_models(netlist, library)
    if missing:
        raise NotImplementedError(
            f"{board.name}: the {board.family} netlist uses cells that the simulation library "
            f"({', '.join(path.name for path in library)}) has no model of: "
            f"{', '.join(missing)}; it cannot be simulated until such a model is written")
    unmodelled = unmodelled_modes(netlist)
    if unmodelled:
        raise NotImplementedError(
            f"{board.name}: the {board.family} netlist uses cells in modes that their models "
            f"do not cover: {'; '.join(unmodelled)}")
    answers = {}
    start = time.perf_counter()
    devices = {"netlist": VerilatedDevice(netlist, library=library,
                                          name=f"{board.name} netlist", cycle_limit=None)}
    compile_seconds = time.perf_counter() - start
    devices["rtl"] = (VerilatedDevice(top(), name=f"{board.name} RTL", cycle_limit=None)
                      if rtl_engine == "verilator" else
                      SimulatedDevice(top(), name=f"{board.name} RTL", cycle_limit=None))
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


# Cycles the routed chip is left alone after power-on before the first request.
_POWER_ON_CYCLES = 10_000


class _SerialHarness(wiring.Component):
    """The host's side of a chip's UART pins as byte streams: bytes into ``i`` go out on the
    chip's receive pin, bytes the chip sends on its transmit pin come out of ``o``, 8N1 at
    ``divisor`` cycles a bit. The chip is the Verilog module ``module``, its clock pin driven
    by this domain's clock."""

    i: In(stream.Signature(8))
    o: Out(stream.Signature(8))

    def __init__(self, divisor, module, clock, receive, transmit):
        self._divisor = divisor
        self._module, self._clock = module, clock
        self._receive, self._transmit = receive, transmit
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        m.submodules.tx = tx = UARTTransmitter(self._divisor)
        m.submodules.rx = rx = UARTReceiver(self._divisor)
        wiring.connect(m, wiring.flipped(self.i), tx.i)
        wiring.connect(m, rx.o, wiring.flipped(self.o))
        m.submodules.chip = Instance(self._module, **{
            f"i_{self._clock}": ClockSignal(), f"i_{self._receive}": tx.tx,
            f"o_{self._transmit}": rx.rx})
        return m


def verify_routed(board, build=None, *, seed=0, progress=None):
    """Simulate the placed and routed netlist of ``board``'s ``build`` (an iCE40 board; by
    default its small build) from its pins, on :func:`verification_session` sent through a
    UART one request at a time. The build comes from the build cache, or is built.

    Returns a dict: the board, the build's folder, seconds to prepare and to compile, the
    cycles the session took, and ``as_model`` (every answer is the protocol model's).
    """
    board, build, progress = _resolve(board, build, progress)
    if board.family != "ice40":
        raise NotImplementedError(
            f"{board.name}: the routed design is read back for iCE40 boards only (nextpnr's "
            f"ECP5 netlist has cells of which no simulation model exists)")
    progress(f"{board.name}: the board build (from the cache, or built: minutes)...")
    result = build_board(board, build, progress=progress)
    routed = result.folder / ROUTED_NETLIST
    if not routed.exists():
        raise FileNotFoundError(f"{routed} is missing: the build predates routed netlists; "
                                f"remove {result.folder} and build again")
    start = time.perf_counter()
    chip, ports = routed_verilog(routed)
    uart = {"receive": "uart_0__rx__io", "transmit": "uart_0__tx__io"}
    clock = ports["clock"]
    if clock is None or (ports["inputs"], ports["outputs"]) != (
            [uart["receive"]], [uart["transmit"]]):
        raise NotImplementedError(f"{board.name}: the routed design's pins are {ports}; "
                                  f"the harness drives the clock pin and one UART")
    harness = _SerialHarness(board.uart_divisor(build.clock_mhz), "chip", clock, **uart)
    prepare_seconds = time.perf_counter() - start
    clock_hz = board.clock_hz(build.clock_mhz)
    start = time.perf_counter()
    device = VerilatedDevice(convert(harness) + chip, library=routed_cell_library(),
                             name=f"{board.name} routed", cycle_limit=None,
                             clock_hz=clock_hz, idle_cycles=1 << 16)
    compile_seconds = time.perf_counter() - start
    wire, frames = verification_session(build.config, build.max_payload,
                                        np.random.default_rng(seed))
    model = DeviceModel(build.config, build.max_payload, clock_hz)
    same = []
    with device:
        # The chip holds itself in reset for a moment after configuration (and then starts
        # from its power-on state); a host speaks later than this.
        quiet = device.read(1, _POWER_ON_CYCLES / clock_hz)
        for frame in wire.split(b"\0")[:-1]:
            answer = device.feed(frame + b"\0", timeout=600)
            expected = model.feed(frame + b"\0")
            same.append(answer == expected)
            verdict = "as the model" if same[-1] else "NOT as the model"
            progress(f"  a request of {len(frame) + 1} bytes: {len(answer)} bytes back, "
                     f"{verdict}")
    return {
        "board": board.name, "folder": str(result.folder), "frames": frames,
        "quiet_after_power_on": quiet == b"",
        "prepare_seconds": prepare_seconds, "compile_seconds": compile_seconds,
        "cycles": device.cycles,
        "as_model": quiet == b"" and len(same) == frames and all(same),
    }
