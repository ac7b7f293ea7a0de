"""Sequence transposer in gateware: golden's ``pack`` and ``unpack``, one data word per transfer.

A request is a command ``(N, D)``, then ``N`` sequence lengths, then the data words. The whole
request is stored in one buffer RAM before any output leaves, so storing and emitting are two
phases, each moving one word per cycle. Only words inside a sequence are stored (``sum(lengths)
* D``), batch-major, at the same addresses for both directions: :class:`SequencePack` writes
them in arrival order and reads them time-major, :class:`SequenceUnpack` writes them
time-major and reads them in address order.

A request the block cannot carry out is refused, never cut: its status says why
(:class:`Refusal`), nothing is emitted, and its input is consumed so that the next command
finds the block ready.
"""

import textwrap

from amaranth.hdl import Module, Mux, Shape, Signal, signed
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out


__all__ = ["Refusal", "SequenceLayout", "SequencePack", "SequenceUnpack"]


class SequenceLayout:
    """Where the words of a batch of sequences lie: time-major, with strides.

    Word ``(n, t, d)`` of a batch (feature ``d`` of step ``t`` of sequence ``n``) lies at
    ``n * sequence_stride + t * step_stride + d``: a step's words for every sequence lie
    together. The transposer's buffer has the compact strides ``D`` and ``N * D``; the
    accelerator top's layer buffer has its own step stride, room for its largest batch.

    Parameters
    ----------
    sequence_stride : int or Value
        How far sequence ``n + 1`` lies from sequence ``n``, at least the features ``D``.
    step_stride : int or Value
        How far step ``t + 1`` lies from step ``t``, at least the batch's sequences times
        ``sequence_stride``.
    """

    def __init__(self, sequence_stride, step_stride):
        self._sequence_stride = sequence_stride
        self._step_stride = step_stride

    @property
    def sequence_stride(self):
        return self._sequence_stride

    @property
    def step_stride(self):
        return self._step_stride

    def batch_major(self, walk, batch, length, features):
        """The assignments (to ``m.d.comb``) that make ``walk`` step through ragged sequences
        batch-major in this layout: pack's write order and unpack's read order.

        ``walk.outer`` is the sequence ``n`` (``batch`` of them), ``walk.middle`` the step
        ``t`` (``length`` of them: the length of sequence ``walk.outer``, which the caller
        looks up) and ``walk.inner`` the feature ``d`` (``features`` of them).

        Parameters
        ----------
        walk : AddressWalk
        batch, length, features : int or Value
        """
        return [*walk.last_of(batch, length, features),
                walk.strides.outer.eq(self._sequence_stride),
                walk.strides.middle.eq(self._step_stride)]

    def time_major(self, walk, steps, batch, features):
        """The assignments (to ``m.d.comb``) that make ``walk`` step through every step of
        every sequence time-major in this layout, padding included: pack's read order and
        unpack's write order, address order for the compact strides.

        ``walk.outer`` is the step ``t`` (``steps`` of them), ``walk.middle`` the sequence
        ``n`` (``batch`` of them) and ``walk.inner`` the feature ``d`` (``features`` of them).

        Parameters
        ----------
        walk : AddressWalk
        steps, batch, features : int or Value
        """
        return [*walk.last_of(steps, batch, features),
                walk.strides.outer.eq(self._step_stride),
                walk.strides.middle.eq(self._sequence_stride)]


class Refusal(enum.IntEnum, shape=3):
    """Why a request was refused, in the order the checks are made; ``NONE`` if it was not."""

    NONE = 0
    #: ``N`` is 0 or above ``max_batch``; only the command was consumed.
    BATCH = 1
    #: ``D`` is 0 or above ``max_features``; only the command was consumed.
    FEATURES = 2
    #: A length is 0 or above ``max_steps``; lengths and data words were consumed.
    LENGTH = 3
    #: ``sum(lengths) * D`` is above ``capacity``; lengths and data words were consumed.
    CAPACITY = 4


class _Transposer(wiring.Component):
    """What both directions share: command and lengths intake, refusal, the output stage.

    A subclass provides the two data phases: ``_store(m, r)`` takes ``i`` into the buffer
    while ``i.valid``, ``_emit(m, r)`` offers words to the output stage on ``r.offer_*``
    while ``r.output_advance``. Each returns the condition that its current word is the
    request's last.
    """

    def __init__(self, width, max_batch, max_steps, max_features, capacity=None):
        for name, value in [("width", width), ("max_batch", max_batch),
                            ("max_steps", max_steps), ("max_features", max_features)]:
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")
        if capacity is None:
            capacity = max_batch * max_steps * max_features
        if not isinstance(capacity, int) or capacity < 1:
            raise ValueError(f"capacity must be a positive number of words, not {capacity!r}")
        self._width = width
        self._max_batch = max_batch
        self._max_steps = max_steps
        self._max_features = max_features
        self._capacity = capacity
        self._length_shape = Shape.cast(range(max_steps + 1))
        # A refused request can still carry lengths up to the field's limit; its word count
        # must not wrap, or the block would consume the wrong number of words.
        self._largest_length = (1 << self._length_shape.width) - 1
        super().__init__({
            "command": In(stream.Signature(data.StructLayout({
                "batch": range(max_batch + 1), "features": range(max_features + 1)}))),
            "lengths": In(stream.Signature(self._length_shape)),
            "i": In(stream.Signature(signed(width))),
            "o": Out(stream.Signature(data.StructLayout({
                "data": signed(width), "first": 1, "last": 1}))),
            "status": Out(stream.Signature(data.StructLayout({
                "error": 1, "refusal": Refusal, "steps": self._length_shape}))),
        })

    @property
    def capacity(self):
        """Words the buffer holds: the largest ``sum(lengths) * D`` a request may have."""
        return self._capacity

    def elaborate(self, platform):
        m = Module()
        r = _Request(m, self)

        bad_batch = (r.batch == 0) | (r.batch > self._max_batch)
        bad_features = (r.features == 0) | (r.features > self._max_features)
        with m.If(bad_batch):
            m.d.comb += r.refusal.eq(Refusal.BATCH)
        with m.Elif(bad_features):
            m.d.comb += r.refusal.eq(Refusal.FEATURES)
        with m.Elif(r.bad_length):
            m.d.comb += r.refusal.eq(Refusal.LENGTH)
        with m.Elif(r.words > self._capacity):
            m.d.comb += r.refusal.eq(Refusal.CAPACITY)

        # Output register stage: the buffer's read port holds its data while the consumer
        # stalls, so the data word needs no register of its own.
        m.d.comb += [
            r.buffer_read.addr.eq(r.offer_address),
            r.buffer_read.en.eq(r.output_advance),
            self.o.payload.data.eq(Mux(r.output_inside, r.buffer_read.data, 0)),
        ]
        with m.If(r.output_advance):
            m.d.sync += [
                self.o.valid.eq(r.offer_valid),
                r.output_inside.eq(r.offer_inside),
                self.o.payload.first.eq(r.offer_first),
                self.o.payload.last.eq(r.offer_last),
            ]

        with m.FSM():
            with m.State("COMMAND"):
                m.d.comb += self.command.ready.eq(1)
                with m.If(self.command.valid):
                    m.d.sync += [
                        r.batch.eq(self.command.payload.batch),
                        r.features.eq(self.command.payload.features),
                        r.words.eq(0), r.steps.eq(0), r.bad_length.eq(0),
                    ]
                    m.next = "LENGTHS"

            with m.State("LENGTHS"):
                with m.If(bad_batch | bad_features):
                    m.next = "STATUS"
                with m.Else():
                    m.d.comb += self.lengths.ready.eq(1)
                    length = self.lengths.payload
                    with m.If(self.lengths.valid):
                        m.d.comb += [
                            r.sequence_write.addr.eq(r.n),
                            r.sequence_write.data.length.eq(length),
                            r.sequence_write.data.offset.eq(r.words),
                            r.sequence_write.en.eq(1),
                        ]
                        m.d.sync += [
                            r.words.eq(r.words + length * r.features),
                            r.steps.eq(Mux(length > r.steps, length, r.steps)),
                            r.bad_length.eq(r.bad_length | (length == 0) |
                                            (length > self._max_steps)),
                        ]
                        with m.If(r.n == r.batch - 1):
                            m.d.sync += r.n.eq(0)
                            m.next = "STORE"
                        with m.Else():
                            m.d.sync += r.n.eq(r.n + 1)

            with m.State("STORE"):
                # Only a request whose every length is 0 has no data words.
                with m.If(r.steps == 0):
                    m.next = "STATUS"
                with m.Else():
                    m.d.comb += self.i.ready.eq(1)
                    final = self._store(m, r)
                    with m.If(self.i.valid & final & r.refused):
                        m.next = "STATUS"
                    with m.Elif(self.i.valid & final):
                        m.next = "EMIT"

            with m.State("EMIT"):
                m.d.comb += r.offer_valid.eq(1)
                final = self._emit(m, r)
                with m.If(r.output_advance & final):
                    m.next = "STATUS"

            with m.State("STATUS"):
                # After the last output word, so that a status also says the request is done.
                m.d.comb += [
                    self.status.valid.eq(~self.o.valid),
                    self.status.payload.error.eq(r.refused),
                    self.status.payload.refusal.eq(r.refusal),
                    self.status.payload.steps.eq(r.steps),
                ]
                with m.If(self.status.valid & self.status.ready):
                    m.next = "COMMAND"
        return m

    def _walk_time_major(self, m, r, advance):
        """Step ``(t, n, d)`` through the padded time-major order on ``advance``.

        Returns ``(address, inside, final)`` of the current word: its buffer address, whether
        it lies inside its sequence (outside, it is padding and ``address`` is 0), and whether
        it is the request's last word.
        """
        sequence = r.sequence_read.data
        last_feature = r.d == r.features - 1
        last_sequence = r.n == r.batch - 1
        inside = r.t < sequence.length
        self._read_sequence(m, r, advance, wrap=last_feature, last_sequence=last_sequence)
        final = last_feature & last_sequence & (r.t == r.steps - 1)
        with m.If(advance):
            m.d.sync += r.d.eq(Mux(last_feature, 0, r.d + 1))
            with m.If(final):
                m.d.sync += [r.t.eq(0), r.step_base.eq(0)]
            with m.Elif(last_feature & last_sequence):
                m.d.sync += [r.t.eq(r.t + 1), r.step_base.eq(r.step_base + r.features)]
        address = Mux(inside, sequence.offset + r.step_base + r.d, 0)
        return address, inside, final

    def _read_sequence(self, m, r, advance, *, wrap, last_sequence):
        """Move to the next sequence on ``advance`` when ``wrap``, after the last to the first.

        The sequences RAM is read with the address ``n`` is about to take, so that its length
        and offset are there in the cycle ``n`` takes it, whatever the stalls.
        """
        following = Mux(wrap, Mux(last_sequence, 0, r.n + 1), r.n)
        m.d.comb += r.sequence_read.addr.eq(Mux(advance, following, r.n))
        with m.If(advance):
            m.d.sync += r.n.eq(following)


class _Request:
    """The registers and memories of one request (a namespace built inside ``elaborate``)."""

    def __init__(self, m, block):
        largest_words = block._max_batch * block._largest_length * block._max_features
        self.batch = Signal(block.command.payload.batch.shape())
        self.features = Signal(block.command.payload.features.shape())
        #: Running ``sum(lengths) * D``: the offset of the next sequence, then the word count.
        self.words = Signal(range(largest_words + 1))
        #: Running ``max(lengths)``: the padded steps ``T``.
        self.steps = Signal(block._length_shape)
        self.bad_length = Signal()
        self.refusal = Signal(Refusal)
        self.refused = self.refusal != Refusal.NONE

        # Position in a walk: sequence n, step t, feature d; step_base = t * D. Every phase
        # leaves them at 0, where the next phase starts.
        self.n = Signal(range(block._max_batch))
        self.t = Signal(block._length_shape)
        self.d = Signal(range(block._max_features))
        self.step_base = Signal(range(block._largest_length * block._max_features + 1))
        #: Words counted in address order.
        self.count = Signal(range(largest_words + 1))

        m.submodules.buffer = buffer = Memory(shape=signed(block._width),
                                              depth=block._capacity, init=[])
        self.buffer_write = buffer.write_port()
        self.buffer_read = buffer.read_port()
        m.submodules.sequences = sequences = Memory(
            shape=data.StructLayout({"length": block._length_shape,
                                     "offset": range(block._capacity)}),
            depth=block._max_batch, init=[])
        self.sequence_write = sequences.write_port()
        # Transparent, so that a walk starting right after the last length sees it.
        self.sequence_read = sequences.read_port(transparent_for=(self.sequence_write,))

        # The word the emit walk offers the output stage this cycle.
        self.offer_valid = Signal()
        self.offer_address = Signal.like(self.buffer_read.addr)
        self.offer_inside = Signal()
        self.offer_first = Signal()
        self.offer_last = Signal()
        # The output stage: whether its word is data or padding, and whether it moves on.
        self.output_inside = Signal()
        self.output_advance = ~block.o.valid | block.o.ready


def _document(summary, words_in, words_out, i, o):
    """The docstring of a transposer: what both directions share around what differs."""
    i, o = (textwrap.fill(text, 92, initial_indent=" " * 8, subsequent_indent=" " * 8)
            for text in (i, o))
    return f"""{summary}

    Parameters
    ----------
    width : int
        Width of the signed data words.
    max_batch, max_steps, max_features : int
        Largest ``N``, sequence length and ``D`` a request may have.
    capacity : int, optional
        Buffer words, the largest ``sum(lengths) * D`` a request may have; by default
        ``max_batch * max_steps * max_features``.

    Members
    -------
    command : In(stream.Signature(StructLayout({{"batch": N, "features": D}})))
        One per request; fields wide enough for the maxima.
    lengths : In(stream.Signature(unsigned))
        Then the ``N`` sequence lengths, in any order of size.
    i : In(stream.Signature(signed(width)))
{i}
    o : Out(stream.Signature(StructLayout({{"data": signed(width), "first": 1, "last": 1}})))
{o}
    status : Out(stream.Signature(StructLayout({{"error": 1, "refusal": Refusal, "steps": T}})))
        One per command, after its last output word; ``steps`` is ``T`` (0 for a refused
        command). ``error`` is set when the request was refused, ``refusal`` says why (see
        :class:`Refusal`); nothing is then emitted. A refused ``N`` or ``D`` consumes only
        the command; a refused length or capacity consumes all ``N`` lengths and
        ``{words_in}`` words.

    ``S = sum(lengths)``, ``T = max(lengths)``. Throughput: one word per cycle in and one per
    cycle out. Latency: the request is buffered whole. Without stalls, the first output word
    leaves 2 cycles after the last input word (``N + {words_in} + 2`` cycles after the command
    is taken), the last ``{words_out} + 1`` cycles after the last input word, the status one
    cycle later, and the next command is taken the cycle after that:
    ``N + {words_in} + {words_out} + 3`` cycles from command to command. A refused request
    takes ``N`` plus the words it consumes plus at most 3 cycles.

    Resources: a buffer RAM of ``capacity`` words of ``width`` bits; a sequences RAM of
    ``max_batch`` words (a length and a buffer offset each); one multiplier of a length by
    ``D``; counters and adders of buffer-address width.
    """


class SequencePack(_Transposer):
    __doc__ = _document(
        "Lay ragged batch-major sequences out time-major, zero-padded (golden ``pack``).",
        "S*D", "T*N*D",
        i="Then ``S*D`` words, batch-major: every step of sequence 0, each step ``D`` words, "
          "then sequence 1, ...",
        o="``T*N*D`` words, time-major (for t, for n, for d), zero past a sequence's "
          "length; ``first`` marks the first and ``last`` the last word of each step ``t``.")

    def _store(self, m, r):
        # A refused request's count can pass the buffer's last address: write nothing.
        m.d.comb += [
            r.buffer_write.addr.eq(r.count),
            r.buffer_write.data.eq(self.i.payload),
            r.buffer_write.en.eq(self.i.valid & ~r.refused),
        ]
        final = r.count == r.words - 1
        with m.If(self.i.valid):
            m.d.sync += r.count.eq(Mux(final, 0, r.count + 1))
        return final

    def _emit(self, m, r):
        address, inside, final = self._walk_time_major(m, r, r.output_advance)
        m.d.comb += [
            r.offer_address.eq(address),
            r.offer_inside.eq(inside),
            r.offer_first.eq((r.n == 0) & (r.d == 0)),
            r.offer_last.eq((r.n == r.batch - 1) & (r.d == r.features - 1)),
        ]
        return final


class SequenceUnpack(_Transposer):
    __doc__ = _document(
        "Turn time-major zero-padded steps back into ragged batch-major sequences (golden "
        "``unpack``).",
        "T*N*D", "S*D",
        i="Then ``T*N*D`` words, time-major (for t, for n, for d). Words past a sequence's "
          "length are padding: consumed and ignored.",
        o="``S*D`` words, batch-major: every step of sequence 0, each step ``D`` words, then "
          "sequence 1, ...; ``first`` marks the first and ``last`` the last word of each "
          "sequence.")

    def _store(self, m, r):
        address, inside, final = self._walk_time_major(m, r, advance=self.i.valid)
        # A refused request's walk can pass the buffer's last address: write nothing.
        m.d.comb += [
            r.buffer_write.addr.eq(address),
            r.buffer_write.data.eq(self.i.payload),
            r.buffer_write.en.eq(self.i.valid & inside & ~r.refused),
        ]
        return final

    def _emit(self, m, r):
        sequence = r.sequence_read.data
        last_feature = r.d == r.features - 1
        last_step = r.t == sequence.length - 1
        last_sequence = r.n == r.batch - 1
        end_of_sequence = last_step & last_feature
        self._read_sequence(m, r, r.output_advance, wrap=end_of_sequence,
                            last_sequence=last_sequence)
        final = end_of_sequence & last_sequence
        with m.If(r.output_advance):
            m.d.sync += [
                r.d.eq(Mux(last_feature, 0, r.d + 1)),
                r.count.eq(Mux(final, 0, r.count + 1)),
            ]
            with m.If(last_feature):
                m.d.sync += r.t.eq(Mux(last_step, 0, r.t + 1))
        m.d.comb += [
            r.offer_address.eq(r.count),
            r.offer_inside.eq(1),
            r.offer_first.eq((r.t == 0) & (r.d == 0)),
            r.offer_last.eq(end_of_sequence),
        ]
        return final
