"""What the GRU engine's components pass each other: enumerations, layouts, stage numbers.

:class:`~.gru.GRUEngine` is built of components (:mod:`.gru_elementwise` and its siblings);
the words they exchange are defined here once, sized by the :class:`BuildConfig`.
"""

from amaranth.hdl import signed
from amaranth.lib import data, enum

from .activation import Activation


__all__ = ["ENTER", "LANES_PER_COPY", "LEAVE", "Gate", "Kind", "LoadRegion", "Refusal",
           "command_layout", "lane_cycles", "load_layout", "output_layout", "run_layout",
           "status_layout", "sums_layout", "term_layout"]


class LoadRegion(enum.Enum, shape=2):
    """Which memory a load word goes to."""

    WEIGHT = 0
    BIAS = 1
    STATE = 2


class Refusal(enum.Enum, shape=3):
    """Why a run command was refused (nothing was computed)."""

    NONE = 0
    BATCH = 1
    INPUT_SIZE = 2
    HIDDEN_SIZE = 3
    WEIGHT_SET = 4
    STEPS = 5
    LENGTH = 6


class Gate(enum.Enum, shape=2):
    """Which gate's rows a pass computes."""

    R = 0
    Z = 1
    N = 2


class Kind(enum.Enum, shape=3):
    """What an entry of the element-wise stage is."""

    R = 0
    Z = 1
    N = 2
    SKIP = 3     # a sequence past its length: emits zeros, keeps its state
    FINAL = 4    # reads a sequence's final state out


# Lanes that share one copy of a register every lane reads (:func:`.fanout.replicas`).
LANES_PER_COPY = 8

# The element-wise stage: the pre-activation enters the activation unit at stage E5 and
# leaves it at EA (A = 5 + Activation.latency).
ENTER = 5
LEAVE = ENTER + Activation.latency


def lane_cycles(size, config):
    """Cycles a lane takes over ``size`` terms (a value), ``lane_width`` of them a cycle."""
    if config.lane_width == 1:
        return size
    return (size + (config.lane_width - 1)) >> config.lane_width_log2


def command_layout(config):
    """A run command's fields (see :class:`~.gru.GRUEngine`'s ``command``)."""
    return data.StructLayout({
        "input_size": range(config.max_input_size + 1),
        "hidden_size": range(config.max_hidden_size + 1),
        "batch": range(config.max_batch + 1),
        "steps": range(config.max_steps + 1),
        "weight_set": range(config.weight_sets),
        "linear_before_reset": 1,
        "reverse": 1,
        "initial_state": 1,
        "emit_steps": 1})


def run_layout(config):
    """A run's parameters: its command and what the scheduler needs derived from it.

    ``terms`` is a pass's cycles, ``final_term`` the last of them; ``pass_base`` and
    ``bias_base`` are the run's weight set's first pass in the weight banks (words of
    ``lane_width`` weights) and in the bias banks; ``r_wait`` says that a job's ``n`` passes
    wait for its last ``r`` unit. With ``lane_width`` above 1, ``input_cycles`` is the cycles
    of a pass's input terms (otherwise ``command.input_size``), ``last_input_cycle`` the last
    of them, ``input_tail`` and ``hidden_tail`` which elements of a pass's last input cycle
    and last recurrent cycle are terms (the rest are padding, taken as zero).
    """
    width = config.lane_width
    return data.StructLayout({
        "command": command_layout(config),
        "terms": range(config.max_terms + 1),
        "final_term": range(config.max_terms + 1),
        "pass_base": range(config.weight_sets * config.weight_set_words + 1),
        "bias_base": range(config.weight_sets * config.bias_set_words + 1),
        "r_wait": 1,
        **({} if width == 1 else {
            "input_cycles": range(config.max_input_size + 1),
            "last_input_cycle": range(config.max_input_size),
            "input_tail": width, "hidden_tail": width})})


def load_layout(config):
    """A load word's fields (see :class:`~.gru.GRUEngine`'s ``load``)."""
    formats = config.formats
    address_depth = max(config.weight_sets * config.weight_set_words,
                        config.weight_sets * config.bias_set_words,
                        2 * config.max_batch * config.max_hidden_size)
    return data.StructLayout({
        "region": LoadRegion,
        "lane": range(config.lanes),
        "address": range(address_depth),
        "data": signed(max(formats.weight.total_bits, formats.bias.total_bits,
                           formats.data.total_bits))})


def output_layout(config):
    """An output word's fields (see :class:`~.gru.GRUEngine`'s ``o``)."""
    return data.StructLayout({"data": signed(config.formats.data.total_bits), "final": 1,
                              "last": 1})


def status_layout():
    """A run command's status word (see :class:`~.gru.GRUEngine`'s ``status``)."""
    return data.StructLayout({"error": 1, "refusal": Refusal, "load_error": 1})


def term_layout(config):
    """What the lanes carry beside one cycle of a pass (a term), or beside a token.

    A token (``token``, of kind ``SKIP`` or ``FINAL``) is no term: it passes the lanes
    without touching their sums and becomes a job's units in the element-wise stage.
    """
    max_b, max_h, lanes = config.max_batch, config.max_hidden_size, config.lanes
    return data.StructLayout({
        "valid": 1, "token": 1, "kind": Kind, "first": 1, "split": 1, "last": 1,
        "restart": 1, "use_input": 1, "use_rh": 1, "h_valid": 1,
        "state_row": range(max_b * max_h), "last_sequence": 1,
        "group_base": range(max_h + lanes + 1), "read_bank": 1, "last_group": 1,
        **({} if config.lane_width == 1 else {"mask": config.lane_width})})


def sums_layout(config):
    """One unit of a pass's sums, as the lanes hand it to the element-wise stage.

    ``gi`` is the gate's sum (for the ``n`` rows of PyTorch's form, ``W_in x + b_in``),
    ``hn`` the sum ``W_hn h + b_hn`` of those rows (used by no other); a token's unit carries
    neither. ``state_offset`` is ``b * max_hidden_size + unit`` of its sequence ``b``.
    """
    max_b, max_h = config.max_batch, config.max_hidden_size
    acc_bits = config.accumulator.total_bits
    return data.StructLayout({
        "gi": signed(acc_bits), "hn": signed(acc_bits), "kind": Kind,
        "unit": range(max_h + config.lanes), "state_offset": range(max_b * max_h),
        "read_bank": 1, "h_valid": 1, "last_unit": 1, "last_group": 1, "last_sequence": 1})
