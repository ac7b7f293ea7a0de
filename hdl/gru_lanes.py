"""The GRU engine's lanes: weight banks, multiply-accumulate, the sums of a pass handed over."""

from amaranth.hdl import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .arith import pipelined_product
from .fanout import replica_of, replicas
from .gru_layouts import LANES_PER_COPY, command_layout, sums_layout, term_layout
from .gru_load import load_writes_signature
from .gru_serializer import SumSerializer
from .memory import NO_RW_CHECK, read_data


__all__ = ["Lanes"]


class Lanes(wiring.Component):
    """Multiply-accumulate ``lanes`` rows at once, a term of each a cycle, and hand the sums
    of every pass to the element-wise stage one unit a cycle.

    Each cycle the scheduler issues a ``term``: element ``k`` of the vector ``[x; h]`` (or
    ``[x; r * h]``), ``lane_width`` of them, broadcast to every lane, which multiplies it by
    its own row's weight from its own bank. A pass's last term hands every lane's sum over to
    the holding registers (:class:`.gru_serializer.SumSerializer`), which empty one unit a
    cycle into ``sums`` while the lanes go on with the next pass; a token passes the lanes
    untouched and becomes its units.

    Parameters
    ----------
    config : BuildConfig

    Members
    -------
    command : In(command_layout(config))
        The run's command, steady through a run.
    term : In(term_layout(config))
        The term the scheduler issues this cycle (``valid`` low: none). Taken when
        ``advance`` is high, as are the reads of its vector's memories.
    advance : Out(1)
        The lanes take a term this cycle. Low only while a pass's sums wait for the holding
        registers.
    input_words, rh_words, state_words : In(signed(data bits)).array(lane_width)
        The elements of the input vector, of ``r * h`` and of the state that the memories
        read for the term taken a cycle before; the term says which of them it uses.
    weight_address : In(range(...)).array(copies)
        The weight banks' address, one copy per eight lanes (:mod:`.fanout`): the term's
        word during a run, the load word's between runs.
    bias_address : In(range(...))
        The bias banks' address of the term issued this cycle.
    load : In(load_writes_signature(config))
        The banks' writes (:class:`.gru_load.LoadDecoder`).
    sums : Out(stream.Signature(sums_layout(config)))
        A unit of a pass's sums, or of a token, a cycle while ``ready``.

    Latency: a term takes six stages from issue to its accumulator (memories read, operands
    registered, the multiplier's input and output registers, bias added, accumulated), and a
    pass's sums are offered from the cycle after its last term is accumulated. Throughput:
    ``lanes * lane_width`` multiply-accumulates a cycle. Resources: ``lanes * lane_width``
    multipliers, ``lanes`` accumulators, a weight bank (``lane_width`` weights a word) and a
    bias bank per lane (:meth:`BuildConfig.memory_words`).
    """

    def __init__(self, config):
        self._config = config
        formats = config.formats
        data_bits = formats.data.total_bits
        width = config.lane_width
        self._bank_depth = config.weight_sets * config.weight_set_words // width
        self._bias_depth = config.weight_sets * config.bias_set_words
        copies = -(-config.lanes // LANES_PER_COPY)
        super().__init__({
            "command": In(command_layout(config)),
            "term": In(term_layout(config)),
            "advance": Out(1, init=1),
            "input_words": In(signed(data_bits)).array(width),
            "rh_words": In(signed(data_bits)).array(width),
            "state_words": In(signed(data_bits)).array(width),
            "weight_address": In(range(max(self._bank_depth, 2))).array(copies),
            "bias_address": In(range(self._bias_depth + 1)),
            "load": In(load_writes_signature(config)),
            "sums": Out(stream.Signature(sums_layout(config))),
        })

    def elaborate(self, platform):
        m = Module()
        config = self._config
        formats = config.formats
        lanes, width = config.lanes, config.lane_width
        data_bits = formats.data.total_bits
        acc_bits = config.accumulator.total_bits
        acc_fraction = formats.product_fraction_bits
        weight_bits = formats.weight.total_bits
        fanout = len(self.weight_address)
        front_advance = self.advance

        # With lane_width w, a lane takes w terms a cycle: w weights from one word of its bank,
        # each written alone, a write granule apiece. A bank is written between runs and read
        # during one: its ports share one address, so that synthesis maps them to one port of
        # a block RAM, with no logic to settle a read and a write of the same word in one
        # cycle.
        advance_next = Signal()       # front_advance's next value, found below
        lane_advance = replicas(m, advance_next, fanout, name="lane_advance", init=1,
                                reset_less=False)
        # The biases are read two stages after the weights, as they are added beside the
        # products: their address waits in registers rather than their values in one per
        # lane.
        bias_address_m = Signal.like(self.bias_address)
        with m.If(front_advance):
            m.d.sync += bias_address_m.eq(self.bias_address)
        bias_address = replicas(m, bias_address_m, fanout, name="bias_address",
                                enable=front_advance)
        weight_data, bias_data = [], []
        for lane in range(lanes):
            def mine(copies):
                return replica_of(copies, lane, lanes)
            bank = Memory(shape=unsigned(width * weight_bits), depth=self._bank_depth,
                          init=[], attrs=NO_RW_CHECK)
            biases = Memory(shape=signed(formats.bias.total_bits), depth=self._bias_depth,
                            init=[], attrs=NO_RW_CHECK)
            m.submodules[f"weights_{lane}"] = bank
            m.submodules[f"biases_{lane}"] = biases
            weight_read, weight_write = bank.read_port(), bank.write_port(granularity=weight_bits)
            bias_read, bias_write = biases.read_port(), biases.write_port()
            m.d.comb += [
                weight_read.addr.eq(mine(self.weight_address)),
                weight_read.en.eq(mine(lane_advance)),
                bias_read.addr.eq(mine(bias_address)),
                bias_read.en.eq(mine(lane_advance)),
                weight_write.addr.eq(mine(self.weight_address)),
                weight_write.data.eq(Cat([mine(self.load.data)] * width)),
                weight_write.en.eq(self.load.weight[lane * width:(lane + 1) * width]),
                bias_write.addr.eq(mine(self.load.address)),
                bias_write.data.eq(mine(self.load.data)),
                bias_write.en.eq(self.load.bias[lane]),
            ]
            # Each lane's weights of a cycle, term by term.
            word = read_data(m, weight_read, weight_write, platform=platform)
            weight_data.append([word[k * weight_bits:(k + 1) * weight_bits].as_signed()
                                for k in range(width)])
            bias_data.append(read_data(m, bias_read, bias_write, platform=platform))

        # Pipeline registers: M (memories read), P (the broadcast element and the weights
        # taken), D (the multipliers' operands), S (the product; add the bias), A
        # (accumulate).
        at_m, at_p, at_d, at_s, at_a = (Signal(term_layout(config), name=f"at_{stage}")
                                        for stage in "mpdsa")
        with m.If(front_advance):
            m.d.sync += [at_m.eq(self.term), at_p.eq(at_m), at_d.eq(at_p), at_s.eq(at_d),
                         at_a.eq(at_s)]

        # M stage: the broadcast element and each lane's weight, taken from the memories into
        # registers, as a block RAM's data arrives too late in its cycle to go further (on an
        # ECP5 about 6 ns after the clock edge). The element has one register, beside its
        # memories: copies near the lanes left the RAMs' data a route across the chip, the
        # slowest path of the 64-lane ULX3S (12.3 ns). Its loads are the multipliers' input
        # registers, where nothing follows the route.
        def element(k):
            value = Mux(at_m.use_input, self.input_words[k],
                        Mux(at_m.use_rh, self.rh_words[k],
                            Mux(at_m.h_valid, self.state_words[k], 0)))
            return value if width == 1 else Mux(at_m.mask[k], value, 0)

        vectors = [replicas(m, element(k), 1, name=f"vector_{k}",
                            shape=signed(data_bits), enable=front_advance)
                   for k in range(width)]
        weights_p = [[Signal(signed(weight_bits), name=f"weight_{lane}_{k}",
                             reset_less=True)
                      for k in range(width)]
                     for lane in range(lanes)]
        for lane in range(lanes):
            with m.If(replica_of(lane_advance, lane, lanes)):
                m.d.sync += [weights_p[lane][k].eq(weight_data[lane][k]) for k in range(width)]

        # P and D stages: each lane's weight and the broadcast element go into its
        # multiplier's input registers, and the product into its output register
        # (:func:`.arith.pipelined_product`: the DSP block's own registers on an ECP5).
        products = [[pipelined_product(m, weights_p[lane][k],
                                       replica_of(vectors[k], lane, lanes),
                                       enable=replica_of(lane_advance, lane, lanes),
                                       platform=platform, name=f"lane_{lane}_{k}")
                     for k in range(width)]
                    for lane in range(lanes)]
        # D stage: each lane's bias where one enters (k = 0 and k = D), otherwise zero: a
        # synchronous reset of the bias register, so no select meets the adder of the S stage.
        biases_p = [Signal(signed(formats.bias.total_bits), name=f"bias_{lane}")
                    for lane in range(lanes)]
        for lane in range(lanes):
            with m.If(replica_of(lane_advance, lane, lanes)):
                m.d.sync += biases_p[lane].eq(bias_data[lane])
                with m.If(~at_d.first & ~at_d.split):
                    m.d.sync += biases_p[lane].eq(0)

        # S stage: the products + bias, so that the accumulators take one addition.
        bias_shift = acc_fraction - formats.bias.fraction_bits
        addends = [Signal(signed(acc_bits), name=f"addend_{lane}", reset_less=True)
                   for lane in range(lanes)]
        for lane in range(lanes):
            product_sum = products[lane][0]
            for product in products[lane][1:]:
                product_sum = product_sum + product
            with m.If(replica_of(lane_advance, lane, lanes)):
                m.d.sync += addends[lane].eq(product_sum +
                                             (biases_p[lane].as_signed() << bias_shift))

        # A stage: accumulate; at a pass's end, hand the sums over.
        accumulators = [Signal(signed(acc_bits), name=f"accumulator_{lane}", reset_less=True)
                        for lane in range(lanes)]
        captured = [Signal(signed(acc_bits), name=f"captured_{lane}", reset_less=True)
                    for lane in range(lanes)]
        # The sums of a pass go to holding registers, which hand them on a unit a cycle.
        m.submodules.serializer = serializer = SumSerializer(config)
        wiring.connect(m, serializer.sums, wiring.flipped(self.sums))
        holding_busy, release = serializer.busy, serializer.release
        handover = at_a.valid & at_a.last
        token_handover = at_a.valid & at_a.token
        # front_advance = ~(a handover waits at A & the holding register is busy), from the
        # values both will have next cycle.
        handover_next = Mux(front_advance, at_s.valid & (at_s.last | at_s.token),
                            handover | token_handover)
        busy_next = (front_advance & (handover | token_handover)) | (holding_busy & ~release)
        m.d.comb += advance_next.eq(~(handover_next & busy_next))
        m.d.sync += front_advance.eq(advance_next)
        # The A stage's enables reach every lane's accumulator, captured sum and holding
        # registers: registers too, from A's next contents (S's when the front advances), as
        # are the selects of what the accumulators and the holding registers take.
        at_a_next = Signal(term_layout(config))
        m.d.comb += at_a_next.eq(Mux(front_advance, at_s.as_value(), at_a.as_value()))
        accumulate_next = advance_next & at_a_next.valid & ~at_a_next.token
        # Each a copy per group of lanes. accumulate is front_advance & at_a.valid &
        # ~at_a.token; capture and hand_over add at_a.split and at_a.last.
        accumulate = replicas(m, accumulate_next, fanout, name="accumulate")
        capture = replicas(m, accumulate_next & at_a_next.split, fanout, name="capture")
        hand_over = replicas(m, accumulate_next & at_a_next.last, fanout, name="hand_over")
        # A sum starts afresh at k = 0, and at k = D for the n rows of PyTorch's form.
        restart_sum = replicas(m, at_a_next.first | (at_a_next.split & at_a_next.restart),
                               fanout, name="restart_sum")
        # What a hand-over puts in holding_a: the sum so far (the n rows of PyTorch's form at
        # k = D), the sum captured at k = D (theirs later), or the new sum.
        first_is_sum = replicas(m, at_a_next.restart & at_a_next.split, fanout,
                                name="first_is_sum")
        first_is_captured = replicas(m, at_a_next.restart & ~at_a_next.split, fanout,
                                     name="first_is_captured")
        for lane in range(lanes):
            def mine(copies):
                return replica_of(copies, lane, lanes)
            total = Signal(signed(acc_bits), name=f"total_{lane}")
            m.d.comb += total.eq(Mux(mine(restart_sum), addends[lane],
                                     accumulators[lane] + addends[lane]))
            with m.If(mine(accumulate)):
                m.d.sync += accumulators[lane].eq(total)
            with m.If(mine(capture)):
                m.d.sync += captured[lane].eq(accumulators[lane])
            m.d.comb += [
                serializer.load[lane].eq(mine(hand_over)),
                serializer.first[lane].eq(Mux(mine(first_is_sum), accumulators[lane],
                                              Mux(mine(first_is_captured), captured[lane],
                                                  total))),
                serializer.second[lane].eq(total),
            ]
        m.d.comb += [
            serializer.command.eq(self.command),
            serializer.take.eq(front_advance & (handover | token_handover)),
            serializer.term.eq(at_a),
        ]
        return m
