"""The performance report behind ``gatework bench``: boards built, cycles simulated, torch timed.

One run builds each board at each lane count of its sweep (YoWASP tools, cached by design
digest), simulates the GRU engine's RTL for cycles per step at the model sizes the board
holds, times torch's ``nn.GRU`` on this machine's CPU at the same sizes (batch 1 and 64), and
writes ``docs/performance.md`` with two plots. Projections combine the measured cycles with
the measured post-route clock: ``latency per step = cycles per step / clock``, where the
clock is the build's, or nextpnr's Fmax when a build misses it.
"""

import json
import pathlib
import re
import sys
import time

from .bench import TORCH_BATCHES, TORCH_STEPS, machine_description, measure_cycles, time_torch


__all__ = ["LANE_SWEEP", "MODEL_SIZES", "measure_performance", "performance_report",
           "plot_performance"]


# Lane counts built per board (the board's named default among them; the iCEBreaker's 3, one
# lane past its default, shows what the next lane needs; ``(lanes, width)`` for lanes of more
# than one multiplier), and the model sizes (D, H) run on each.
LANE_SWEEP = {"icebreaker": (1, 2, 3), "ulx3s-85f": (16, 64, (64, 2))}
MODEL_SIZES = {"icebreaker": ((4, 4),), "ulx3s-85f": ((32, 32), (64, 64))}


def _progress(message):
    print(message, file=sys.stderr, flush=True)


def failed_utilization(folder):
    """Cell counts nextpnr logged in the build ``folder``, from its log's "Device
    utilisation" lines (a build that did not fit writes no report)."""
    log = pathlib.Path(folder, "top.tim")
    utilization = {}
    if log.exists():
        for match in re.finditer(r"^Info:\s+(\w+):\s+(\d+)/\s*(\d+)", log.read_text(),
                                 re.MULTILINE):
            utilization.setdefault(match[1], {"used": int(match[2]),
                                              "available": int(match[3])})
    return utilization


def _macs(input_size, hidden_size, batch):
    """Multiply-accumulates of one GRU step: three gates of ``H x (D + H)``."""
    return 3 * hidden_size * (input_size + hidden_size) * batch


def measure_performance(boards=None, lanes=None, root="build", progress=_progress):
    """Build, simulate and time everything the report shows; returns plain data."""
    from ...boards.build import BuildFailed, build_board
    from ...boards.targets import BOARDS

    boards = list(LANE_SWEEP) if boards is None else boards
    records = {"builds": [], "runs": [], "torch": []}
    for name in boards:
        board = BOARDS[name]
        for entry in (lanes or {}).get(name, LANE_SWEEP[name]):
            count, width = entry if isinstance(entry, tuple) else (entry, 1)
            plan = board.default.replace(lanes=count, lane_width=width)
            build = {"board": name, "lanes": count, "lane_width": width,
                     "clock_mhz": plan.clock_mhz}
            progress(f"{name}, {_lanes(build)} lanes:")
            records["builds"].append(build)
            try:
                result = build_board(board, plan, root=root, progress=progress)
            except BuildFailed as error:
                # A build that does not fit: what nextpnr counted, for the utilisation plot.
                lines = str(error).splitlines()
                reason = (lines[-2] if len(lines) > 1 else lines[0]).strip()
                progress(f"  {reason}")
                build.update(fmax_mhz=None, timing_met=False, build_seconds=None,
                             utilization=failed_utilization(error.folder),
                             folder=str(error.folder), error=reason)
                continue
            report = result.report
            [clock] = report["fmax"].values()
            usable_mhz = min(clock["achieved"], clock["constraint"])
            build.update(fmax_mhz=clock["achieved"], timing_met=report["timing_met"],
                         build_seconds=report["build_seconds"],
                         utilization=report["utilization"], folder=str(result.folder),
                         critical_path=report.get("critical_path"))
            for input_size, hidden_size in MODEL_SIZES[name]:
                for batch in sorted({1, plan.config.max_batch}):
                    [cycles] = measure_cycles([(input_size, hidden_size, count, batch, width)],
                                              progress=progress)
                    per_step = cycles["cycles_per_step"]
                    latency = per_step / (usable_mhz * 1e6)
                    # The link carries a step's inputs in and its outputs out, 10 bits a byte.
                    link = 2 * (input_size + hidden_size) * batch * 10 / board.baud
                    macs = _macs(input_size, hidden_size, batch)
                    records["runs"].append({
                        "board": name, "lanes": count, "lane_width": width,
                        "input_size": input_size,
                        "hidden_size": hidden_size, "batch": batch,
                        "cycles_per_step": per_step,
                        "utilization": cycles["utilization"],
                        "bit_exact": cycles["bit_exact"],
                        "latency_s": latency, "gmacs": macs / latency / 1e9,
                        "link_s": link, "link_gmacs": macs / (latency + link) / 1e9,
                        "baud": board.baud,
                    })
    # torch at batch 1 and 64, and at every batch the boards ran, on the same sizes.
    cases = sorted({(size[0], size[1], batch) for name in boards for size in MODEL_SIZES[name]
                    for batch in TORCH_BATCHES} |
                   {(r["input_size"], r["hidden_size"], r["batch"]) for r in records["runs"]})
    try:
        import torch
    except ImportError:
        progress("torch is not installed: no CPU comparison")
        torch = None
    if torch is not None:
        for input_size, hidden_size, batch in cases:
            seconds = time_torch(input_size, hidden_size, batch)
            records["torch"].append({
                "input_size": input_size, "hidden_size": hidden_size, "batch": batch,
                "latency_s": seconds,
                "gmacs": _macs(input_size, hidden_size, batch) / seconds / 1e9,
                "torch": torch.__version__, "threads": torch.get_num_threads()})
            progress(f"torch CPU D={input_size} H={hidden_size} batch {batch}: "
                     f"{seconds * 1e6:.1f} us/step")
    records["machine"] = machine_description()
    records["date"] = time.strftime("%Y-%m-%d")
    return records


_UTILIZATION_CELLS = {
    "ice40": {"logic": "ICESTORM_LC", "DSP": "ICESTORM_DSP", "block RAM": "ICESTORM_RAM",
              "SPRAM": "ICESTORM_SPRAM"},
    "ecp5": {"logic": "TRELLIS_COMB", "DSP": "MULT18X18D", "block RAM": "DP16KD"},
}


def _family(name):
    return "ice40" if name == "icebreaker" else "ecp5"


def _percent(utilization, cell):
    use = utilization.get(cell)
    return 100 * use["used"] / use["available"] if use and use["available"] else 0.0


def _multipliers(record):
    return record["lanes"] * record.get("lane_width", 1)


def _lane_axis(axis, records):
    """Lanes on a log axis, placed by their multipliers: ``64 x 2`` at 128."""
    from matplotlib.ticker import NullFormatter

    ticks = {_multipliers(record): _lanes(record) for record in records}
    axis.set_xscale("log", base=2)
    axis.set_xticks(sorted(ticks), [ticks[x] for x in sorted(ticks)])
    axis.xaxis.set_minor_formatter(NullFormatter())


def plot_performance(records, folder="docs"):
    """Two PNGs: utilisation against lanes, projected throughput against lanes."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder = pathlib.Path(folder)
    boards = list(dict.fromkeys(build["board"] for build in records["builds"]))
    paths = []
    figure, axes = plt.subplots(1, len(boards), figsize=(5.5 * len(boards), 4), squeeze=False)
    for axis, name in zip(axes[0], boards):
        builds = [b for b in records["builds"] if b["board"] == name]
        positions = [_multipliers(b) for b in builds]
        highest = 100
        for label, cell in _UTILIZATION_CELLS[_family(name)].items():
            percents = [_percent(b["utilization"], cell) for b in builds]
            highest = max(highest, *percents)
            axis.plot(positions, percents, "o-", label=label)
        axis.set(title=f"{name}: utilisation (over 100 %: does not fit)",
                 xlabel="lanes (L x 2: two multipliers a lane)", ylabel="% of the chip",
                 ylim=(0, highest + 5))
        _lane_axis(axis, builds)
        axis.axhline(100, color="grey", linewidth=0.8)
        axis.legend()
    figure.tight_layout()
    paths.append(folder / "utilisation.png")
    figure.savefig(paths[-1], dpi=110)
    plt.close(figure)

    figure, axes = plt.subplots(1, len(boards), figsize=(5.5 * len(boards), 4), squeeze=False)
    for axis, name in zip(axes[0], boards):
        runs = [r for r in records["runs"] if r["board"] == name]
        for size in dict.fromkeys((r["input_size"], r["hidden_size"], r["batch"])
                                  for r in runs):
            chosen = [r for r in runs if (r["input_size"], r["hidden_size"], r["batch"]) == size]
            line, = axis.plot([_multipliers(r) for r in chosen], [r["gmacs"] for r in chosen],
                              "o-", label=f"D={size[0]} H={size[1]} N={size[2]}")
            axis.plot([_multipliers(r) for r in chosen], [r["link_gmacs"] for r in chosen],
                      "x:", color=line.get_color())
        for entry in records["torch"]:
            if (entry["input_size"], entry["hidden_size"]) in MODEL_SIZES[name] and \
                    entry["batch"] == 1:
                axis.axhline(entry["gmacs"], linestyle="--", color="grey", linewidth=0.8)
                axis.text(0.02, entry["gmacs"], f"torch CPU D={entry['input_size']} "
                          f"H={entry['hidden_size']} N=1", fontsize=7, va="bottom",
                          transform=axis.get_yaxis_transform())
        axis.set(title=f"{name}: projected GMAC/s (x: with the UART)",
                 xlabel="lanes (L x 2: two multipliers a lane)", ylabel="GMAC/s", yscale="log")
        _lane_axis(axis, runs)
        axis.legend(fontsize=7)
    figure.tight_layout()
    paths.append(folder / "throughput.png")
    figure.savefig(paths[-1], dpi=110)
    plt.close(figure)
    return paths


def _lanes(record):
    """A record's lanes, with their width where a lane takes more than one term a cycle."""
    width = record.get("lane_width", 1)
    return f"{record['lanes']}" if width == 1 else f"{record['lanes']} x {width}"


def performance_report(records, cycles_table=""):
    """Markdown for ``docs/performance.md``."""
    torch_by = {(t["input_size"], t["hidden_size"], t["batch"]): t for t in records["torch"]}
    lines = [
        "# Performance",
        "",
        f"Produced by `gatework bench` on {records['date']} ({records['machine']}; edit the "
        "command, not this file). Builds: YoWASP Yosys + nextpnr, post-route Fmax from "
        "nextpnr's report. Cycles: the GRU engine's RTL in the Amaranth simulator, every "
        "sequence full length, checked bit-exact against golden. Projected latency per step "
        "= cycles per step / clock (the build's clock when timing is met, nextpnr's Fmax "
        "when not). GMAC/s counts `3 H (D + H) N` multiply-accumulates per step. The UART "
        "column adds the time the board's USB UART needs to carry a step's inputs in and "
        "outputs out (16-bit words, 10 bits per byte), which bounds a board fed step by "
        "step from the host. torch: `nn.GRU` float32 on this machine's CPU, "
        f"{TORCH_STEPS} steps, best of 20, in the same run. Lanes `L x 2`: L lanes of two "
        "multipliers, each lane taking two terms of its row a cycle.",
        "",
        "![utilisation against lanes](utilisation.png)",
        "![throughput against lanes](throughput.png)",
        "",
        "## Builds",
        "",
        "| board | lanes | clock | Fmax | timing | logic | DSP | block RAM | build time |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for b in records["builds"]:
        cells = _UTILIZATION_CELLS[_family(b["board"])]
        use = [f"{b['utilization'].get(cells[k], {}).get('used', 0)} "
               f"({_percent(b['utilization'], cells[k]):.0f}%)"
               for k in ("logic", "DSP", "block RAM")]
        if b["fmax_mhz"] is None:
            lines.append(f"| {b['board']} | {_lanes(b)} | {b['clock_mhz']:g} MHz | - | "
                         f"does not fit: {b['error'].replace('|', '&#124;')} | {use[0]} | "
                         f"{use[1]} | {use[2]} | - |")
            continue
        lines.append(f"| {b['board']} | {_lanes(b)} | {b['clock_mhz']:g} MHz | "
                     f"{b['fmax_mhz']:.1f} MHz | {'met' if b['timing_met'] else 'NOT met'} | "
                     f"{use[0]} | {use[1]} | {use[2]} | {b['build_seconds']:.0f} s |")
    paths = [b for b in records["builds"] if b.get("critical_path")]
    if paths:
        lines += ["", "What sets each build's clock, from nextpnr's critical path (the cells at "
                      "its two ends, as Yosys named them):", "",
                  "| board | lanes | critical path | routing | cells | from | to |",
                  "|---|---|---|---|---|---|---|"]
        for b in paths:
            path = b["critical_path"]
            lines.append(f"| {b['board']} | {_lanes(b)} | {path['ns']:.1f} ns | "
                         f"{path['routing_ns']:.1f} ns | {path['logic_ns']:.1f} ns | "
                         f"`{path['from']}` | `{path['to']}` |")
    lines += [
        "",
        "## Latency and throughput per step",
        "",
        "| board | lanes | D | H | N | cycles / step | engine utilization | latency / step "
        "| GMAC/s | with UART: latency / step | GMAC/s | torch CPU latency / step | FPGA "
        "faster by |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in records["runs"]:
        torch = torch_by.get((r["input_size"], r["hidden_size"], r["batch"]))
        torch_cell = f"{torch['latency_s'] * 1e6:.1f} us" if torch else "-"
        ratio = f"{torch['latency_s'] / r['latency_s']:.1f}x" if torch else "-"
        lines.append(
            f"| {r['board']} | {_lanes(r)} | {r['input_size']} | {r['hidden_size']} | "
            f"{r['batch']} | {r['cycles_per_step']:.0f} | {r['utilization']:.3f} | "
            f"{r['latency_s'] * 1e6:.2f} us | {r['gmacs']:.2f} | "
            f"{(r['latency_s'] + r['link_s']) * 1e6:.1f} us | {r['link_gmacs']:.3f} | "
            f"{torch_cell} | {ratio} |")
    lines += ["", "## torch on this machine's CPU", "",
              "| D | H | N | latency / step | GMAC/s | threads |", "|---|---|---|---|---|---|"]
    for t in records["torch"]:
        lines.append(f"| {t['input_size']} | {t['hidden_size']} | {t['batch']} | "
                     f"{t['latency_s'] * 1e6:.1f} us | {t['gmacs']:.2f} | {t['threads']} |")
    lines += ["", "torch on a GPU, and gatework's torch backend on the CPU and CUDA, are "
                  "measured by `gatework bench torch`: [torch.md](torch.md)."]
    if cycles_table:
        lines += ["", cycles_table]
    return "\n".join(lines) + "\n"


def write_records(records, path):
    pathlib.Path(path).write_text(json.dumps(records, indent=1) + "\n")
