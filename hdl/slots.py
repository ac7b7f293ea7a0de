"""What LOAD put in each of the engine's weight slots, and whether a RUN finds what it needs.

A slot holds one layer and direction of a GRU: its weights in the engine's banks, its initial
states in the accelerator's ``h0`` memory. :class:`WeightSlots` keeps the record that the
protocol's ``NOT_LOADED`` check reads (``docs/protocol.md``): whether the slot was loaded
whole, with which sizes, which form of the cell, and which batch of initial states.
"""

from amaranth.hdl import Array, Const, Module, Mux, Signal, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from ..golden.config import BuildConfig


__all__ = ["WeightSlots"]


class WeightSlots(wiring.Component):
    """The record of every weight slot, and the ``NOT_LOADED`` check of a RUN against it.

    Slot ``layer * directions + direction`` of a :class:`~gatework.golden.config.BuildConfig`
    holds that layer and direction.

    Parameters
    ----------
    config : BuildConfig

    Members
    -------
    clear : In(1)
        Forget every slot (RESET).
    forget : In(1)
        Forget slot ``slot``: a LOAD starts overwriting its weights.
    record : In(1)
        Slot ``slot`` now holds ``entry``: its LOAD ended OK.
    slot : In(range(config.weight_sets))
    entry : In(StructLayout({"input_size", "hidden_size", "linear_before_reset", "has_h0",
                             "batch"}))
        What a LOAD put in a slot; sizes within the build's maxima.
    run : In(StructLayout({"num_layers", "bidirectional", "input_size", "hidden_size",
                           "linear_before_reset", "use_h0", "batch"}))
        A RUN's fields, 16 bits wide as they come from the wire.
    not_loaded : Out(1)
        Some slot the RUN uses (a layer below ``num_layers``, a direction it runs) was not
        loaded whole, or with other sizes than the RUN's (layer 0's input size is
        ``input_size``, a later layer's the previous layer's features), another form of the
        cell, or (with ``use_h0``) no initial states or another batch of them.
        Combinational, from the records as they are.

    Resources: a record of a few bits per slot in flip-flops, and a comparator of each
    slot's record with the RUN's fields.
    """

    @staticmethod
    def loader_signature(config):
        """A LOAD's port (see :func:`~.share.share`): its ``forget``, ``record``, ``slot`` and
        ``entry``, driven while it is under way."""
        return wiring.Signature({
            "forget": Out(1),
            "record": Out(1),
            "slot": Out(range(config.weight_sets)),
            "entry": Out(data.StructLayout({
                "input_size": range(config.max_input_size + 1),
                "hidden_size": range(config.max_hidden_size + 1),
                "linear_before_reset": 1,
                "has_h0": 1,
                "batch": range(config.max_batch + 1),
            })),
        })

    def __init__(self, config=BuildConfig()):
        self._config = config
        loader = self.loader_signature(config).members
        run = data.StructLayout({
            "num_layers": unsigned(8), "bidirectional": 1, "input_size": unsigned(16),
            "hidden_size": unsigned(16), "linear_before_reset": 1, "use_h0": 1,
            "batch": unsigned(16),
        })
        super().__init__({
            "clear": In(1),
            **loader.flip(),
            "run": In(run),
            "not_loaded": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        config = self._config
        slots = config.weight_sets
        loaded = Array(Signal(name=f"loaded_{s}") for s in range(slots))
        layout = self.entry.shape()
        records = Array(Signal(layout.size, name=f"slot_{s}") for s in range(slots))
        with m.If(self.clear):
            m.d.sync += [flag.eq(0) for flag in loaded]
        with m.Elif(self.forget):
            m.d.sync += loaded[self.slot].eq(0)
        with m.Elif(self.record):
            m.d.sync += [loaded[self.slot].eq(1), records[self.slot].eq(self.entry.as_value())]

        run = self.run
        features = Mux(run.bidirectional, run.hidden_size << 1, run.hidden_size)
        not_loaded = Const(0)
        for layer in range(config.max_layers):
            for direction in range(config.directions):
                index = layer * config.directions + direction
                record = layout(records[index])
                expected = run.input_size if layer == 0 else features
                wrong = (~loaded[index] | (record.input_size != expected) |
                         (record.hidden_size != run.hidden_size) |
                         (record.linear_before_reset != run.linear_before_reset) |
                         (run.use_h0 & (~record.has_h0 | (record.batch != run.batch))))
                used = (layer < run.num_layers) & ((direction == 0) | run.bidirectional)
                not_loaded = not_loaded | (used & wrong)
        m.d.comb += self.not_loaded.eq(not_loaded)
        return m
