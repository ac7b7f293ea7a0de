"""Board targets: PLL settings, the build command, reports, the cache and programming.

The small configuration of each board is built for real (YoWASP Yosys + nextpnr) in the
default run, and must meet timing at its clock.
"""

import json
import re
import subprocess
import sys
import pathlib
import time

import pytest

from gatework.boards import build as build_module
from gatework.boards.build import (build_board, build_plan, late_endpoints, program_board,
                                   summary)
from gatework.boards.clocks import ecp5_pll, ice40_pll
from gatework.boards.targets import BOARDS
from gatework.host.tools.cli import main
from gatework.host.tools.verify import verify_routed
from gatework.sim.verilated import verilator_available


def _yowasp(tool, *args, cwd=None):
    command = pathlib.Path(sys.executable).parent / f"yowasp-{tool}"
    return subprocess.run([str(command), *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, check=True).stdout


@pytest.mark.parametrize("mhz", [16, 24, 30, 36, 48])
def test_ice40_pll_matches_icepll(mhz):
    settings = ice40_pll(12e6, mhz * 1e6)
    text = _yowasp("icepll", "-i", 12, "-o", mhz)
    achieved = float(re.search(r"F_PLLOUT:\s+([\d.]+) MHz \(achieved\)", text).group(1))
    assert settings.output_hz / 1e6 == pytest.approx(achieved, abs=1e-3)
    for name in ("DIVR", "DIVF", "DIVQ", "FILTER_RANGE"):
        expected = int(re.search(rf"{name}:\s+(\d+)", text).group(1))
        assert settings[name] == expected, name


@pytest.mark.parametrize("mhz", [50, 75, 100, 125])
def test_ecp5_pll_matches_ecppll(mhz, tmp_path):
    settings = ecp5_pll(25e6, mhz * 1e6)
    text = _yowasp("ecppll", "-i", 25, "-o", mhz, "-f", "pll.v", cwd=tmp_path)
    achieved = float(re.search(r"clkout0 frequency: ([\d.]+) MHz", text).group(1))
    assert settings.output_hz / 1e6 == pytest.approx(achieved, abs=1e-3)
    for name, label in (("CLKI_DIV", "Refclk divisor"), ("CLKFB_DIV", "Feedback divisor"),
                        ("CLKOP_DIV", "clkout0 divisor")):
        assert settings[name] == int(re.search(rf"{label}: (\d+)", text).group(1)), name


def test_pll_refuses_what_it_cannot_make():
    with pytest.raises(ValueError, match="beyond"):
        ice40_pll(12e6, 500e6)
    with pytest.raises(ValueError, match="beyond"):
        ecp5_pll(25e6, 1e6)


@pytest.mark.parametrize("name", sorted(BOARDS))
def test_named_defaults_are_consistent(name):
    board = BOARDS[name]
    for build in (board.default, board.small):
        clock_hz = board.clock_hz(build.clock_mhz)
        # The UART's bit time is within 2 % of the board's baud rate.
        assert abs(clock_hz / board.uart_divisor(build.clock_mhz) / board.baud - 1) < 0.02
        assert abs(clock_hz - build.clock_mhz * 1e6) < 1e3
        assert build.config.lanes <= board.multipliers


def test_build_replaces_fields():
    board = BOARDS["ulx3s-85f"]
    changed = board.default.replace(lanes=16, clock_mhz=50, max_payload=1000)
    assert changed.config.lanes == 16 and changed.clock_mhz == 50
    assert changed.max_payload == 1000
    assert changed.config.max_hidden_size == board.default.config.max_hidden_size


def test_build_root_must_be_relative(tmp_path):
    with pytest.raises(ValueError, match="relative"):
        build_board("icebreaker", root=str(tmp_path))
    with pytest.raises(ValueError, match="unknown board"):
        build_board("nosuchboard")


def test_program_without_a_programmer_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setattr(build_module.shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError, match="install openFPGALoader or iceprog"):
        program_board("icebreaker", tmp_path / "top.bin")


def test_program_with_no_board_attached_says_so(monkeypatch, tmp_path):
    # A programmer that finds no board: it exits non-zero, as openFPGALoader does.
    fake = tmp_path / "openFPGALoader"
    fake.write_text("#!/bin/sh\necho 'unable to open ftdi device: -3 (device not found)' >&2\n"
                    "exit 1\n")
    fake.chmod(0o755)
    monkeypatch.setattr(build_module.shutil, "which",
                        lambda name: str(fake) if name == "openFPGALoader" else None)
    with pytest.raises(RuntimeError, match="plugged in.*\n.*device not found"):
        program_board("ulx3s-85f", tmp_path / "top.bit")


def test_summary_says_when_timing_fails():
    report = {"board": "icebreaker", "max_payload": 256, "baud": 3_000_000,
              "config": {"lanes": 2, "max_input_size": 4, "max_hidden_size": 4,
                         "max_batch": 2, "max_steps": 4, "max_layers": 1,
                         "bidirectional": False},
              "fmax": {"clk": {"achieved": 20.5, "constraint": 24.0}},
              "utilization": {"ICESTORM_DSP": {"used": 2, "available": 8}},
              "build_seconds": 12.0}
    text = summary(report)
    assert "Fmax 20.5 MHz against 24.0 MHz: timing NOT MET" in text
    assert "ICESTORM_DSP        2 / 8      (25%)" in text


@pytest.mark.parametrize("name", sorted(BOARDS))
def test_small_build_meets_timing_and_is_cached(name, tmp_path, monkeypatch, capsys):
    """A real build: bitstream, nextpnr's report at the top level, timing met, then the
    cache answers an unchanged design without building; for an iCE40, its placed and routed
    netlist simulated (gatework verify --routed)."""
    monkeypatch.chdir(tmp_path)
    assert main(["build", name, "--small"]) == 0
    out = capsys.readouterr().out
    print(out)
    board = BOARDS[name]
    folder = pathlib.Path(re.search(r"report: (\S+)/report.json", out).group(1))
    report = json.loads((folder / "report.json").read_text())
    assert report["timing_met"] is True
    [clock] = report["fmax"].values()
    assert clock["constraint"] == pytest.approx(board.small.clock_mhz, rel=1e-3)
    assert clock["achieved"] >= clock["constraint"]
    dsp = "ICESTORM_DSP" if board.family == "ice40" else "MULT18X18D"
    assert report["utilization"][dsp]["used"] >= board.small.config.lanes
    assert report["config"]["lanes"] == board.small.config.lanes
    # The critical path is the one that sets Fmax, and the summary names its two ends.
    path = report["critical_path"]
    assert 1000 / path["ns"] == pytest.approx(clock["achieved"], abs=0.5)
    assert path["ns"] == pytest.approx(path["routing_ns"] + path["logic_ns"], abs=0.02)
    assert f"{path['from']} -> {path['to']}" in (folder / "summary.txt").read_text()
    bitstream = folder / ("top.bin" if board.family == "ice40" else "top.bit")
    assert bitstream.stat().st_size > 10_000

    assert main(["build", name, "--small"]) == 0
    captured = capsys.readouterr()
    assert "from the cache" in captured.err
    assert str(folder) in captured.out

    if board.family == "ice40" and verilator_available():
        # What the bitstream holds: the placed and routed netlist from the same run, the
        # whole chip through its UART pins, answers as the protocol model.
        routed = verify_routed(name)
        print(routed)
        assert routed["folder"] == str(folder)
        assert routed["quiet_after_power_on"] and routed["as_model"]


def test_build_progress_names_each_stage(tmp_path):
    script = ("echo 'Executing SYNTH_ICE40 pass.' > top.rpt; sleep 0.5; "
              "echo 'Info: Packing IOs..' > top.tim; sleep 0.5; "
              "echo 'Info: Routing..' >> top.tim; sleep 0.5; echo done; exit 3")
    lines = []
    returncode, seconds = build_module._run_with_progress(
        ["sh", "-c", script], tmp_path, None, lines.append, interval=0.1, heartbeat=0.3)
    assert returncode == 3 and seconds >= 1.5
    stages = [line.split("] ", 1)[1] for line in lines]
    assert stages[0] in ("starting the tools", "synthesis (Yosys)")
    assert "synthesis (Yosys)" in stages and "routing" in stages
    assert stages.index("synthesis (Yosys)") < stages.index("packing (nextpnr)") < \
        stages.index("routing")
    assert any(stage.startswith("still in ") for stage in stages)
    assert (tmp_path / "build.log").read_text() == "done\n"


ROUTER_LOG = """Info: Routing..
Info: Setting up routing queue.
Info: Routing 126263 arcs.
Info:            |   (re-)routed arcs  |   delta    | remaining|       time spent     |
Info:    IterCnt |  w/ripup   wo/ripup |  w/r  wo/r |      arcs| batch(sec) total(sec)|
Info:       1000 |      463        536 |  463   536 |    126008|       2.74       2.74|
Info:      83000 |    31769      51230 |  359   641 |    114437|      17.10     808.98|
"""


def test_routing_progress_reads_nextpnrs_router_table(tmp_path):
    assert build_module.routing_progress(tmp_path) is None
    (tmp_path / "top.tim").write_text(ROUTER_LOG.split("Info:    IterCnt")[0])
    assert build_module.routing_progress(tmp_path) is None
    (tmp_path / "top.tim").write_text(ROUTER_LOG)
    assert build_module.routing_progress(tmp_path) == (114437, 126263)


def test_build_progress_says_how_many_arcs_are_left(tmp_path):
    script = (f"printf '%s' '{ROUTER_LOG}' > top.tim; sleep 0.6; "
              "echo 'Info:      90000 |  1 2 |  3 4 |     99999|  1.0  2.0|' >> top.tim; "
              "sleep 0.6")
    lines = []
    build_module._run_with_progress(["sh", "-c", script], tmp_path, None, lines.append,
                                    interval=0.1, heartbeat=0.3)
    print(lines)
    assert any(line.endswith("] routing: 114437 of 126263 arcs left") for line in lines)
    assert any(line.endswith("] still in routing: 99999 of 126263 arcs left")
               for line in lines)


def test_a_build_past_its_timeout_is_stopped_with_everything_it_started(tmp_path):
    # The tools run under a shell, as Amaranth's build script runs them: a child of a child.
    script = "sleep 60 & echo $! > child; echo 'Info: Routing..' > top.tim; wait"
    start = time.monotonic()
    returncode, seconds = build_module._run_with_progress(
        ["sh", "-c", script], tmp_path, None, lambda line: None, interval=0.1, timeout=1)
    assert returncode is None
    assert 1 <= seconds < 5 and time.monotonic() - start < 10
    child = int((tmp_path / "child").read_text())
    for _ in range(50):           # reaped by init, a moment after it is killed
        if not pathlib.Path(f"/proc/{child}").exists() or \
                "Z" in pathlib.Path(f"/proc/{child}/stat").read_text().split()[2]:
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"the build's child process {child} is still running")


def test_build_timeout_fails_clearly_and_caches_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["build", "icebreaker", "--small", "--timeout", "0.02"]) == 2
    err = capsys.readouterr().err
    print(err)
    assert "gatework build: error: the icebreaker build did not finish within 0.02 minutes (" \
        in err
    assert "its tools were stopped" in err
    assert not list(tmp_path.glob("build/icebreaker/*/top.bin"))
    assert main(["build", "icebreaker", "--timeout", "-1"]) == 2
    assert "--timeout must be 0 (no limit) or more minutes" in capsys.readouterr().err


def test_the_cache_key_holds_no_source_locations():
    # Source locations would tie the digest to this checkout's path and line numbers: a
    # comment added above BoardTop, or a clone elsewhere, would rebuild an unchanged design.
    board = BOARDS["icebreaker"]
    _, plan = build_plan(board, board.small)
    netlist = plan.files["top.il"]
    assert "attribute \\src" not in netlist
    assert "targets.py" not in netlist and "top.py" not in netlist
    _, again = build_plan(board, board.small)
    assert again.digest() == plan.digest()
    _, other = build_plan(board, board.small.replace(max_steps=3))
    assert other.digest() != plan.digest()


def test_the_build_leaves_collisions_to_the_rams():
    # The layer buffer, h0 and h_n, the engine's memories and the link's: their read ports
    # need no bypass logic (gatework.hdl.memory.read_data).
    board = BOARDS["icebreaker"]
    _, plan = build_plan(board, board.small)
    netlist = plan.files["top.il"]
    ports = netlist.split("cell $memrd_v2")[1:]
    undefined = [port for port in ports if "COLLISION_X_MASK 1'1" in port]
    print(len(ports), len(undefined))
    assert len(undefined) >= 8
    for memory in ("buffer", "h0", "h_n", "state", "inputs", "reset_state", "ring"):
        assert any(f'MEMID "\\\\{memory}"' in port for port in undefined), memory


def test_late_endpoints_group_the_tail_behind_the_critical_path():
    # nextpnr's detailed report: per net, each endpoint's arrival (ns, or [min, max]).
    def net(cells, delay):
        return {"net": "n", "endpoints": [{"cell": cell, "delay": delay} for cell in cells]}
    nextpnr = {"detailed_net_timings": [
        net([f"top.engine.product_{lane}_TRELLIS_FF_Q_{bit}" for lane in range(4)
             for bit in range(3)], [11.0, 12.5]),
        net(["top.buffer.0.17", "top.buffer.1.3"], 13.9),
        net(["top.engine.biases_7.0.0$DPRAM_COMB0"], 9.0),
        net(["top.early_TRELLIS_FF_Q"], 1.0),
    ]}
    groups = late_endpoints(nextpnr, count=15, groups=2)
    print(groups)
    assert groups == [{"group": "top.engine.product_#", "endpoints": 12, "latest_ns": 12.5},
                      {"group": "top.buffer.#.#", "endpoints": 2, "latest_ns": 13.9}]
    # The 15 latest leave out the earliest input; the biases' LUT RAM comes last, with 1.
    assert late_endpoints(nextpnr, count=15)[-1] == {"group": "top.engine.biases_#.#.#",
                                                    "endpoints": 1, "latest_ns": 9.0}
    assert len(late_endpoints(nextpnr, count=16)) == 4
    assert late_endpoints({}) is None
    report = {"board": "ulx3s-85f", "max_payload": 512, "baud": 3_000_000,
              "config": {"lanes": 4, "max_input_size": 8, "max_hidden_size": 8, "max_batch": 2,
                         "max_steps": 8, "max_layers": 1, "bidirectional": False},
              "fmax": {"clk": {"achieved": 50.0, "constraint": 45.0}}, "utilization": {},
              "build_seconds": 60, "late_endpoints": groups}
    text = summary(report)
    print(text)
    assert "  12 up to 12.5 ns  top.engine.product_#" in text
