"""nextpnr's routed iCE40 netlist made simulatable (gatework.boards.routed).

A hand-made netlist in nextpnr's JSON shape: a clock pin taken by the PLL at its pad, a UART
receive pin read through an SB_IO, a transmit pin driven by one, a logic cell with its clock
enable left unconnected, and a global buffer fed by the PLL over a dedicated wire (absent
from the netlist). The repairs are checked one by one; the whole chip read back from a real
build is simulated by `gatework verify icebreaker --routed` (make bench).
"""

import pytest

from gatework.boards.routed import prepare_routed


def cell(type, connections, directions, **parameters):
    return {"type": type, "parameters": parameters, "connections": connections,
            "port_directions": directions}


def netlist(rx_pin_type="000001"):
    lc_ports = {"I0": "input", "I1": "input", "I2": "input", "I3": "input", "CIN": "input",
                "CLK": "input", "CEN": "input", "SR": "input", "O": "output", "LO": "output",
                "COUT": "output"}
    io_ports = {"PACKAGE_PIN": "inout", "D_IN_0": "output", "D_OUT_0": "input",
                "OUTPUT_ENABLE": "input", "CLOCK_ENABLE": "input"}
    return {"modules": {"top": {
        "ports": {"clk": {"direction": "input", "bits": [2]},
                  "rx": {"direction": "inout", "bits": [3]},
                  "tx": {"direction": "inout", "bits": [4]}},
        "cells": {
            "clock_io": cell("SB_IO", {"PACKAGE_PIN": [2], "D_IN_0": []}, io_ports,
                             PIN_TYPE="00000000000000000000000000000001"),
            "rx_io": cell("SB_IO", {"PACKAGE_PIN": [3], "D_IN_0": [10], "CLOCK_ENABLE": [11]},
                          io_ports, PIN_TYPE=rx_pin_type),
            "tx_io": cell("SB_IO", {"PACKAGE_PIN": [4], "D_OUT_0": [12], "OUTPUT_ENABLE": [11],
                                    "CLOCK_ENABLE": [11]}, io_ports, PIN_TYPE="101001"),
            "pll": cell("ICESTORM_PLL", {"REFERENCECLK": [], "PLLOUT_A_GLOBAL": [],
                                         "LOCK": [13]},
                        {"REFERENCECLK": "input", "PLLOUT_A_GLOBAL": "output",
                         "LOCK": "output"}),
            "gb": cell("SB_GB", {"USER_SIGNAL_TO_GLOBAL_BUFFER": [],
                                 "GLOBAL_BUFFER_OUTPUT": [14]},
                       {"USER_SIGNAL_TO_GLOBAL_BUFFER": "input",
                        "GLOBAL_BUFFER_OUTPUT": "output"}),
            "lc": cell("ICESTORM_LC", {"I0": [10], "I1": [], "I2": [], "I3": [], "CIN": [],
                                       "CLK": [14], "CEN": [], "SR": [13], "O": [12],
                                       "LO": [], "COUT": []}, lc_ports, LUT_INIT="10" * 8),
        },
        "netnames": {"rx_in": {"bits": [10]}, "lc_out": {"bits": [12]}},
    }}}


def test_pins_become_ports_and_io_cells_wires():
    design = netlist()
    ports = prepare_routed(design)
    assert ports == {"clock": "clk", "inputs": ["rx"], "outputs": ["tx"]}
    top = design["modules"]["top"]
    assert not [name for name, c in top["cells"].items() if c["type"] == "SB_IO"]
    # The receive pin is what its SB_IO passed on; the transmit pin what its SB_IO was given.
    assert top["cells"]["lc"]["connections"]["I0"] == top["ports"]["rx"]["bits"] == [3]
    assert top["ports"]["tx"] == {"direction": "output", "bits": [12]}
    assert top["ports"]["rx"]["direction"] == "input"


def test_the_pll_takes_the_clock_pin_and_feeds_the_global_buffer():
    design = netlist()
    prepare_routed(design)
    cells = design["modules"]["top"]["cells"]
    assert cells["pll"]["connections"]["REFERENCECLK"] == [2]
    [clock] = cells["pll"]["connections"]["PLLOUT_A_GLOBAL"]
    assert clock not in (2, 3, 4, 10, 11, 12, 13, 14)
    assert cells["gb"]["connections"]["USER_SIGNAL_TO_GLOBAL_BUFFER"] == [clock]


def test_unconnected_inputs_take_the_chips_levels_and_cells_their_models():
    design = netlist()
    prepare_routed(design)
    lc = design["modules"]["top"]["cells"]["lc"]
    assert lc["type"] == "GATEWORK_ICESTORM_LC"
    # A clock enable floats high, every other input low; outputs stay unconnected.
    assert lc["connections"]["CEN"] == ["1"]
    assert [lc["connections"][port] for port in ("I1", "I2", "I3", "CIN")] == [["0"]] * 4
    assert lc["connections"]["LO"] == [] and lc["connections"]["COUT"] == []


def test_registered_pins_are_refused_by_name():
    with pytest.raises(NotImplementedError, match="rx_io has PIN_TYPE 000000"):
        prepare_routed(netlist(rx_pin_type="000000"))
