"""The GRU engine's element-wise stage: activations, the state update, the outputs."""

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory, ReadPort, WritePort
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from .activation import Function, activation_signature
from .arith import multiply, rescale
from .gru_layouts import ENTER, LEAVE, Kind, command_layout, output_layout, sums_layout
from .memory import NO_RW_CHECK, read_data


__all__ = ["ElementwiseStage"]


class ElementwiseStage(wiring.Component):
    """Turn a pass's sums, one unit a cycle, into gates, new states and outputs.

    An ``r`` or ``z`` unit's sum goes through the sigmoid and is stored; an ``n`` unit's
    through tanh, with ``r`` applied first in PyTorch's form, and the update
    ``h' = n + z (h - n)`` of its state is written and emitted. In the original form an ``r``
    unit also writes ``r * h``, which the lanes read for the ``n`` rows. A ``SKIP`` token's
    units emit zeros, a ``FINAL`` token's a sequence's state. Every number is
    :func:`gatework.golden.gru.gru_cell_fixed`'s.

    Parameters
    ----------
    config : BuildConfig
    lut_multipliers : bool
        Build the two multipliers in logic cells (:func:`.arith.multiply`).

    Members
    -------
    command : In(command_layout(config))
        The run's command, steady while its units pass.
    sums : In(stream.Signature(sums_layout(config)))
        One unit of a pass's sums or of a token. Ready whenever ``o`` can take a word.
    o : Out(stream.Signature(StructLayout({"data", "final", "last"})))
        The engine's outputs (see :class:`~.gru.GRUEngine`).
    activation : Out(activation_signature(formats).flip())
        The activation unit, fed every cycle and moving in lockstep with the stage.
    state_read : Out(ReadPort.Signature(...).flip())
        Reads ``h`` of a unit from the state memory (``2 * max_batch * max_hidden_size``
        words, two banks), a cycle before the activation's result.
    state_write : Out(WritePort.Signature(...).flip())
        Writes a new state into the other bank.
    rh_write : Out(WritePort.Signature(...).flip())
        Writes ``r * h`` of unit ``j`` at ``j`` (original form).
    job_done : Out(1)
        A job's last unit (of its last ``n`` pass or its ``SKIP`` token) leaves the stage:
        its state is written.
    r_done : Out(1)
        A job's last ``r`` unit leaves the stage: its ``r`` and ``r * h`` are written.
    state_cycle_written, rh_cycle_written : Out(1)
        A unit whose index is the last of a cycle of ``lane_width`` units is written: the
        state, or ``r * h``.
    run_done : Out(1)
        The run's last word leaves.

    Latency: a unit taken in cycle ``c`` is offered on ``o`` in cycle ``c + LEAVE + 6``
    (``Activation.latency + 11``; :data:`.gru_layouts.LEAVE`). Throughput: a unit per cycle.
    Resources: two memories of ``max_hidden_size`` activation codes (``r`` and ``z``) and two
    multipliers (16 x 18 and 16 x 20 bits by default), or with ``lut_multipliers`` adder
    trees in their place.
    """

    def __init__(self, config, *, lut_multipliers=False):
        self._config = config
        self._lut_multipliers = lut_multipliers
        formats = config.formats
        data_bits = formats.data.total_bits
        state_port = {"addr_width": ceil_log2(2 * config.max_batch * config.max_hidden_size),
                      "shape": signed(data_bits)}
        super().__init__({
            "command": In(command_layout(config)),
            "sums": In(stream.Signature(sums_layout(config))),
            "o": Out(stream.Signature(output_layout(config))),
            "activation": Out(activation_signature(formats).flip()),
            "state_read": Out(ReadPort.Signature(**state_port).flip()),
            "state_write": Out(WritePort.Signature(**state_port).flip()),
            "rh_write": Out(WritePort.Signature(addr_width=ceil_log2(config.max_hidden_size),
                                                shape=signed(data_bits)).flip()),
            "job_done": Out(1),
            "r_done": Out(1),
            "state_cycle_written": Out(1),
            "rh_cycle_written": Out(1),
            "run_done": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        config = self._config
        formats = config.formats
        max_b, max_h = config.max_batch, config.max_hidden_size
        data_bits = formats.data.total_bits
        acc_fraction = formats.product_fraction_bits
        acc_bits = config.accumulator.total_bits
        activation_bits = formats.activation.total_bits
        shift = config.lane_width_log2
        command = self.command
        # r and z of the job's units, in block RAM like the engine's other memories. No read of
        # r uses a word written in its cycle, as a job's n units wait for its last r (see the
        # engine's r_wait); z is read as it may be written (H = 1): transparent.
        block = {"ram_style": "block", **NO_RW_CHECK}
        m.submodules.r_gate = r_memory = Memory(shape=signed(activation_bits), depth=max_h,
                                                init=[], attrs=block)
        r_write = r_memory.write_port()
        r_read = r_memory.read_port()
        m.submodules.z_gate = z_memory = Memory(shape=signed(activation_bits), depth=max_h,
                                                init=[], attrs=block)
        z_write = z_memory.write_port()
        z_read = z_memory.read_port(transparent_for=(z_write,))

        def state_address(bank, offset):
            """Address in the state memory of ``offset`` (``b * max_h + j``) in ``bank``."""
            return Mux(bank, max_b * max_h, 0) + offset

        back_advance = Signal()
        m.d.comb += back_advance.eq(self.o.ready | ~self.o.valid)
        item_layout = data.StructLayout({
            "valid": 1, "kind": Kind, "state_offset": range(max_b * max_h),
            "unit": range(max_h + config.lanes),
            "read_bank": 1, "h_valid": 1, "last_unit": 1, "last_group": 1,
            "emit": 1, "final_run": 1})
        # The second sum is only ever W_hn h + b_hn, used at the pre-activation format.
        preact = formats.preactivation
        activation_format = formats.activation
        item_0 = Signal(item_layout)
        value_a_0 = Signal(signed(acc_bits), reset_less=True)
        value_b_0 = Signal(signed(preact.total_bits), reset_less=True)
        sums = self.sums.payload
        m.d.comb += self.sums.ready.eq(back_advance)
        with m.If(back_advance):
            m.d.sync += item_0.valid.eq(self.sums.valid)
            with m.If(self.sums.valid):
                m.d.sync += [
                    item_0.kind.eq(sums.kind),
                    item_0.state_offset.eq(sums.state_offset),
                    item_0.unit.eq(sums.unit),
                    item_0.read_bank.eq(sums.read_bank),
                    item_0.h_valid.eq(sums.h_valid | (sums.kind == Kind.FINAL)),
                    item_0.last_unit.eq(sums.last_unit),
                    item_0.last_group.eq(sums.last_group),
                    item_0.emit.eq(Mux(sums.kind == Kind.FINAL, 1,
                                       command.emit_steps & ((sums.kind == Kind.N) |
                                                             (sums.kind == Kind.SKIP)))),
                    item_0.final_run.eq((sums.kind == Kind.FINAL) & sums.last_sequence),
                    value_a_0.eq(sums.gi),
                    value_b_0.eq(rescale(sums.hn, acc_fraction, preact)),
                ]

        # The stages: E0 to E4 prepare the pre-activation, which enters the activation unit at
        # E5 and leaves it at EA (A = 5 + Activation.latency); EA to EA+4 compute the update.
        # Every stage ends in a register: no block RAM's data and no carry chain is followed
        # by another carry chain or a multiplier in the same cycle.
        enter, leave = ENTER, LEAVE
        last = leave + 4
        stages = [item_0] + [Signal(item_layout, name=f"item_{index}")
                             for index in range(1, last + 1)]
        with m.If(back_advance):
            for before, after in zip(stages, stages[1:]):
                m.d.sync += after.eq(before)

        def delayed(signal, start, stop, name):
            """``signal`` of stage ``start`` carried to stage ``stop``, one register a stage."""
            chain = [signal]
            for index in range(start + 1, stop + 1):
                register = Signal.like(signal, name=f"{name}_{index}", reset_less=True)
                with m.If(back_advance):
                    m.d.sync += register.eq(chain[-1])
                chain.append(register)
            return chain[-1]

        # E0 -> E1: read r.
        m.d.comb += [r_read.addr.eq(item_0.unit), r_read.en.eq(back_advance)]
        value_a_1 = delayed(value_a_0, 0, 1, "value_a")
        value_b_1 = delayed(value_b_0, 0, 1, "value_b")
        r_1 = read_data(m, r_read, r_write, platform=platform)
        # E1: r beside the sums.
        r_2 = delayed(r_1, 1, 2, "r")
        gi_2 = delayed(value_a_1, 1, 2, "gi")
        hn_2 = delayed(value_b_1, 1, 2, "hn")
        # E2: r * (W_hn h + b_hn).
        reset_fraction = activation_format.fraction_bits + preact.fraction_bits
        reset_3 = Signal(signed(activation_bits + preact.total_bits), reset_less=True)
        with m.If(back_advance):
            m.d.sync += reset_3.eq(multiply(r_2, hn_2, lut=self._lut_multipliers))
        gi_3 = delayed(gi_2, 2, 3, "gi")
        # E3: n's exact sum in PyTorch's form, rounded once at E4.
        common_fraction = max(acc_fraction, reset_fraction)
        n_sum_4 = Signal(signed(max(acc_bits + common_fraction - acc_fraction,
                                    len(reset_3) + common_fraction - reset_fraction) + 1),
                         reset_less=True)
        with m.If(back_advance):
            m.d.sync += n_sum_4.eq((gi_3 << (common_fraction - acc_fraction)) +
                                   (reset_3 << (common_fraction - reset_fraction)))
        gi_4 = delayed(gi_3, 3, 4, "gi")
        # E4: the pre-activation.
        item_4, item_enter = stages[4], stages[enter]
        pre_5 = Signal(signed(preact.total_bits), reset_less=True)
        with m.If(back_advance):
            m.d.sync += pre_5.eq(Mux((item_4.kind == Kind.N) & command.linear_before_reset,
                                     rescale(n_sum_4, common_fraction, preact),
                                     rescale(gi_4, acc_fraction, preact)))
        # E5: sigmoid or tanh. The activation unit is always fed, so it moves in lockstep with
        # these stages; items carry their own valid bit.
        activation = self.activation
        m.d.comb += [
            activation.i.valid.eq(1),
            activation.i.payload.value.eq(pre_5),
            activation.i.payload.function.eq(Mux(item_enter.kind == Kind.N, Function.TANH,
                                                 Function.SIGMOID)),
            activation.o.ready.eq(back_advance),
        ]
        # EA-1 -> EA: read z and h. h is read this late, rather than carried from E0, as the
        # state of a sequence is written at the last stage by its previous job only, which
        # ended before this job's first pass began.
        item_before, item_leave = stages[leave - 1], stages[leave]
        m.d.comb += [
            z_read.addr.eq(item_before.unit), z_read.en.eq(back_advance),
            self.state_read.addr.eq(state_address(item_before.read_bank,
                                                  item_before.state_offset)),
            self.state_read.en.eq(back_advance),
        ]
        # EA: store r and z; take the activation, z and h into registers.
        a_leave = activation.o.payload
        is_r = item_leave.valid & (item_leave.kind == Kind.R)
        is_z = item_leave.valid & (item_leave.kind == Kind.Z)
        m.d.comb += [
            r_write.addr.eq(item_leave.unit), r_write.data.eq(a_leave),
            r_write.en.eq(back_advance & is_r),
            z_write.addr.eq(item_leave.unit), z_write.data.eq(a_leave),
            z_write.en.eq(back_advance & is_z),
        ]
        a_next = delayed(a_leave, leave, leave + 1, "a")
        z_next = delayed(z_read.data, leave, leave + 1, "z")
        h_next = Signal(signed(data_bits), name=f"h_{leave + 1}", reset_less=True)
        with m.If(back_advance):
            m.d.sync += h_next.eq(Mux(item_leave.h_valid, self.state_read.data, 0))
        # EA+1: prepare the update or r * h; h - n, both at the update's fraction bits, and
        # r * h share one multiplier.
        item_next = stages[leave + 1]
        update_fraction = max(formats.data.fraction_bits, activation_format.fraction_bits)
        n_u = a_next << (update_fraction - activation_format.fraction_bits)
        h_u = h_next << (update_fraction - formats.data.fraction_bits)
        operand_bits = max(data_bits + update_fraction - formats.data.fraction_bits,
                           activation_bits + update_fraction - activation_format.fraction_bits,
                           data_bits) + 1
        multiplicand = Signal(signed(activation_bits), name=f"multiplicand_{leave + 2}",
                              reset_less=True)
        multiplier = Signal(signed(operand_bits), name=f"multiplier_{leave + 2}",
                            reset_less=True)
        with m.If(back_advance):
            m.d.sync += [
                multiplicand.eq(Mux(item_next.kind == Kind.R, a_next, z_next)),
                multiplier.eq(Mux(item_next.kind == Kind.R, h_next, h_u - n_u)),
            ]
        # EA+2: the one multiplier of r * h and z * (h - n).
        product = Signal(signed(activation_bits + operand_bits), name=f"product_{leave + 3}",
                         reset_less=True)
        with m.If(back_advance):
            m.d.sync += product.eq(multiply(multiplicand, multiplier,
                                            lut=self._lut_multipliers))
        n_product = delayed(n_u, leave + 1, leave + 3, "n")
        # EA+3: the exact new state, n + z (h - n), rounded once at the last stage.
        update = Signal(signed(max(len(n_product) + activation_format.fraction_bits,
                                   len(product)) + 1),
                        name=f"update_{last}", reset_less=True)
        with m.If(back_advance):
            m.d.sync += update.eq((n_product << activation_format.fraction_bits) + product)
        product_last = delayed(product, leave + 3, last, "product")
        h_last = delayed(h_next, leave + 1, last, "h")
        # The last stage: write r * h or the new state, and emit.
        item_last = stages[last]
        rh = rescale(product_last,
                     activation_format.fraction_bits + formats.data.fraction_bits, formats.data)
        new_state = rescale(update, update_fraction + activation_format.fraction_bits,
                            formats.data)
        is_n_last = item_last.valid & (item_last.kind == Kind.N)
        m.d.comb += [
            self.rh_write.addr.eq(item_last.unit), self.rh_write.data.eq(rh),
            self.rh_write.en.eq(back_advance & item_last.valid & (item_last.kind == Kind.R) &
                                ~command.linear_before_reset),
            self.rh_cycle_written.eq(self.rh_write.en & item_last.unit[:shift].all()),
            self.state_write.addr.eq(state_address(~item_last.read_bank,
                                                   item_last.state_offset)),
            self.state_write.data.eq(new_state),
            self.state_write.en.eq(back_advance & is_n_last),
        ]
        output = Mux(item_last.kind == Kind.N, new_state,
                     Mux(item_last.kind == Kind.FINAL, h_last, 0))
        with m.If(back_advance):
            m.d.sync += [
                self.o.valid.eq(item_last.valid & item_last.emit),
                self.o.payload.data.eq(output),
                self.o.payload.final.eq(item_last.kind == Kind.FINAL),
                self.o.payload.last.eq(item_last.final_run & item_last.last_unit),
            ]
        m.d.comb += self.state_cycle_written.eq(back_advance & is_n_last &
                                                item_last.unit[:shift].all())
        ends_job = (item_last.valid & item_last.last_unit & item_last.last_group &
                    ((item_last.kind == Kind.N) | (item_last.kind == Kind.SKIP)))
        m.d.comb += [
            self.job_done.eq(back_advance & ends_job),
            self.r_done.eq(back_advance & item_last.valid & item_last.last_unit &
                           item_last.last_group & (item_last.kind == Kind.R)),
            self.run_done.eq(back_advance & item_last.valid & item_last.final_run &
                             item_last.last_unit),
        ]
        return m
