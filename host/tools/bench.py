"""Benchmarks behind ``gatework bench``: fixed-point accuracy, golden speed, the digits and
Japanese vowels tasks.

Each benchmark returns plain data (for tests and JSON) and can render it as Markdown; the
command line writes that Markdown into ``docs/`` so that every number in the documentation
comes from a command anyone can run again.
"""

from dataclasses import dataclass
import os
import pathlib
import platform
import sys
import time

import numpy as np

from ...golden.fixed import SaturationCounter
from ...golden.formats import DEFAULT_FORMATS, NumberFormats
from ...golden.gru import GRUDirectionWeights, GRUWeights, gru_fixed, gru_float, quantize_gru
from ..modules import _random_weights


__all__ = ["pytorch_initialised_gru", "measure_accuracy", "accuracy_report", "measure_speed",
           "speed_report", "train_digits", "train_vowels", "load_vowels",
           "classifier_report", "ClassifierResult", "ACCURACY_SIZES",
           "ACCURACY_FORMATS"]


def _progress(message):
    print(message, file=sys.stderr, flush=True)


def pytorch_initialised_gru(input_size, hidden_size, *, linear_before_reset=True, seed=0):
    """A one-layer GRU initialised as PyTorch does: uniform in +-1/sqrt(hidden_size).

    Drawn by ``torch.nn.GRU`` itself when PyTorch is installed, by NumPy otherwise (same
    distribution, different numbers).
    """
    try:
        import torch
    except ImportError:
        return _random_weights(input_size, hidden_size, 1, True, "forward",
                               linear_before_reset, seed)
    else:
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            module = torch.nn.GRU(input_size, hidden_size)
        arrays = [getattr(module, name).detach().double().numpy()
                  for name in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0")]
    return GRUWeights(((GRUDirectionWeights(*arrays),),), linear_before_reset)


# (input_size, hidden_size, steps): the sizes the accuracy bound is stated for.
ACCURACY_SIZES = ((8, 16, 20), (8, 16, 100), (16, 32, 100), (32, 32, 100), (32, 64, 100),
                  (64, 32, 100), (64, 64, 100))

# Candidate formats: (data, weight, bias); pre-activation and activation stay at their
# defaults, which the activation table measurement justifies on its own.
ACCURACY_FORMATS = (("q4.12", "q3.13", "q4.12"), ("q4.12", "q2.14", "q4.12"),
                    ("q4.12", "q4.12", "q4.12"), ("q3.13", "q2.14", "q4.12"),
                    ("q5.11", "q2.14", "q4.12"), ("q6.10", "q4.12", "q6.10"))


@dataclass
class AccuracyResult:
    formats: NumberFormats
    input_size: int
    hidden_size: int
    steps: int
    linear_before_reset: bool
    max_error: float
    mean_error: float
    saturated: int


def measure_accuracy(sizes=ACCURACY_SIZES, candidates=ACCURACY_FORMATS, batch=32, seed=0,
                     forms=(True, False), progress=_progress):
    """Compare the fixed-point GRU with the float reference on PyTorch-initialised weights.

    Inputs are N(0, 1); the error is ``|h_fixed - h_float|`` over every output of every step
    (which includes ``h_n``).
    """
    results = []
    for data, weight, bias in candidates:
        formats = DEFAULT_FORMATS.replace(data=data, weight=weight, bias=bias)
        for input_size, hidden_size, steps in sizes:
            for form in forms:
                weights = pytorch_initialised_gru(input_size, hidden_size,
                                                  linear_before_reset=form, seed=seed)
                x = np.random.default_rng(seed + 1).standard_normal((steps, batch, input_size))
                reference, _ = gru_float(weights, x)
                counter = SaturationCounter()
                codes, _ = gru_fixed(quantize_gru(weights, formats, counter),
                                     formats.data.quantize(x, counter, "inputs"),
                                     counter=counter)
                error = np.abs(formats.data.to_float(codes) - reference)
                results.append(AccuracyResult(formats, input_size, hidden_size, steps, form,
                                              float(error.max()), float(error.mean()),
                                              counter.total))
                progress(f"  {formats.data}/{formats.weight}/{formats.bias} "
                         f"D={input_size} H={hidden_size} T={steps} "
                         f"linear_before_reset={int(form)}: max {error.max():.2e} "
                         f"mean {error.mean():.2e}")
    return results


def accuracy_report(results, table_errors, seed=0, batch=32):
    """Markdown for ``docs/numerics.md`` from :func:`measure_accuracy` results."""
    defaults = DEFAULT_FORMATS
    table = defaults.table
    lines = [
        "# Numerics",
        "",
        "Produced by `gatework bench accuracy` (edit the command, not this file).",
        "",
        "## Formats and the rounding rule",
        "",
        "A format `qI.F` is signed two's complement with `I` integer bits (the sign bit "
        "included) and `F` fraction bits: `q4.12` is 16 bits covering [-8, 8) in steps of "
        "2^-12. Narrowing a value (from a product or an accumulator) **rounds half up** "
        "(`(v + 2^(s-1)) >> s`, ties towards +infinity) and **saturates** at the format's "
        "ends; it never wraps. Products and sums are exact; accumulators are sized so that a "
        "dot product cannot overflow.",
        "",
        "| value | default format | why |",
        "|---|---|---|",
        f"| data: x, h, outputs | `{defaults.data}` | N(0,1) inputs never saturate (q3.13 "
        f"saturates a few inputs per run, with 4e-2 errors); more fraction bits than q5.11 |",
        f"| weights | `{defaults.weight}` | PyTorch's initialisation lies within +-1, but "
        f"trained weights pass 2 (the digits classifier saturates one weight in q2.14); q2.14 "
        f"is more precise, q4.12 about 1.7x less |",
        f"| biases | `{defaults.bias}` | aligned exactly onto the accumulator; +-8 of room |",
        f"| accumulator | `{defaults.accumulator(128)}` for D+H = 128 | "
        f"{defaults.product_fraction_bits} fraction bits: exact, never overflows |",
        f"| gate pre-activation | `{defaults.preactivation}` | sigmoid needs +-16 before it "
        f"saturates to 1 within one output lsb |",
        f"| sigmoid / tanh output | `{defaults.activation}` | both lie in (-1, 1) |",
        "",
        "## Activation table",
        "",
        f"One interpolated table serves both functions: {table.describe()}; "
        f"sigmoid(x) = (1 + tanh(x/2)) / 2 reads it with one more offset bit. Errors over "
        f"every input code of `{table.input_format}`, against float64 at the same input:",
        "",
        "| function | max abs error | mean abs error | max error in output lsb |",
        "|---|---|---|---|",
    ]
    for name, error in table_errors.items():
        lines.append(f"| {name} | {error['max']:.2e} | {error['mean']:.2e} | "
                     f"{error['max_lsb']:.2f} |")
    lines += [
        "",
        "## Fixed-point GRU against float",
        "",
        f"A one-layer GRU initialised as PyTorch does (uniform in +-1/sqrt(H), seed {seed}), "
        f"inputs N(0, 1), batch {batch}; error `|h_fixed - h_float|` over every output of "
        f"every step. Bound asked for at the default formats: max <= 5e-3, mean <= 1e-3. "
        f"For scale: hls4ml 1.3 with `ap_fixed<16,6>` on a D=8, H=16, T=20 GRU was measured "
        f"at max 2.0e-2, mean 8.1e-3. `sat` counts values that saturated (inputs, weights, "
        f"intermediate values).",
        "",
        "| data / weight / bias | D | H | T | linear_before_reset | max error | mean error | sat |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        label = f"{r.formats.data} / {r.formats.weight} / {r.formats.bias}"
        if r.formats == defaults:
            label = f"**{label}** (default)"
        lines.append(f"| {label} | {r.input_size} | {r.hidden_size} | {r.steps} | "
                     f"{int(r.linear_before_reset)} | {r.max_error:.2e} | {r.mean_error:.2e} | "
                     f"{r.saturated} |")
    worst = [r for r in results if r.formats == defaults]
    if worst:
        lines += ["", f"Worst case at the default formats: max "
                      f"{max(r.max_error for r in worst):.2e}, mean "
                      f"{max(r.mean_error for r in worst):.2e}."]
    return "\n".join(lines) + "\n"


def _best_time(function, repeats):
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return best


def measure_speed(input_size=64, hidden_size=64, batch=64, steps=100, repeats=5, seed=0,
                  progress=_progress):
    """Time the bit-exact model, the float NumPy model and torch on the CPU, on one GRU.

    Returns seconds per call (best of ``repeats``) by name; torch entries are missing when it
    is not installed.
    """
    weights = pytorch_initialised_gru(input_size, hidden_size, seed=seed)
    x = np.random.default_rng(seed + 1).standard_normal((steps, batch, input_size))
    formats = DEFAULT_FORMATS
    qweights = quantize_gru(weights, formats)
    codes = formats.data.quantize(x)
    timings = {
        "golden fixed point (bit-exact)": _best_time(lambda: gru_fixed(qweights, codes),
                                                     repeats),
        "NumPy float64 reference": _best_time(lambda: gru_float(weights, x), repeats),
    }
    progress(f"  golden {timings['golden fixed point (bit-exact)'] * 1e3:.1f} ms, NumPy "
             f"{timings['NumPy float64 reference'] * 1e3:.1f} ms")
    try:
        import torch
    except ImportError:
        return timings
    module = torch.nn.GRU(input_size, hidden_size)
    x_t = torch.as_tensor(x, dtype=torch.float32)
    with torch.no_grad():
        timings[f"torch {torch.__version__} nn.GRU, CPU float32"] = _best_time(
            lambda: module(x_t), repeats)
    return timings


def speed_report(timings, input_size=64, hidden_size=64, batch=64, steps=100):
    """Markdown table of :func:`measure_speed` results."""
    reference = timings["NumPy float64 reference"]
    lines = [f"GRU D={input_size}, H={hidden_size}, batch {batch}, {steps} steps, one CPU "
             f"process (best of 5), measured by `gatework bench golden`:", "",
             "| model | time per call | per step | relative to NumPy float |",
             "|---|---|---|---|"]
    for name, seconds in timings.items():
        lines.append(f"| {name} | {seconds * 1e3:.1f} ms | {seconds / steps * 1e6:.0f} us | "
                     f"{seconds / reference:.2f}x |")
    return "\n".join(lines) + "\n"


@dataclass
class ClassifierResult:
    """A GRU classifier trained in float and tested in float and fixed point."""
    float_accuracy: float
    fixed_accuracy: float
    train_seconds: float
    test_samples: int
    hidden_size: int
    epochs: int
    saturated: int
    disagreements: int
    input_size: int = 8
    #: What a test sample is, for the report ("images", "utterances").
    samples: str = "images"
    #: With a device: its name, seconds for the whole test set, and whether its final states
    #: (and so its predictions) were identical to golden's.
    device: str = None
    device_seconds: float = None
    device_identical: bool = None

    @property
    def drop_points(self):
        return 100 * (self.float_accuracy - self.fixed_accuracy)



def _train_classifier(gru, head, inputs, lengths, labels, epochs, seed, progress):
    """Train ``gru`` (batch-first) and ``head`` on its last state, Adam, batches of 64;
    ``inputs`` padded ``(N, T, D)`` with ``lengths`` (or None: all of length T). Seconds."""
    import torch
    optimiser = torch.optim.Adam(list(gru.parameters()) + list(head.parameters()), lr=1e-2)
    generator = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    for epoch in range(epochs):
        order = torch.randperm(len(inputs), generator=generator)
        for batch in order.split(64):
            optimiser.zero_grad()
            x = inputs[batch]
            if lengths is not None:
                x = torch.nn.utils.rnn.pack_padded_sequence(x, lengths[batch], batch_first=True,
                                                            enforce_sorted=False)
            _, h_n = gru(x)
            loss = torch.nn.functional.cross_entropy(head(h_n[-1]), labels[batch])
            loss.backward()
            optimiser.step()
        if (epoch + 1) % 10 == 0:
            progress(f"  epoch {epoch + 1}/{epochs}: loss {loss.item():.3f}")
    return time.perf_counter() - start


def _test_classifier(gru, head, x_test, lengths, y_test, *, formats, train_seconds, epochs,
                     samples, device, progress):
    """Test a trained classifier on ``x_test`` (batch-first ``(N, T, D)``, zero-padded past
    ``lengths``, or None) through the float reference and the bit-exact golden model (the
    head in float64 for both, so only the GRU differs), and with a ``device`` through it too:
    its final states must be golden's bit for bit."""
    from ...golden.importers import gru_weights_from_torch

    weights = gru_weights_from_torch(gru)
    head_w = head.weight.detach().double().numpy()
    head_b = head.bias.detach().double().numpy()
    x = x_test.transpose(1, 0, 2)
    _, h_float = gru_float(weights, x, lengths=lengths)
    counter = SaturationCounter()
    _, h_codes = gru_fixed(quantize_gru(weights, formats, counter),
                           formats.data.quantize(x, counter, "inputs"), lengths=lengths,
                           counter=counter)
    h_fixed = formats.data.to_float(h_codes)

    def predict(h):
        return np.argmax(h[-1] @ head_w.T + head_b, axis=1)
    float_predictions, fixed_predictions = predict(h_float), predict(h_fixed)
    result = ClassifierResult(float(np.mean(float_predictions == y_test)),
                              float(np.mean(fixed_predictions == y_test)), train_seconds,
                              len(y_test), gru.hidden_size, epochs, counter.total,
                              int(np.count_nonzero(float_predictions != fixed_predictions)),
                              input_size=gru.input_size, samples=samples)
    if device is not None:
        from ..modules import GRU
        model = GRU.from_torch(gru, device=device, formats=formats)
        progress(f"  the {len(y_test)} test {samples} through {model.device}...")
        start = time.perf_counter()
        # The module is batch-first, as the torch GRU it came from: (N, T, D).
        _, h_device = model(x_test, lengths=lengths)
        result.device_seconds = time.perf_counter() - start
        result.device = model.device
        result.device_identical = bool(np.array_equal(h_device, h_fixed) and np.array_equal(
            predict(h_device), fixed_predictions))
    return result


def train_digits(hidden_size=32, epochs=40, seed=0, formats=DEFAULT_FORMATS,
                 progress=_progress, device=None):
    """Train a GRU classifier on scikit-learn's digits, then test it in float and fixed point.

    Each 8x8 image is 8 steps of 8 features (pixel rows scaled to [0, 1]). A one-layer GRU
    reads it and a linear layer classifies its last state. Training is float PyTorch on the
    CPU; the test set then runs through the float reference and the bit-exact golden model
    (the classifier head stays in float64 for both, so only the GRU differs). With a
    ``device`` (``"sim"``, ``"fpga:URL"``), the test set also runs through it, in requests
    the device takes, and its final states must equal golden's bit for bit.
    """
    import torch
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = digits.images.astype(np.float64) / 16.0
    x_train, x_test, y_train, y_test = train_test_split(
        images, digits.target, test_size=0.25, random_state=seed, stratify=digits.target)
    torch.manual_seed(seed)
    gru = torch.nn.GRU(8, hidden_size, batch_first=True)
    head = torch.nn.Linear(hidden_size, 10)
    train_seconds = _train_classifier(gru, head, torch.as_tensor(x_train, dtype=torch.float32),
                                      None, torch.as_tensor(y_train), epochs, seed, progress)
    return _test_classifier(gru, head, x_test, None, y_test, formats=formats,
                            train_seconds=train_seconds, epochs=epochs, samples="images",
                            device=device, progress=progress)


def load_vowels(split):
    """The Japanese vowels data set (UCI; Kudo, Toyama and Shimbo, 1999) as sktime ships it:
    utterances of /ae/ by nine speakers, each 7 to 29 frames of 12 LPC cepstrum coefficients.
    Returns the utterances zero-padded batch-first ``(N, T, 12)``, their lengths and the
    speakers (0 to 8)."""
    try:
        from sktime.datasets import load_japanese_vowels
    except ImportError as error:
        raise RuntimeError("the Japanese vowels data set comes with sktime: pip install "
                           "sktime (or the test extra)") from error
    frames, speakers = load_japanese_vowels(split=split, return_X_y=True, return_type="df-list")
    lengths = np.array([len(utterance) for utterance in frames])
    padded = np.zeros((len(frames), lengths.max(), frames[0].shape[1]))
    for n, utterance in enumerate(frames):
        padded[n, :len(utterance)] = utterance.to_numpy(dtype=np.float64)
    return padded, lengths, np.array([int(speaker) - 1 for speaker in speakers])


def train_vowels(hidden_size=32, epochs=60, seed=0, formats=DEFAULT_FORMATS,
                 progress=_progress, device=None):
    """Train a GRU speaker classifier on the Japanese vowels (:func:`load_vowels`), ragged
    utterances of 7 to 29 frames, and test it in float and fixed point as
    :func:`train_digits` does, each utterance at its own length (``lengths``), through a
    ``device`` too where one is given: its final states must equal golden's bit for bit."""
    import torch

    x_train, train_lengths, y_train = load_vowels("train")
    x_test, test_lengths, y_test = load_vowels("test")
    torch.manual_seed(seed)
    gru = torch.nn.GRU(x_train.shape[2], hidden_size, batch_first=True)
    head = torch.nn.Linear(hidden_size, int(y_train.max()) + 1)
    train_seconds = _train_classifier(gru, head, torch.as_tensor(x_train, dtype=torch.float32),
                                      torch.as_tensor(train_lengths),
                                      torch.as_tensor(y_train), epochs, seed, progress)
    return _test_classifier(gru, head, x_test, test_lengths, y_test, formats=formats,
                            train_seconds=train_seconds, epochs=epochs, samples="utterances",
                            device=device, progress=progress)


def classifier_report(result):
    """A Markdown table row of a :class:`ClassifierResult`, and a line on its device run."""
    row = (f"| GRU({result.input_size}, {result.hidden_size}) + linear, {result.epochs} epochs "
           f"({result.train_seconds:.0f} s on the CPU) | {100 * result.float_accuracy:.2f} % | "
           f"{100 * result.fixed_accuracy:.2f} % | {0.0 - result.drop_points:+.2f} points "
           f"| {result.test_samples} | {result.disagreements} | {result.saturated} |")
    if result.device is not None:
        same = ("identical to golden's" if result.device_identical else
                "DIFFERENT from golden's")
        row += (f"\n\nOn `{result.device}`: the {result.test_samples} test {result.samples} in "
                f"{result.device_seconds:.1f} s; final states and predictions {same}.")
    return row


# (input_size, hidden_size, lanes, batch[, lane_width]): the engine's cycle sweep. D = H = 64
# at the lane counts the boards use (8 on the iCEBreaker, 64 on the ULX3S, two terms a cycle
# there), batch 1 and more.
CYCLE_SWEEP = ((64, 64, 8, 1), (64, 64, 8, 2), (64, 64, 8, 8), (64, 64, 64, 1),
               (64, 64, 64, 2), (64, 64, 64, 8), (64, 64, 64, 1, 2), (64, 64, 64, 8, 2),
               (32, 32, 8, 1), (32, 32, 8, 2), (16, 32, 4, 4), (16, 16, 4, 2), (16, 16, 8, 2),
               (8, 8, 8, 2), (8, 8, 4, 2, 2))


def measure_cycles(sweep=CYCLE_SWEEP, steps=3, seed=0, progress=_progress):
    """Simulate the GRU engine and count cycles per step against the ideal.

    The ideal is ``3 H (D + H) batch / (lanes * lane_width)`` (every multiplier busy every
    cycle); cycles per step are measured between the ends of consecutive steps, every
    sequence full length. A sweep entry without a fifth number has a lane width of 1.
    """
    from ...golden.config import BuildConfig
    from ...sim.gru import simulate_gru

    records = []
    for input_size, hidden_size, lanes, batch, *width in sweep:
        lane_width = width[0] if width else 1
        config = BuildConfig(lanes=lanes, lane_width=lane_width, max_input_size=input_size,
                             max_hidden_size=hidden_size, max_batch=batch, max_steps=steps,
                             max_layers=1, bidirectional=False)
        weights = quantize_gru(pytorch_initialised_gru(input_size, hidden_size, seed=seed),
                               config.formats)
        x = config.formats.data.quantize(
            np.random.default_rng(seed).standard_normal((steps, batch, input_size)))
        start = time.perf_counter()
        output, _, (run,) = simulate_gru(config, weights, x)
        expected, _ = gru_fixed(weights, x)
        per_step = float(np.mean(np.diff(run.step_ends)))
        ideal = 3 * hidden_size * (input_size + hidden_size) * batch / (lanes * lane_width)
        record = {
            "input_size": input_size, "hidden_size": hidden_size, "lanes": lanes,
            "lane_width": lane_width,
            "batch": batch, "cycles_per_step": per_step, "ideal_cycles_per_step": ideal,
            "utilization": ideal / per_step, "bit_exact": bool(np.array_equal(output, expected)),
            "memory_words": config.memory_words(),
            "simulated_seconds": round(time.perf_counter() - start, 1),
        }
        records.append(record)
        progress(f"  D={input_size} H={hidden_size} lanes={lanes}x{lane_width} batch={batch}: "
                 f"{per_step:.0f} cycles/step, ideal {ideal:.0f}, utilization "
                 f"{record['utilization']:.3f}")
    return records


def cycles_report(records):
    """Markdown for ``docs/cycles.md`` from :func:`measure_cycles` records."""
    lines = [
        "# GRU engine: cycles per step",
        "",
        "Produced by `gatework bench cycles` (edit the command, not this file): the engine's "
        "RTL in the Amaranth simulator, a PyTorch-initialised GRU, every sequence full "
        "length, cycles counted between the ends of consecutive steps. The ideal is "
        "`3 H (D + H) batch / (lanes x width)`, every multiplier busy every cycle (width: "
        "the terms a lane multiplies a cycle, one multiplier each); utilization is ideal / "
        "measured. Every run is also checked bit-exact against golden.",
        "",
        "| D | H | lanes | width | batch | cycles / step | ideal | utilization | bit-exact |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in records:
        lines.append(f"| {r['input_size']} | {r['hidden_size']} | {r['lanes']} | "
                     f"{r.get('lane_width', 1)} | {r['batch']} "
                     f"| {r['cycles_per_step']:.0f} | {r['ideal_cycles_per_step']:.0f} | "
                     f"{r['utilization']:.3f} | {'yes' if r['bit_exact'] else 'NO'} |")
    lines += ["", "## On-chip memory of each build above (words)", "",
              "| D | H | lanes | width | batch | weights | biases | hidden state | "
              "gate buffers | input buffer | activation table |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in records:
        words = r["memory_words"]
        lines.append(f"| {r['input_size']} | {r['hidden_size']} | {r['lanes']} | "
                     f"{r.get('lane_width', 1)} | {r['batch']} | " +
                     " | ".join(str(words[key]) for key in (
                         "weights", "biases", "hidden state", "gate buffers", "input buffer",
                         "activation table")) + " |")
    return "\n".join(lines) + "\n"


# The torch bench: the float reference backend on the CPU and, where there is one, on CUDA.
TORCH_SIZES = ((8, 16), (64, 64), (256, 256))
TORCH_BATCHES = (1, 64)
TORCH_STEPS = 100
# float32 against float64 over TORCH_STEPS steps of PyTorch-initialised GRUs: about 1e-6 on
# the CPU; TF32 (10-bit mantissas) would be about 1e-3.
TORCH_ERROR_BOUND = 1e-4


def machine_description():
    """This machine in a few words: CPU model and core count."""
    model = platform.processor() or platform.machine()
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores"


def time_torch(input_size, hidden_size, batch, steps=TORCH_STEPS, repeats=20, device="cpu"):
    """Seconds per step of ``torch.nn.GRU`` (float32, best of ``repeats``) on ``device``.

    On CUDA each call is timed to its end (the stream is synchronised), after one warm-up
    call that also lets cuDNN pick its kernels.
    """
    import torch

    torch.manual_seed(0)
    module = torch.nn.GRU(input_size, hidden_size).to(device)
    x = torch.randn(steps, batch, input_size, device=device)
    cuda = torch.device(device).type == "cuda"

    def call():
        module(x)
        if cuda:
            torch.cuda.synchronize(device)

    with torch.no_grad():
        call()
        return _best_time(call, repeats) / steps


def torch_devices():
    """The torch devices on this machine: ``cpu``, then ``cuda`` when PyTorch sees a GPU."""
    import torch
    return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _torch_machine(torch):
    info = {"torch": torch.__version__, "cpu": machine_description(),
            "threads": torch.get_num_threads(),
            "date": time.strftime("%Y-%m-%d")}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["cuda"] = torch.version.cuda
        info["cudnn"] = torch.backends.cudnn.version()
    return info


def _raw_gru_error(torch, weights, x, reference, device, allow_tf32):
    """Max error of ``torch.nn.GRU`` itself on ``device``, TF32 allowed or not."""
    from ..backends import TorchBackend, tf32_allowed

    module = TorchBackend(device)._nn_gru(weights)
    with torch.no_grad(), tf32_allowed(torch, allow_tf32):
        out, _ = module(torch.as_tensor(x, dtype=torch.float32, device=device))
    return float(np.max(np.abs(out.double().cpu().numpy() - reference)))


def measure_torch(sizes=TORCH_SIZES, batches=TORCH_BATCHES, steps=TORCH_STEPS, repeats=5,
                  seed=0, progress=_progress):
    """Time and check the torch backend on every torch device of this machine.

    For each device, size and batch: ``torch.nn.GRU`` alone (seconds per step, float32, the
    input already on the device), and gatework's ``GRU(device="torch:DEVICE")`` called as a
    user calls it (NumPy in, NumPy out, transfers included), in both GRU forms (the original
    form runs as a tensor loop, having no cuDNN kernel). Each API result is compared with the
    float64 NumPy reference; on CUDA, ``torch.nn.GRU`` is also compared with cuDNN's TF32
    switch on (torch's default) and off.
    """
    import torch

    from ..modules import GRU

    records = {"machine": _torch_machine(torch), "speed": [], "accuracy": []}
    for device in torch_devices():
        for input_size, hidden_size in sizes:
            for linear_before_reset in (True, False):
                weights = pytorch_initialised_gru(input_size, hidden_size, seed=seed,
                                                  linear_before_reset=linear_before_reset)
                x = np.random.default_rng(seed + 1).standard_normal(
                    (steps, max(batches), input_size))
                reference, _ = gru_float(weights, x)
                gru = GRU(input_size, hidden_size, weights=weights,
                          linear_before_reset=linear_before_reset, device=f"torch:{device}")
                out, _ = gru(x)
                accuracy = {"device": device, "input_size": input_size,
                            "hidden_size": hidden_size, "batch": max(batches), "steps": steps,
                            "linear_before_reset": linear_before_reset,
                            "max_error": float(np.max(np.abs(out - reference)))}
                if linear_before_reset and device == "cuda":
                    for allow_tf32 in (True, False):
                        accuracy[f"nn_gru_error_tf32_{'on' if allow_tf32 else 'off'}"] = (
                            _raw_gru_error(torch, weights, x, reference, device, allow_tf32))
                records["accuracy"].append(accuracy)
                progress(f"torch:{device} D={input_size} H={hidden_size} "
                         f"linear_before_reset={linear_before_reset}: max error "
                         f"{accuracy['max_error']:.2e}")
                for batch in batches:
                    xb = x[:, :batch].astype(np.float32)
                    row = {"device": device, "input_size": input_size,
                           "hidden_size": hidden_size, "batch": batch, "steps": steps,
                           "linear_before_reset": linear_before_reset,
                           "api_s": _best_time(lambda: gru(xb), repeats) / steps}
                    if linear_before_reset:
                        row["nn_gru_s"] = time_torch(input_size, hidden_size, batch, steps,
                                                     repeats=4 * repeats, device=device)
                    records["speed"].append(row)
                    progress(f"  batch {batch}: API {row['api_s'] * 1e6:.1f} us/step" + (
                        f", nn.GRU {row['nn_gru_s'] * 1e6:.1f} us/step"
                        if "nn_gru_s" in row else ""))
    return records


def _microseconds(seconds):
    return f"{seconds * 1e6:.1f} us"


def torch_report(records):
    """Markdown for :func:`measure_torch`'s records."""
    machine = records["machine"]
    gpu = (f"{machine['gpu']} (CUDA {machine['cuda']}, cuDNN {machine['cudnn']})"
           if "gpu" in machine else "none (PyTorch sees no CUDA device)")
    lines = [
        "# The torch backend, CPU and CUDA",
        "",
        f"Produced by `gatework bench torch` on {machine['date']} with torch "
        f"{machine['torch']}: CPU {machine['cpu']} ({machine['threads']} threads); GPU {gpu}. "
        f"Every GRU here is PyTorch-initialised, one layer, inputs N(0, 1), {TORCH_STEPS} steps. "
        f"`nn.GRU` is torch's module alone, float32 with torch's default switches, its input "
        f"already on the device, best of 20 (CUDA calls timed to their end). The API column "
        f"is gatework's `GRU(..., device=\"torch:DEVICE\")` called as a user calls it, "
        f"NumPy in and NumPy out, every transfer included, best of 5. The original form "
        f"(`linear_before_reset=False`) has no cuDNN kernel and runs as a loop of 8 tensor "
        f"operations a step.",
        "",
        "## Time per step",
        "",
        "| device | D | H | batch | `nn.GRU` | API, PyTorch form | API, original form |",
        "|---|---|---|---|---|---|---|",
    ]
    speed = {(r["device"], r["input_size"], r["hidden_size"], r["batch"],
              r["linear_before_reset"]): r for r in records["speed"]}
    for (device, d, h, batch, form), row in speed.items():
        if not form:
            continue
        other = speed.get((device, d, h, batch, False))
        lines.append(f"| {device} | {d} | {h} | {batch} | {_microseconds(row['nn_gru_s'])} | "
                     f"{_microseconds(row['api_s'])} | "
                     f"{'-' if other is None else _microseconds(other['api_s'])} |")
    lines += [
        "",
        f"## Accuracy against the float64 reference (batch {records['accuracy'][0]['batch']})",
        "",
        f"Max absolute error of the output sequence; the bench fails above "
        f"{TORCH_ERROR_BOUND:.0e}. The backend computes in full float32 whatever the process "
        f"allows globally (it turns cuDNN's and cuBLAS's TF32 off for its own calls); the last "
        f"two columns show torch's `nn.GRU` on CUDA with TF32 allowed (torch's default in "
        f"cuDNN) and not.",
        "",
        "| device | D | H | form | API max error | `nn.GRU`, TF32 allowed | `nn.GRU`, TF32 off |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in records["accuracy"]:
        form = "PyTorch" if row["linear_before_reset"] else "original"
        on = row.get("nn_gru_error_tf32_on")
        off = row.get("nn_gru_error_tf32_off")
        lines.append(f"| {row['device']} | {row['input_size']} | {row['hidden_size']} | {form} "
                     f"| {row['max_error']:.1e} | {'-' if on is None else f'{on:.1e}'} | "
                     f"{'-' if off is None else f'{off:.1e}'} |")
    return "\n".join(lines) + "\n"


# The boards whose named builds `gatework bench sim` simulates, and how long the Amaranth
# simulator is given on each (it would take hours over the whole session on the ULX3S's).
SIM_BOARDS = ("icebreaker", "ulx3s-85f")
SIM_AMARANTH_SECONDS = 60
# Cycles a read may simulate: both engines are driven by the same reads.
_SIM_CHUNK = 20_000


def simulation_session(config, rng, cycles=200_000):
    """Wire bytes of a LOAD and RUNs at the build's largest sizes (one layer, forward, every
    sequence of the longest length), and the number of frames: as many RUNs as take about
    ``cycles`` in all (at least one)."""
    from ...golden.gru import GRUDirectionWeights
    from ...golden.messages import (LoadRequest, RunRequest, encode_load_request,
                                    encode_request, encode_run_request)
    from ...golden.protocol import Command
    from ..client import estimated_cycles

    inputs, hidden = config.max_input_size, config.max_hidden_size
    batch, steps = config.max_batch, config.max_steps

    def codes(*shape):
        return rng.integers(-0x1000, 0x1000, shape)
    cell = GRUDirectionWeights(codes(3 * hidden, inputs), codes(3 * hidden, hidden),
                               codes(3 * hidden), codes(3 * hidden))
    run = RunRequest(codes(batch * steps, inputs), np.full(batch, steps), 1, hidden, steps,
                     "forward")
    run_frame = encode_request(Command.RUN, 2, encode_run_request(run))
    # The client's estimate of a RUN: its bytes each way and the engine's passes.
    run_cycles = estimated_cycles(config, len(run_frame) + 2 * batch * steps * hidden, run)
    repeats = max(1, cycles // run_cycles)
    load = encode_request(Command.LOAD, 1, encode_load_request(LoadRequest(0, 0, cell)))
    return load + run_frame * repeats, 1 + repeats


def _drive(device, wire, frames, seconds=None):
    """Write ``wire`` and read until ``frames`` responses have come or ``seconds`` have gone;
    return the answer, the cycles simulated and the wall-clock seconds."""
    device.write(wire)
    answer = bytearray()
    start = time.perf_counter()
    while answer.count(0) < frames:
        if seconds is not None and time.perf_counter() - start > seconds:
            break
        answer += device.read(1 << 20, _SIM_CHUNK / device.clock_hz)
    return bytes(answer), device.cycles, time.perf_counter() - start


def measure_simulation(boards=SIM_BOARDS, amaranth_seconds=SIM_AMARANTH_SECONDS, seed=0,
                       progress=_progress):
    """Cycles per second of each simulation engine on each board's named build of the
    accelerator top, driven with the same session (:func:`simulation_session`).

    The compiled engine runs the whole session, whose answer must equal the protocol model's;
    the Amaranth simulator runs for ``amaranth_seconds``, and what it answered by then must be
    the start of the compiled engine's answer. Building the compiled model is timed apart
    (zero when it came from the cache).
    """
    from ...boards.targets import BOARDS
    from ...golden.device_model import DeviceModel
    from ...sim.device import simulated_accelerator

    records = []
    for name in boards:
        build = BOARDS[name].default
        config = build.config
        wire, frames = simulation_session(config, np.random.default_rng(seed))
        expected = DeviceModel(config, max_payload=build.max_payload).feed(wire)
        answers = {}
        for engine in ("verilator", "amaranth"):
            progress(f"{name}: the accelerator top on the {engine} engine...")
            start = time.perf_counter()
            device = simulated_accelerator(config, max_payload=build.max_payload, name=name,
                                           engine=engine, idle_cycles=1 << 30)
            made = time.perf_counter() - start
            with device:
                answer, cycles, seconds = _drive(
                    device, wire, frames, amaranth_seconds if engine == "amaranth" else None)
            answers[engine] = answer
            records.append({
                "board": name, "engine": engine, "lanes": config.lanes,
                "input_size": config.max_input_size, "hidden_size": config.max_hidden_size,
                "batch": config.max_batch, "steps": config.max_steps,
                "wire_bytes": len(wire), "cycles": cycles, "seconds": seconds,
                "cycles_per_second": cycles / seconds, "setup_seconds": made,
                "complete": answer.count(0) == frames,
                "bit_exact": (answer == expected if engine == "verilator" else
                              expected.startswith(answer)),
            })
            progress(f"  {cycles} cycles in {seconds:.1f} s: {cycles / seconds:,.0f} cycles/s")
        compiled, amaranth = (record for record in records[-2:])
        compiled["speedup"] = compiled["cycles_per_second"] / amaranth["cycles_per_second"]
    return records


def simulation_report(records):
    """Markdown of :func:`measure_simulation`'s records."""
    lines = [
        "# Simulation speed: the accelerator top on both engines",
        "",
        "Written by `gatework bench sim`. Each board's named build of the accelerator top "
        "(`simulated=True`, the receive buffer of the named build) is driven with one LOAD and "
        "RUNs at the build's largest sizes (one layer, forward, every sequence full "
        "length; as many RUNs as make about 200,000 cycles), through the same reads on both "
        "engines: Verilator's compiled model "
        "(`device=\"sim:verilator\"`) runs the whole session, whose answer must equal the "
        "protocol model's byte for byte; the Amaranth simulator (`device=\"sim:amaranth\"`) "
        f"runs for {SIM_AMARANTH_SECONDS} s, and what it answered by then must be the start "
        "of the same answer. Set-up is the time to make the device: elaborating (Amaranth) "
        "or compiling the model with Verilator (0 s once it is cached).",
        "",
        f"Machine: {machine_description()}.",
        "",
        "| board | top | engine | cycles | seconds | cycles/s | compiled / Amaranth | set-up "
        "| answer |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in records:
        top = (f"{r['lanes']} lanes, D = H = {r['input_size']}, batch {r['batch']}, "
               f"T = {r['steps']}")
        answer = ("whole, identical to the model" if r["complete"] and r["bit_exact"] else
                  "partial, the start of the model's" if r["bit_exact"] else "DIFFERENT")
        speedup = f"{r['speedup']:.0f}x" if "speedup" in r else ""
        lines.append(f"| {r['board']} | {top} | {r['engine']} | {r['cycles']:,} | "
                     f"{r['seconds']:.1f} | {r['cycles_per_second']:,.0f} | {speedup} | "
                     f"{r['setup_seconds']:.0f} s | {answer} |")
    return "\n".join(lines) + "\n"
