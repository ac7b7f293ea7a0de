"""nextpnr's placed and routed netlist of an iCE40 build, as Verilog one can simulate.

An iCE40 board build writes ``top.routed.json`` (nextpnr's ``--write``) beside the bitstream
it packs from the same run: its cells are the chip's own (``ICESTORM_LC`` logic cells with
their LUT contents, carries and flip-flops as placed, ``ICESTORM_RAM``, ``ICESTORM_DSP``,
``SB_IO``, ``SB_GB``, ``ICESTORM_PLL``). :func:`routed_verilog` turns it into Verilog for
Yosys' cell library plus ours (``cells/ice40.v``) after three repairs that make explicit what
the chip's silicon does implicitly:

- an input pin left unconnected takes the value the chip gives it: high for clock enables
  (``CEN``, ``RCLKE``, ``WCLKE``, ``CLOCK_ENABLE``), low for the rest (the models test for
  ``z``, which a two-state simulator such as Verilator never sees);
- the PLL's reference clock and its global output travel on dedicated wires that the netlist
  leaves out: the PLL is given the clock pin, and the global buffer with no input is given the
  PLL's output (without a PLL, the clock pin that feeds it, an ``SB_GB_IO``);
- the I/O cells become wires: an input pin is its ``SB_IO``'s input, an output pin its output
  (pins in the plain modes only: unregistered, the output always enabled).
"""

import json
import pathlib

from .synthesis import cell_library, run_yosys


__all__ = ["ROUTED_NETLIST", "prepare_routed", "routed_verilog", "routed_cell_library"]


#: The file an iCE40 board build writes nextpnr's routed netlist to.
ROUTED_NETLIST = "top.routed.json"

# Cells whose Yosys models test their inputs for z, which a two-state simulator never sees:
# ours (cells/ice40.v) are the same but for that.
_RENAMED = {"ICESTORM_LC": "GATEWORK_ICESTORM_LC", "ICESTORM_RAM": "GATEWORK_ICESTORM_RAM"}

# Inputs that float high on the chip: the clock enables.
_PULLED_UP = {("ICESTORM_LC", "CEN"), ("ICESTORM_RAM", "RCLKE"), ("ICESTORM_RAM", "WCLKE"),
              ("SB_IO", "CLOCK_ENABLE"), ("ICESTORM_DSP", "CE")}


def prepare_routed(netlist):
    """Repair nextpnr's routed ``netlist`` (its JSON, as a dict) in place, as the module
    docstring says, and return ``{"clock": port, "inputs": [ports], "outputs": [ports]}``:
    the clock pin (the PLL's, or the one feeding a global buffer) and the design's other pins
    by direction."""
    [top] = [module for module in netlist["modules"].values()
             if module.get("attributes", {}).get("top") or len(netlist["modules"]) == 1]
    cells = top["cells"]
    used = [bit for spec in top["ports"].values() for bit in spec["bits"]]
    used += [bit for cell in cells.values() for bits in cell["connections"].values()
             for bit in bits]
    used += [bit for net in top["netnames"].values() for bit in net["bits"]]
    next_bit = 1 + max(bit for bit in used if isinstance(bit, int))
    # The I/O cells become wires: an input pin is its SB_IO's D_IN_0, an output pin its
    # D_OUT_0. Only the plain modes are taken (PIN_TYPE: an unregistered input, an
    # unregistered output or none; the output enable is taken as high).
    merged, drives, global_pins = {}, {}, []
    for name, cell in list(cells.items()):
        if cell["type"] != "SB_IO":
            continue
        connections = cell["connections"]
        pin_type = int(str(cell["parameters"]["PIN_TYPE"]), 2) & 0b111111
        if pin_type & 0b11 != 0b01 or pin_type >> 2 not in (0b0000, 0b1010, 0b0110):
            raise NotImplementedError(f"the I/O cell {name} has PIN_TYPE {pin_type:06b}; "
                                      f"registered or DDR pins are not modelled")
        pin = connections["PACKAGE_PIN"][0]
        drives[pin] = bool(pin_type >> 4)
        if "GLOBAL_BUFFER_OUTPUT" in connections:
            # SB_GB_IO: the pin feeds a global buffer over a dedicated wire.
            global_pins.append(pin)
        if drives[pin]:
            merged[pin] = connections["D_OUT_0"][0]
        elif connections.get("D_IN_0"):
            merged[connections["D_IN_0"][0]] = pin
        del cells[name]
    for cell in cells.values():
        cell["connections"] = {port: [merged.get(bit, bit) for bit in bits]
                               for port, bits in cell["connections"].items()}
    plls = [cell for cell in cells.values() if cell["type"] == "ICESTORM_PLL"]
    if len(plls) > 1:
        raise NotImplementedError("a routed netlist with more than one PLL")
    clock = None
    for pll in plls:
        if not pll["connections"].get("REFERENCECLK"):
            # The clock pin: an input that nothing reads (the PLL takes it at the pad).
            read = {bit for cell in cells.values() for bits in cell["connections"].values()
                    for bit in bits}
            clocks = [port for port, spec in top["ports"].items()
                      if not drives.get(spec["bits"][0]) and spec["bits"][0] not in read]
            if len(clocks) != 1:
                raise ValueError(f"cannot tell the PLL's clock pin among {sorted(clocks)}")
            clock = clocks[0]
            pll["connections"]["REFERENCECLK"] = list(top["ports"][clock]["bits"])
        if not pll["connections"].get("PLLOUT_A_GLOBAL"):
            pll["connections"]["PLLOUT_A_GLOBAL"] = [next_bit]
            top["netnames"]["$pll_global"] = {"bits": [next_bit], "hide_name": 1}
            for cell in cells.values():
                if cell["type"] == "SB_GB" and not cell["connections"].get(
                        "USER_SIGNAL_TO_GLOBAL_BUFFER"):
                    cell["connections"]["USER_SIGNAL_TO_GLOBAL_BUFFER"] = [next_bit]
            next_bit += 1
    if not plls and global_pins:
        if len(global_pins) > 1:
            raise NotImplementedError("a routed netlist with more than one global clock pin")
        [clock] = [port for port, spec in top["ports"].items()
                   if spec["bits"] == global_pins]
        for cell in cells.values():
            if cell["type"] == "SB_GB" and not cell["connections"].get(
                    "USER_SIGNAL_TO_GLOBAL_BUFFER"):
                cell["connections"]["USER_SIGNAL_TO_GLOBAL_BUFFER"] = list(global_pins)
    for cell in cells.values():
        for port, direction in cell["port_directions"].items():
            if direction == "input" and not cell["connections"].get(port):
                cell["connections"][port] = [
                    "1" if (cell["type"], port) in _PULLED_UP else "0"]
    for cell in cells.values():
        cell["type"] = _RENAMED.get(cell["type"], cell["type"])
    inputs, outputs = [], []
    for port, spec in top["ports"].items():
        bit = spec["bits"][0]
        spec["bits"] = [merged.get(bit, bit)]
        if port == clock:
            spec["direction"] = "input"
            continue
        spec["direction"] = "output" if drives.get(bit) else "input"
        (outputs if drives.get(bit) else inputs).append(port)
    for net in top["netnames"].values():
        net["bits"] = [merged.get(bit, bit) for bit in net["bits"]]
    return {"clock": clock, "inputs": sorted(inputs), "outputs": sorted(outputs)}


def routed_verilog(path, module="chip", timeout=600):
    """The routed netlist at ``path`` (``top.routed.json`` of an iCE40 build), repaired
    (:func:`prepare_routed`) and written as Verilog by Yosys, its top module named ``module``;
    and its ports (as :func:`prepare_routed` returns them)."""
    netlist = json.loads(pathlib.Path(path).read_text())
    ports = prepare_routed(netlist)
    verilog = run_yosys({"routed.json": json.dumps(netlist)},
                        f"read_json routed.json; rename -top {module}; write_verilog -noattr out",
                        timeout, f"Yosys could not read the routed netlist {path}")
    return verilog, ports


def routed_cell_library():
    """The models of the routed netlist's cells: ours (``cells/ice40.v``) of the logic cell,
    the block RAM (on Yosys' ``SB_RAM40_4K``), the DSP block (on Yosys' ``SB_MAC16``) and the
    PLL, and Yosys' iCE40 library for the rest."""
    return [*cell_library("ice40"), pathlib.Path(__file__).parent / "cells" / "ice40.v"]
