"""The GRU engine's holding registers: a pass's sums, handed on one unit a cycle."""

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .gru_layouts import Kind, command_layout, sums_layout, term_layout


__all__ = ["SumSerializer"]


class SumSerializer(wiring.Component):
    """Hold the sums of a pass, two a lane, and hand them on as units, one a cycle.

    The holding registers form a shift register: ``sums`` takes lane 0's and every lane passes
    its own to the one below, so no wide multiplexer gathers them. A pass holds a unit per
    lane of its group (fewer in the last group); a token holds none and hands on its units:
    ``hidden_size`` of them, or one for a ``SKIP`` token when steps are not emitted.

    Parameters
    ----------
    config : BuildConfig

    Members
    -------
    command : In(command_layout(config))
        The run's command, steady through a run.
    take : In(1)
        A pass's sums or a token are handed over this cycle; only while not ``busy``.
    term : In(term_layout(config))
        The last term of that pass, or the token.
    load : In(1).array(lanes)
        Lane ``l``'s holding registers take ``first[l]`` and ``second[l]`` (with ``take``,
        for the lanes of a pass).
    first, second : In(signed(accumulator bits)).array(lanes)
        Each lane's sums: ``gi`` and ``hn`` of :func:`.gru_layouts.sums_layout`.
    busy : Out(1)
        The holding registers hold units not yet handed on.
    release : Out(1)
        The last of them is handed on this cycle.
    sums : Out(stream.Signature(sums_layout(config)))

    Latency: the first unit is offered in the cycle after ``take``. Throughput: a unit a cycle.
    """

    def __init__(self, config):
        self._config = config
        lanes, acc_bits = config.lanes, config.accumulator.total_bits
        super().__init__({
            "command": In(command_layout(config)),
            "take": In(1),
            "term": In(term_layout(config)),
            "load": In(1).array(lanes),
            "first": In(signed(acc_bits)).array(lanes),
            "second": In(signed(acc_bits)).array(lanes),
            "busy": Out(1),
            "release": Out(1),
            "sums": Out(stream.Signature(sums_layout(config))),
        })

    def elaborate(self, platform):
        m = Module()
        config = self._config
        lanes, max_h = config.lanes, config.max_hidden_size
        acc_bits = config.accumulator.total_bits
        command, hidden, at_a = self.command, self.command.hidden_size, self.term
        holding_a = [Signal(signed(acc_bits), name=f"holding_a_{lane}", reset_less=True)
                     for lane in range(lanes)]
        holding_b = [Signal(signed(acc_bits), name=f"holding_b_{lane}", reset_less=True)
                     for lane in range(lanes)]
        holding = Signal(term_layout(config))
        for lane in range(lanes):
            with m.If(self.load[lane]):
                m.d.sync += [holding_a[lane].eq(self.first[lane]),
                             holding_b[lane].eq(self.second[lane])]
        # The last position, found as the sums are handed over rather than in the cycles that
        # compare the position with it.
        final_position = Signal(range(max(lanes, max_h)))
        units_left = hidden - at_a.group_base
        count = Mux(at_a.token, Mux((at_a.kind == Kind.SKIP) & ~command.emit_steps, 1, hidden),
                    Mux(units_left < lanes, units_left, lanes))
        with m.If(self.take):
            m.d.sync += [holding.eq(at_a), self.busy.eq(1), final_position.eq(count - 1)]
        with m.Elif(self.release):
            m.d.sync += self.busy.eq(0)

        position = Signal(range(max(lanes, max_h) + 1))
        last_position = position == final_position
        unit = Mux(holding.token, position, holding.group_base + position)
        m.d.comb += [
            self.sums.valid.eq(self.busy),
            self.sums.payload.gi.eq(holding_a[0]),
            self.sums.payload.hn.eq(holding_b[0]),
            self.sums.payload.kind.eq(holding.kind),
            self.sums.payload.unit.eq(unit),
            self.sums.payload.state_offset.eq(holding.state_row + unit),
            self.sums.payload.read_bank.eq(holding.read_bank),
            self.sums.payload.h_valid.eq(holding.h_valid),
            self.sums.payload.last_unit.eq(last_position),
            self.sums.payload.last_group.eq(holding.last_group | holding.token),
            self.sums.payload.last_sequence.eq(holding.last_sequence),
        ]
        with m.If(self.sums.valid & self.sums.ready):
            m.d.comb += self.release.eq(last_position)
            # Sums load only while the holding registers are free, so never while they shift.
            for lane in range(lanes - 1):
                m.d.sync += [holding_a[lane].eq(holding_a[lane + 1]),
                             holding_b[lane].eq(holding_b[lane + 1])]
            m.d.sync += position.eq(Mux(last_position, 0, position + 1))
        return m
