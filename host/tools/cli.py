"""The ``gatework`` command line: ``demo``, ``info``, ``run``, ``sim-server``, ``bench``,
``verilog`` and ``build``."""

import argparse
import logging
import pathlib
import signal
import sys
import time

import numpy as np


def _device_names():
    from ..backends import DEVICE_NAMES
    return DEVICE_NAMES


def _write(text, out):
    if out == "-":
        sys.stdout.write(text)
        return
    path = pathlib.Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    print(f"wrote {path}", file=sys.stderr)


def demo(args):
    """Run one GRU on every available backend and compare them."""
    from ..backends import resolve_device
    from ..modules import GRU

    rng = np.random.default_rng(args.seed)
    steps, batch = args.steps, args.batch
    x = rng.standard_normal((steps, batch, args.input_size))
    lengths = rng.integers(1, steps + 1, size=batch)
    lengths[0] = steps
    devices = ["numpy", "golden"]
    try:
        resolve_device("torch")
        devices.append("torch")
    except RuntimeError as error:
        print(f"(torch backend skipped: {error})")
    simulation = resolve_device("sim")
    devices.append(simulation)
    print(f"GRU input_size={args.input_size} hidden_size={args.hidden_size} "
          f"num_layers={args.num_layers} bidirectional={args.bidirectional}, batch {batch}, "
          f"lengths {lengths.tolist()}, PyTorch-style random weights (seed {args.seed})\n")
    results = {}
    for device in devices:
        gru = GRU(args.input_size, args.hidden_size, args.num_layers,
                  bidirectional=args.bidirectional, device=device, seed=args.seed)
        if gru.device == "sim:amaranth":
            # Measured at the default sizes: 55 to 75 s on one core of the project's 2-core
            # test machine. The time grows with the clock cycles, so with steps, batch and
            # the model's sizes; the summary below prints the time it took.
            print(f"simulating the accelerator's RTL in the Amaranth simulator, clock cycle by "
                  f"clock cycle: loading this GRU's weights and running the {batch} sequences "
                  f"(about a minute at the default sizes, longer for larger ones; install "
                  f"Verilator for the compiled engine, a fraction of a second)...",
                  file=sys.stderr, flush=True)
        start = time.perf_counter()
        output, h_n = gru(x, lengths=lengths)
        results[gru.device] = (output, h_n, time.perf_counter() - start)
    reference, reference_h, _ = results["numpy"]
    print(f"{'backend':<12} {'arithmetic':<28} {'time':>9} {'max |out - float64|':>20} "
          f"{'mean':>9}  h_n[0, 0, :3]")
    for name, (output, h_n, seconds) in results.items():
        error = np.abs(output - reference)
        kind = {"golden": "fixed point, bit-exact", "numpy": "float64",
                simulation.name: "fixed point, RTL simulated"}.get(name, "float32")
        print(f"{name:<12} {kind:<28} {seconds * 1e3:7.1f}ms {error.max():20.2e} "
              f"{error.mean():9.2e}  {np.array2string(h_n[0, 0, :3], precision=5)}")
    simulated, golden = results[simulation.name], results["golden"]
    same = np.array_equal(simulated[0], golden[0]) and np.array_equal(simulated[1], golden[1])
    print(f"\n{simulation.name}: the accelerator top's RTL {_ENGINE_WORDS[simulation.name]}, "
          f"driven with the protocol's frames (LOAD, RUN) like a board: "
          f"{simulation.client.transport.cycles} clock cycles in {simulated[2]:.2f} s; outputs "
          f"and final states {'identical to' if same else 'DIFFERENT from'} golden.")
    print("The golden model is the specification the gateware must match bit for bit; "
          "its distance from float64 is the cost of 16-bit fixed point.")
    _demo_simulated_glu(rng)
    return 0


_ENGINE_WORDS = {"sim:amaranth": "in the Amaranth simulator",
                 "sim:verilator": "compiled by Verilator"}


def _demo_simulated_glu(rng):
    """A GLU through the accelerator's RTL, simulated, fed the protocol's bytes."""
    from ..backends import resolve_device
    from ..modules import GLU

    x = rng.standard_normal((4, 16))
    start = time.perf_counter()
    backend = resolve_device("sim")
    simulated = GLU(device=backend)(x)
    seconds = time.perf_counter() - start
    golden = GLU(device="golden")(x)
    reference = GLU(device="numpy")(x)
    same = "identical to" if np.array_equal(simulated, golden) else "DIFFERENT from"
    print(f"\nGLU of 4 vectors of 16 values on device='sim' ({backend.name}: the accelerator "
          f"top's RTL {_ENGINE_WORDS[backend.name]}, fed protocol frames): {same} golden; max "
          f"|out - float64| "
          f"{np.abs(simulated - reference).max():.2e}; {backend.client.transport.cycles} "
          f"cycles simulated in {seconds:.1f} s (INFO and GLU frames).")


def info(args):
    """Print the number formats and what backends are available, or what a board reports."""
    from ...golden.formats import DEFAULT_FORMATS
    from ..backends import DEVICE_NAMES, resolve_device

    if args.device is not None:
        backend = resolve_device(args.device)
        device_info = getattr(backend, "info", None)
        if device_info is None:
            print(f"device {args.device!r} -> {backend.name} (a reference backend, no build)")
            return 0
        config = device_info.config
        print(f"device {args.device!r}: protocol v{device_info.protocol_version}, "
              f"clock {device_info.clock_hz / 1e6:g} MHz, max payload "
              f"{device_info.max_payload} bytes")
        print(f"  lanes {config.lanes} x {config.lane_width} terms a cycle; maxima: input "
              f"{config.max_input_size}, hidden {config.max_hidden_size}, batch "
              f"{config.max_batch}, steps {config.max_steps}, layers {config.max_layers}"
              f"{', bidirectional' if config.bidirectional else ''}")
        print(f"  formats: {config.formats.describe()}")
        return 0
    formats = DEFAULT_FORMATS
    print(f"number formats: {formats.describe()}")
    print(f"accumulator:    {formats.accumulator(128)} for input_size + hidden_size = 128")
    print(f"activations:    {formats.table.describe()}")
    for device in DEVICE_NAMES[1:-1]:
        try:
            backend = resolve_device(device)
        except RuntimeError as error:
            print(f"device {device!r:<13} unavailable: {error}")
        else:
            print(f"device {device!r:<13} -> {backend.name}")
    return 0


def run(args):
    """Run a saved GRU model on an input array and save its outputs."""
    from ..model_files import load_array, load_gru

    out, h_n_out = _output_paths(args.output)
    options = {"device": args.device}
    if args.batch_first is not None:
        options["batch_first"] = args.batch_first
    gru = load_gru(args.model, node=args.node, **options)
    x = load_array(args.input, "input", ndim=(2, 3))
    if x.shape[-1] != gru.input_size:
        raise ValueError(f"the input file {args.input} has {x.shape[-1]} features in its last "
                         f"dimension (shape {x.shape}); the model takes input_size="
                         f"{gru.input_size}")
    lengths = load_array(args.lengths, "lengths", ndim=(1,)) if args.lengths else None
    start = time.perf_counter()
    output, h_n = gru(x, lengths=lengths)
    print(f"{gru!r}: input {x.shape} -> output {output.shape}, h_n {h_n.shape} in "
          f"{time.perf_counter() - start:.2f} s", file=sys.stderr)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.save(out, output)
    np.save(h_n_out, h_n)
    print(f"wrote {out} and {h_n_out}", file=sys.stderr)
    return 0


def _output_paths(output):
    """Where ``run`` writes its outputs and final states, refused before a run that could take
    minutes if they cannot be written there."""
    out = pathlib.Path(output)
    if out.suffix != ".npy":
        # numpy.save would add the suffix itself; the names printed must be those written.
        out = out.with_name(out.name + ".npy")
    h_n_out = out.with_name(out.stem + ".h_n.npy")
    for path in (out, h_n_out):
        if path.is_dir():
            raise IsADirectoryError(f"the output file {path} is a folder; pass -o a file name")
    folder = next(folder for folder in out.parents if folder.exists())
    if not folder.is_dir():
        raise NotADirectoryError(f"the output file {out} would be in {folder}, which is a file, "
                                 f"not a folder; pass -o a path in a folder")
    return out, h_n_out


def sim_server(args):
    """Serve the simulated accelerator's RTL on a loopback TCP port until interrupted."""
    from ...sim.device import simulated_accelerator
    from ...sim.server import serve_tcp

    # Ctrl-C stops the server even where it was started with SIGINT ignored (a shell starts
    # background jobs so, and Python then installs no handler of its own).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    device = simulated_accelerator(engine=args.engine)
    with serve_tcp(device, port=args.port) as port:
        print(f"serving the accelerator's RTL {_ENGINE_WORDS['sim:' + device.engine]} on "
              f"socket://127.0.0.1:{port}: use device='fpga:socket://127.0.0.1:{port}'; "
              f"Ctrl-C stops", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            print("stopped", file=sys.stderr)
    return 0


def bench_accuracy(args):
    from ...golden.formats import DEFAULT_FORMATS
    from . import bench

    sizes = bench.ACCURACY_SIZES[:3] if args.quick else bench.ACCURACY_SIZES
    candidates = bench.ACCURACY_FORMATS[:1] if args.quick else bench.ACCURACY_FORMATS
    print("measuring the fixed-point GRU against float...", file=sys.stderr)
    results = bench.measure_accuracy(sizes, candidates, seed=args.seed)
    report = bench.accuracy_report(results, DEFAULT_FORMATS.table.measure(), seed=args.seed)
    _write(report, args.out)
    worst = [r for r in results if r.formats == DEFAULT_FORMATS]
    max_error = max(r.max_error for r in worst)
    mean_error = max(r.mean_error for r in worst)
    print(f"default formats: worst max error {max_error:.2e} (bound 5e-3), worst mean "
          f"{mean_error:.2e} (bound 1e-3)")
    return 0 if max_error <= 5e-3 and mean_error <= 1e-3 else 1


def bench_golden(args):
    from . import bench

    print("timing the golden model beside the float models...", file=sys.stderr)
    timings = bench.measure_speed(seed=args.seed)
    report = bench.speed_report(timings)
    _write(report, args.out)
    ratio = (timings["golden fixed point (bit-exact)"] / timings["NumPy float64 reference"])
    print(f"bit-exact model / float NumPy model: {ratio:.2f}x (bound 3x)")
    return 0 if ratio <= 3 else 1


def bench_digits(args):
    from . import bench
    return _bench_classifier(args, bench.train_digits, "scikit-learn's digits")


def bench_vowels(args):
    from . import bench
    return _bench_classifier(args, bench.train_vowels,
                             "the Japanese vowels (ragged, 7 to 29 frames)")


def _bench_classifier(args, train, data):
    from . import bench

    print(f"training a GRU classifier on {data}...", file=sys.stderr)
    result = train(seed=args.seed, epochs=args.epochs, device=args.device)
    row = bench.classifier_report(result)
    header = (f"| model | float test accuracy | fixed-point test accuracy | change | "
              f"test {result.samples} | predictions that differ | saturated values |\n"
              "|---|---|---|---|---|---|---|\n")
    _write(header + row + "\n", args.out)
    print(f"float {100 * result.float_accuracy:.2f} %, fixed point "
          f"{100 * result.fixed_accuracy:.2f} %, drop {result.drop_points:.2f} points "
          f"(bound 0.5)")
    if result.device is not None:
        print(f"{result.device}: {result.test_samples} {result.samples} in "
              f"{result.device_seconds:.1f} s, "
              f"{'identical to' if result.device_identical else 'DIFFERENT from'} golden")
        if not result.device_identical:
            return 1
    return 0 if result.drop_points <= 0.5 else 1


def bench_cycles(args):
    """Cycles per step of the GRU engine in simulation, against the ideal."""
    import json
    from . import bench

    print("simulating the GRU engine (a few minutes)...", file=sys.stderr)
    records = bench.measure_cycles()
    if args.json:
        _write(json.dumps(records, indent=1) + "\n", args.json)
    _write(bench.cycles_report(records), args.out)
    failures = [r for r in records if not r["bit_exact"] or (
        r["hidden_size"] >= 4 * r["lanes"] and
        r["utilization"] < (0.90 if r["batch"] >= 2 else 0.80))]
    for r in failures:
        print(f"below the bound or not bit-exact: {r}", file=sys.stderr)
    return 1 if failures else 0


def bench_sim(args):
    """Cycles per second of both simulation engines on each board's accelerator top."""
    import json
    from . import bench

    records = bench.measure_simulation(args.boards, amaranth_seconds=args.amaranth_seconds)
    if args.json:
        _write(json.dumps(records, indent=1) + "\n", args.json)
    _write(bench.simulation_report(records), args.out)
    failures = [r for r in records if not r["bit_exact"] or
                (r["engine"] == "verilator" and not r["complete"])]
    slow = [r for r in records if r.get("speedup", 100) < 100]
    for r in failures + slow:
        print(f"not bit-exact, incomplete or under 100x: {r}", file=sys.stderr)
    return 1 if failures or slow else 0


def bench_torch(args):
    """The float reference backend timed and checked on every torch device here."""
    import json
    from . import bench

    devices = bench.torch_devices()
    print(f"timing the torch backend on {', '.join(devices)}...", file=sys.stderr)
    sizes = bench.TORCH_SIZES[:1] if args.quick else bench.TORCH_SIZES
    records = bench.measure_torch(sizes=sizes)
    if args.json:
        _write(json.dumps(records, indent=1) + "\n", args.json)
    _write(bench.torch_report(records), args.out)
    worst = max(r["max_error"] for r in records["accuracy"])
    print(f"worst error against float64: {worst:.1e} (bound {bench.TORCH_ERROR_BOUND:.0e})")
    if "cuda" not in devices:
        print("no CUDA device here: only the CPU was measured", file=sys.stderr)
    return 0 if worst <= bench.TORCH_ERROR_BOUND else 1


def bench_blocks(args):
    """Synthesise every registered block for iCE40 and ECP5 and tabulate its cells."""
    from ...boards.synthesis import synthesize
    from ...boards.targets import BOARDS
    from ...hdl import BLOCKS
    from ...hdl.top import AcceleratorTop

    groups = {
        "ice40": (("LUT4", "SB_LUT4"), ("flip-flops", "SB_DFF"), ("carry", "SB_CARRY"),
                  ("DSP", "SB_MAC16"), ("block RAM", "SB_RAM40_4K")),
        "ecp5": (("LUT4", "LUT4"), ("flip-flops", "TRELLIS_FF"), ("carry", "CCU2C"),
                 ("DSP", "MULT18X18D"), ("block RAM", "DP16KD"), ("LUT RAM", "TRELLIS_DPR16X4")),
    }
    def row(name, cells, kinds):
        counts = [sum(n for cell, n in cells.items() if cell.startswith(prefix))
                  for _, prefix in kinds]
        return f"| {name} | " + " | ".join(map(str, counts)) + " |"

    lines = ["# Gateware blocks: synthesis results", "",
             "Produced by `gatework bench blocks`: each block at its default parameters, "
             "synthesised alone with YoWASP Yosys (`synth_ice40 -dsp`, `synth_ecp5`), no place "
             "and route. Cell counts by kind; flip-flops count every variant. Memories "
             "marked `no_rw_check` are marked in the netlist as a board build marks them, so "
             "no bypass logic is counted around their RAMs (`gatework.hdl.memory.read_data`).",
             ""]
    for family, kinds in groups.items():
        lines += [f"## {family}", "",
                  "| block | " + " | ".join(name for name, _ in kinds) + " |",
                  "|---|" + "---|" * len(kinds)]
        for name, block in BLOCKS.items():
            print(f"  synthesising {name} for {family}...", file=sys.stderr)
            lines.append(row(name, synthesize(block.build(), family), kinds))
        lines.append("")
    # Where a full chip's cells go: the iCEBreaker's default accelerator top, block by block.
    board = BOARDS["icebreaker"]
    kinds = groups["ice40"]
    print("  synthesising the iCEBreaker's default top, block by block...", file=sys.stderr)
    blocks = synthesize(AcceleratorTop(board.default.config, board.default.max_payload,
                                       register_slices=board.register_slices),
                        "ice40", by_block=True)
    lanes = board.default.config.lanes
    lines += ["## The iCEBreaker's default top, block by block", "",
              f"`AcceleratorTop` as the `icebreaker` board's named default builds it "
              f"({lanes} lane{'s' if lanes > 1 else ''}), synthesised without flattening "
              f"(`synth_ice40 -dsp -noflatten`): each block's own cells, without those of the "
              f"blocks inside it. `top` is the protocol's command decoder, request walks and "
              f"sequencer; `engine` the GRU engine's lanes, control and element-wise stage.", "",
              "| block | " + " | ".join(name for name, _ in kinds) + " |",
              "|---|" + "---|" * len(kinds)]
    lines += [row(name, cells, kinds) for name, cells in blocks.items()]
    lines.append("")
    # What the DSPs outside the lanes would cost in logic cells (8 DSP lanes need them).
    lines += ["## The iCEBreaker's default top, element-wise products in DSPs or in logic", "",
              "The same top, flattened: as built, and with `lut_multipliers=True`, which "
              "makes the element-wise stage's and the activation's products of shifts and "
              "adds, leaving the DSPs to the lanes.", "",
              "| products | " + " | ".join(name for name, _ in kinds) + " |",
              "|---|" + "---|" * len(kinds)]
    for lut_multipliers in (False, True):
        print(f"  synthesising it with lut_multipliers={lut_multipliers}...", file=sys.stderr)
        top = AcceleratorTop(board.default.config, board.default.max_payload,
                             register_slices=board.register_slices,
                             lut_multipliers=lut_multipliers)
        lines.append(row("in logic" if lut_multipliers else "in DSPs",
                         synthesize(top, "ice40"), kinds))
    lines.append("")
    _write("\n".join(lines), args.out)
    return 0


def export_verilog(args):
    """Write one gateware block as Verilog."""
    from ...golden.config import BuildConfig
    from ...golden.formats import FORMAT_NAMES, NumberFormats
    from ...hdl import BLOCKS
    from ...sim.verilog import convert

    block = BLOCKS[args.block]
    arguments = {name: getattr(args, name) for name in block.defaults
                 if getattr(args, name, None) is not None}
    formats = NumberFormats(**{name: getattr(args, f"{name}_format") for name in FORMAT_NAMES
                               if getattr(args, f"{name}_format", None) is not None})
    if "formats" in block.defaults:
        arguments["formats"] = formats
    if "config" in block.defaults:
        arguments["config"] = BuildConfig(formats=formats, **{
            name: getattr(args, name) for name in _CONFIG_FIELDS + ("bidirectional",)
            if getattr(args, name) is not None})
    component = block.build(**arguments)
    text = convert(component, name=args.name)
    _write(text, args.output)
    return 0


_CONFIG_FIELDS = ("lanes", "lane_width", "max_input_size", "max_hidden_size", "max_batch",
                  "max_steps", "max_layers")


def _add_verilog_parser(commands):
    from ...golden.config import BuildConfig
    from ...golden.formats import FORMAT_NAMES
    from ...hdl import BLOCKS

    parser = commands.add_parser("verilog", help="export a gateware block as Verilog")
    blocks = parser.add_subparsers(dest="block", required=True, metavar="BLOCK")
    for name, block in BLOCKS.items():
        p = blocks.add_parser(name, help=block.summary, description=block.summary)
        for argument, default in block.defaults.items():
            if argument in ("formats", "config"):
                for field in FORMAT_NAMES:
                    p.add_argument(f"--{field}-format", metavar="qI.F",
                                   help=f"{field} format (default: gatework's default)")
            if argument == "config":
                defaults = BuildConfig()
                for field in _CONFIG_FIELDS:
                    p.add_argument(f"--{field.replace('_', '-')}", dest=field, type=int,
                                   metavar="INT", help=f"default: {getattr(defaults, field)}")
                p.add_argument("--bidirectional", action=argparse.BooleanOptionalAction,
                               default=None, help="a reverse bank per layer (default: yes)")
            if argument in ("formats", "config"):
                continue
            p.add_argument(f"--{argument.replace('_', '-')}", dest=argument,
                           type=type(default), metavar=type(default).__name__.upper(),
                           help=f"default: {default}")
        p.add_argument("-o", "--output", required=True, help="Verilog file ('-': stdout)")
        p.add_argument("--name", default="top", help="name of the Verilog module")
        p.set_defaults(run=export_verilog)


def bench_performance(args):
    """Build the boards, simulate the engine, time torch; write docs/performance.md."""
    from ...boards.targets import BOARDS
    from .performance import (measure_performance, performance_report, plot_performance,
                              write_records)

    lanes = {}
    for item in args.lanes or []:
        name, _, counts = item.partition("=")
        if name not in BOARDS or not counts:
            raise ValueError(f"--lanes takes BOARD=N,N with BOARD one of {sorted(BOARDS)}, "
                             f"not {item!r}")
        try:
            lanes[name] = tuple(int(count) if "x" not in count else
                                tuple(int(part) for part in count.split("x", 1))
                                for count in counts.split(","))
        except ValueError:
            raise ValueError(f"--lanes takes counts like 16,64 or 64x2 (64 lanes of two "
                             f"multipliers), not {counts!r}") from None
    for name in args.boards or []:
        if name not in BOARDS:
            raise ValueError(f"unknown board {name!r}; known: {', '.join(BOARDS)}")
    records = measure_performance(args.boards, lanes)
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    for path in plot_performance(records, out.parent):
        print(f"wrote {path}", file=sys.stderr)
    write_records(records, args.json)
    _write(performance_report(records), args.out)
    return 0


def build(args):
    """Build a board's bitstream with YoWASP tools; report Fmax and utilisation."""
    from ...boards.build import build_board, program_board
    from ...boards.targets import BOARDS

    board = BOARDS[args.board]
    base = board.small if args.small else board.default
    changes = {name: getattr(args, name) for name in _CONFIG_FIELDS + ("bidirectional", "glu",
                                                                        "max_payload",
                                                                        "clock_mhz", "seed")
               if getattr(args, name, None) is not None}
    plan = base.replace(**changes)

    def progress(line):
        print(line, file=sys.stderr, flush=True)

    if args.timeout < 0:
        raise ValueError(f"--timeout must be 0 (no limit) or more minutes, not {args.timeout:g}")
    result = build_board(board, plan, root=args.root, progress=progress,
                         timeout=args.timeout * 60 if args.timeout else None)
    print((result.folder / "summary.txt").read_text(), end="")
    print(f"bitstream: {result.bitstream}\nreport: {result.folder / 'report.json'}")
    if not result.timing_met:
        print(f"gatework build: timing NOT met at {plan.clock_mhz:g} MHz; lower --clock-mhz "
              f"or --lanes", file=sys.stderr)
    if args.program:
        if not result.timing_met:
            raise RuntimeError("refusing to program a bitstream that does not meet timing")
        programmer = program_board(board, result.bitstream)
        print(f"programmed the {board.name} with {programmer}")
    return 0 if result.timing_met else 1


def verify(args):
    """Simulate a board build's synthesised netlist beside its RTL on one protocol session."""
    from ...boards.targets import BOARDS
    from .verify import verify_netlist

    board = BOARDS[args.board]
    build = board.small if args.small else board.default

    def progress(line):
        print(line, file=sys.stderr, flush=True)

    if args.routed:
        from .verify import verify_routed
        result = verify_routed(board, build, progress=progress)
        model = "equal to" if result["as_model"] else "DIFFERENT from"
        print(f"{board.name} ({'small' if args.small else 'named'} build): the placed and "
              f"routed netlist's {result['frames']} answers (INFO, LOAD, RUN, GLU), through "
              f"its UART pins, are {model} the protocol model's, after {result['cycles']} "
              f"cycles (Verilator {result['compile_seconds']:.0f} s; build {result['folder']})")
        return 0 if result["as_model"] else 1
    result = verify_netlist(board, build, rtl_engine=args.rtl_engine, progress=progress)
    same = "identical to" if result["identical"] else "DIFFERENT from"
    model = "equal to" if result["as_model"] else "DIFFERENT from"
    print(f"{board.name} ({'small' if args.small else 'named'} build): the synthesised "
          f"netlist's {result['frames']} answers (INFO, LOAD, RUN, GLU) are {same} the RTL's, "
          f"after {result['netlist_cycles']} cycles against {result['rtl_cycles']}, and "
          f"{model} the protocol model's (synthesis {result['synthesis_seconds']:.0f} s, "
          f"Verilator {result['compile_seconds']:.0f} s)")
    return 0 if result["identical"] and result["as_model"] else 1


def _add_build_parser(commands):
    from ...boards.targets import BOARDS

    p = commands.add_parser(
        "build", help="build a board's bitstream (YoWASP Yosys + nextpnr)",
        description="Build the accelerator for a board with YoWASP tools from PyPI. With no "
                    "options, the board's named default configuration. The build folder is "
                    "build/BOARD/DIGEST; an unchanged design is taken from there. Exit "
                    "status 1 when timing is not met.")
    p.add_argument("board", choices=sorted(BOARDS), help="the board to build for")
    p.add_argument("--small", action="store_true",
                   help="start from the board's small test configuration")
    what = {"lanes": "multiply-accumulate lanes", "lane_width": "multipliers per lane (1, 2 or 4)",
            "max_input_size": "the largest input size", "max_hidden_size": "the largest "
            "hidden size", "max_batch": "the most sequences in one RUN", "max_steps": "the "
            "longest sequence", "max_layers": "the most layers"}
    for field in _CONFIG_FIELDS:
        flag = field.replace("max_", "").replace("_size", "").replace("_", "-")
        flag = {"lanes": "lanes", "lane-width": "lane-width"}.get(flag, f"{flag}-max")
        p.add_argument(f"--{flag}", dest=field, type=int, metavar="INT",
                       help=f"{what[field]} (default: the board's named configuration)")
    p.add_argument("--bidirectional", action=argparse.BooleanOptionalAction, default=None,
                   help="a reverse bank per layer")
    p.add_argument("--glu", action=argparse.BooleanOptionalAction, default=None,
                   help="a GLU unit (the iCEBreaker has no room for one)")
    p.add_argument("--payload-max", dest="max_payload", type=int, metavar="BYTES",
                   help="largest request payload the device buffers")
    p.add_argument("--clock-mhz", type=float, metavar="F", help="clock the PLL makes")
    p.add_argument("--seed", type=int, metavar="INT",
                   help="nextpnr's placement seed (default: the board's named build's)")
    p.add_argument("--root", default="build", help="relative build folder (default: build)")
    p.add_argument("--timeout", type=float, default=60, metavar="MINUTES",
                   help="stop the tools and fail after this long (default: 60; 0: no limit)")
    p.add_argument("--program", action="store_true",
                   help="load the bitstream into the board (openFPGALoader or iceprog)")
    p.set_defaults(run=build)


_DEVICE_HELP = ("where to run: " + ", ".join(_device_names()) + " or fpga:URL (such as "
                "fpga:/dev/ttyUSB1 or fpga:socket://127.0.0.1:5000)")


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="gatework",
        description="Gated sequence models (GRU, GLU) in FPGA gateware, bit-exact against "
                    "a NumPy golden model.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log what is chosen")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = commands.add_parser("demo", help="run a GRU on every backend and compare")
    p.add_argument("--input-size", type=int, default=8, help="features per step (default: 8)")
    p.add_argument("--hidden-size", type=int, default=16,
                   help="hidden units per layer (default: 16)")
    p.add_argument("--num-layers", type=int, default=2,
                   help="stacked GRU layers (default: 2)")
    p.add_argument("--bidirectional", action="store_true", help="two directions per layer")
    p.add_argument("--steps", type=int, default=20,
                   help="steps of the longest sequence (default: 20)")
    p.add_argument("--batch", type=int, default=4, help="sequences (default: 4)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the inputs, lengths and weights (default: 0)")
    p.set_defaults(run=demo)

    p = commands.add_parser("info", help="show number formats and available backends")
    p.add_argument("--device", help="ask this device instead: " + _DEVICE_HELP)
    p.set_defaults(run=info)

    p = commands.add_parser("sim-server",
                            help="serve the simulated accelerator on 127.0.0.1 over TCP")
    p.add_argument("--port", type=int, default=0, help="TCP port (default: a free one)")
    p.add_argument("--engine", choices=("auto", "verilator", "amaranth"), default="auto",
                   help="the simulator: Verilator's compiled model, the Amaranth simulator, "
                        "or (auto) the compiled one where Verilator is installed")
    p.set_defaults(run=sim_server)

    p = commands.add_parser("run", help="run a saved GRU (ONNX file or torch state dict)")
    p.add_argument("model", help="MODEL.onnx (the whole recurrent graph is imported), or a "
                                 "file torch.save wrote of a torch.nn.GRU's state dict, of a "
                                 "whole model's holding one GRU, or of a checkpoint dict "
                                 "holding that (the GRU is found by its key prefix)")
    p.add_argument("input", help="INPUT.npy: (T, N, D), or (N, T, D) when batch-first, or "
                                 "(T, D) for one sequence")
    p.add_argument("--lengths", help="LENGTHS.npy: (N,) valid steps per sequence")
    p.add_argument("--device", default="auto", help=_DEVICE_HELP + "; default: auto")
    p.add_argument("--node", metavar="NAME",
                   help="the GRU node to import when an ONNX graph holds several unrelated "
                        "ones, or operators the whole-graph import refuses: that node alone, "
                        "fed INPUT as its X (default: the whole recurrent part of the graph)")
    p.add_argument("--batch-first", action=argparse.BooleanOptionalAction, default=None,
                   help="input and output are (N, T, ...) (default: the model's own)")
    p.add_argument("-o", "--output", default="output.npy",
                   help="OUT.npy for the outputs, its folder created if need be; h_n goes "
                        "to OUT.h_n.npy (default: output.npy)")
    p.set_defaults(run=run)

    bench = commands.add_parser(
        "bench", help="measure and write the numbers in docs/",
        description="With no BENCH: the performance report (boards built, engine cycles "
                    "simulated, torch timed) in docs/performance.md with its plots.")
    bench.add_argument("--boards", nargs="+", help="boards to build (default: all)")
    bench.add_argument("--lanes", nargs="+", metavar="BOARD=N,N",
                       help="lane counts to build, e.g. icebreaker=8 or ulx3s-85f=64,64x2 "
                            "(LxW: L lanes of W multipliers; default: the sweep)")
    bench.add_argument("--out", default="docs/performance.md", help="the Markdown report")
    bench.add_argument("--json", default="docs/performance.json",
                       help="the measured records as JSON")
    bench.set_defaults(run=bench_performance)
    benches = bench.add_subparsers(dest="bench", metavar="BENCH")
    p = benches.add_parser("accuracy", help="fixed-point GRU against float, formats x sizes")
    p.add_argument("--out", default="docs/numerics.md", help="Markdown output ('-': stdout)")
    p.add_argument("--quick", action="store_true", help="default formats, small sizes only")
    p.add_argument("--seed", type=int, default=0, help="seed of the weights and inputs")
    p.set_defaults(run=bench_accuracy)
    p = benches.add_parser("golden", help="speed of the bit-exact model beside float models")
    p.add_argument("--out", default="docs/golden-speed.md", help="Markdown output ('-': stdout)")
    p.add_argument("--seed", type=int, default=0, help="seed of the weights and inputs")
    p.set_defaults(run=bench_golden)
    p = benches.add_parser("digits", help="train on scikit-learn digits; float vs fixed accuracy")
    p.add_argument("--out", default="docs/digits.md", help="Markdown output ('-': stdout)")
    p.add_argument("--epochs", type=int, default=40, help="training epochs (default: 40)")
    p.add_argument("--seed", type=int, default=0, help="seed of the training")
    p.add_argument("--device", help="also run the test set there and demand golden's final "
                                    "states bit for bit; " + _DEVICE_HELP)
    p.set_defaults(run=bench_digits)
    p = benches.add_parser("vowels", help="train on the Japanese vowels, ragged utterances of "
                                          "7 to 29 frames (sktime ships them); float vs fixed")
    p.add_argument("--out", default="docs/vowels.md", help="Markdown output ('-': stdout)")
    p.add_argument("--epochs", type=int, default=60, help="training epochs (default: 60)")
    p.add_argument("--seed", type=int, default=0, help="seed of the training")
    p.add_argument("--device", help="also run the test set there, each utterance at its own "
                                    "length, and demand golden's final states bit for bit; "
                                    + _DEVICE_HELP)
    p.set_defaults(run=bench_vowels)
    p = benches.add_parser("cycles", help="GRU engine cycles per step against the ideal")
    p.add_argument("--json", help="also write the records as JSON here")
    p.add_argument("--out", default="docs/cycles.md", help="Markdown output ('-': stdout)")
    p.set_defaults(run=bench_cycles)
    p = benches.add_parser("torch", help="the torch backend on the CPU and CUDA: time, error")
    p.add_argument("--out", default="docs/torch.md", help="Markdown output ('-': stdout)")
    p.add_argument("--json", help="also write the records as JSON here")
    p.add_argument("--quick", action="store_true", help="the smallest size only")
    p.set_defaults(run=bench_torch)
    p = benches.add_parser("sim", help="cycles per second of both simulation engines")
    p.add_argument("--out", default="docs/simulation.md", help="Markdown output ('-': stdout)")
    p.add_argument("--json", default="docs/simulation.json", help="the records as JSON")
    p.add_argument("--boards", nargs="+", default=["icebreaker", "ulx3s-85f"],
                   help="the boards whose named tops to simulate")
    p.add_argument("--amaranth-seconds", type=float, default=60,
                   help="how long the Amaranth simulator runs on each top (default: 60)")
    p.set_defaults(run=bench_sim)
    p = benches.add_parser("blocks", help="synthesise each gateware block; cells per chip")
    p.add_argument("--out", default="docs/gateware.md", help="Markdown output ('-': stdout)")
    p.set_defaults(run=bench_blocks)

    _add_verilog_parser(commands)
    _add_build_parser(commands)
    p = commands.add_parser(
        "verify", help="simulate a board build's synthesised netlist beside its RTL",
        description="Synthesise the accelerator top of a board build as the board build does, "
                    "simulate the netlist with the chip family's cell models under Verilator, "
                    "and feed it and the RTL one protocol session (INFO, LOAD, RUN, GLU): the "
                    "answers must be byte for byte and cycle for cycle the same, and the "
                    "protocol model's. The UART and the PLL around the top are left out. Exit "
                    "status 1 when they differ. iCE40 cells are Yosys' models; the ECP5's "
                    "DP16KD and MULT18X18D are ours (boards/cells/ecp5.v), as Yosys has none.")
    from ...boards.targets import BOARDS
    p.add_argument("board", choices=sorted(BOARDS), help="the board whose build to check")
    p.add_argument("--small", action="store_true", help="the board's small test build")
    p.add_argument("--routed", action="store_true",
                   help="instead, the placed and routed netlist of the board build (iCE40; "
                        "built if not in the build cache), the whole chip through its UART "
                        "pins, against the protocol model")
    p.add_argument("--rtl-engine", choices=["amaranth", "verilator"], default="verilator",
                   help="what simulates the RTL beside the netlist (default: %(default)s; "
                        "amaranth needs no compile, the faster for a small build)")
    p.set_defaults(run=verify)

    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(name)s: %(message)s")
    try:
        return args.run(args)
    except (ValueError, RuntimeError, ImportError, OSError) as error:
        print(f"gatework {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
