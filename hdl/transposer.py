"""Sequence transposer in gateware: golden's ``pack`` and ``unpack``, one data word per transfer.

A request is a command ``(N, D)``, then ``N`` sequence lengths, then the data words. The whole
request is stored in one buffer RAM before any output leaves, so storing and emitting are two
phases, each moving one word per cycle. The buffer holds the request time-major in a
:class:`SequenceLayout`, the layout of the accelerator top's layer buffer, with the request's
own compact strides: word ``(n, t, d)`` at ``n * D + t * N * D + d``, ``T * N * D`` words for
``T = max(lengths)``, where a word past its sequence's length is padding. Both directions walk
the ragged sequences batch-major (:meth:`SequenceLayout.batch_major`) and the buffer in address
order (:meth:`SequenceLayout.time_major`): :class:`SequencePack` writes along the first and
reads along the second, padding read as 0; :class:`SequenceUnpack` writes along the second and
reads along the first.

A request the block cannot carry out is refused, never cut: its status says why
(:class:`Refusal`), nothing is emitted, and its input is consumed so that the next command
finds the block ready.
"""

import textwrap

from amaranth.hdl import Module, Mux, Shape, Signal, signed
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .walk import AddressWalk


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
    #: ``max(lengths) * N * D``, the buffer words of the request's time-major layout, is above
    #: ``capacity``; lengths and data words were consumed.
    CAPACITY = 4


class _Transposer(wiring.Component):
    """What both directions share: command and lengths intake, refusal, the buffer's walk and
    the output stage.

    A subclass provides the two data phases: ``_store(m, r)`` takes ``i`` into the buffer
    while ``i.valid``, ``_emit(m, r)`` offers words to the output stage on ``r.offer_*``
    while ``r.output_advance``. Each returns the condition that its current word is the
    request's last. The walk ``r.walk`` stands at the first word when a phase begins.
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
        # A refused request can still carry lengths up to the field's limit; its walks and word
        # counts must not wrap, or the block would consume the wrong number of words.
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
        """Words the buffer holds: the largest ``max(lengths) * N * D`` a request may have."""
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

        # A walk starts at sequence 0; the lengths RAM is transparent, so that a walk starting
        # with the last length sees it.
        m.d.comb += r.length_read.addr.eq(Mux(r.walk.start, 0, r.next_sequence))

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
                        r.rows.eq(0), r.steps.eq(0), r.step_stride.eq(0), r.bad_length.eq(0),
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
                            r.length_write.addr.eq(r.n),
                            r.length_write.data.eq(length),
                            r.length_write.en.eq(1),
                        ]
                        m.d.sync += [
                            r.rows.eq(r.rows + length),
                            r.steps.eq(Mux(length > r.steps, length, r.steps)),
                            r.step_stride.eq(r.step_stride + r.features),
                            r.bad_length.eq(r.bad_length | (length == 0) |
                                            (length > self._max_steps)),
                        ]
                        with m.If(r.n == r.batch - 1):
                            m.d.comb += r.walk.start.eq(1)
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
                        m.d.comb += r.walk.start.eq(1)
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

    def _walk_batch_major(self, m, r, advance):
        """Step the walk through the sequences batch-major on ``advance``: ``(outer, middle,
        inner)`` is ``(n, t, d)``. Returns whether it stands at the request's last word."""
        walk, last = r.walk, r.walk.last
        m.d.comb += [
            walk.step.eq(advance),
            *r.layout.batch_major(walk, r.batch, r.length, r.features),
            r.next_sequence.eq(walk.outer + (advance & last.inner & last.middle & ~last.outer)),
        ]
        return last.outer & last.middle & last.inner

    def _walk_time_major(self, m, r, advance):
        """Step the walk through the buffer in address order on ``advance``: ``(outer, middle,
        inner)`` is ``(t, n, d)``. Returns whether it stands at the request's last word."""
        walk, last = r.walk, r.walk.last
        following = Mux(last.middle, 0, walk.middle + 1)
        m.d.comb += [
            walk.step.eq(advance),
            *r.layout.time_major(walk, r.steps, r.batch, r.features),
            r.next_sequence.eq(Mux(advance & last.inner, following, walk.middle)),
        ]
        return last.outer & last.middle & last.inner

    def _write(self, m, r):
        """Write the input word at the walk's address. A refused request's walk can pass the
        buffer's last address: it writes nothing."""
        m.d.comb += [
            r.buffer_write.addr.eq(r.walk.address),
            r.buffer_write.data.eq(self.i.payload),
            r.buffer_write.en.eq(self.i.valid & ~r.refused),
        ]


class _Request:
    """The registers and memories of one request (a namespace built inside ``elaborate``)."""

    def __init__(self, m, block):
        largest_rows = block._max_batch * block._largest_length
        self.batch = Signal(block.command.payload.batch.shape())
        self.features = Signal(block.command.payload.features.shape())
        #: Running ``sum(lengths)``: the rows ``S`` of ``D`` words each, batch-major.
        self.rows = Signal(range(largest_rows + 1))
        #: Running ``max(lengths)``: the padded steps ``T``.
        self.steps = Signal(block._length_shape)
        #: Running ``D`` per length: ``N * D``, the words of one step in the buffer.
        self.step_stride = Signal(range(block._max_batch * block._max_features + 1))
        #: The buffer words the request needs: ``T * N * D``.
        self.words = self.steps * self.step_stride
        self.bad_length = Signal()
        self.refusal = Signal(Refusal)
        self.refused = self.refusal != Refusal.NONE
        self.layout = SequenceLayout(self.features, self.step_stride)

        #: The sequence whose length the lengths phase takes.
        self.n = Signal(range(block._max_batch))
        #: The rows pack has stored; every phase leaves it at 0.
        self.row = Signal(range(largest_rows))

        m.submodules.buffer = buffer = Memory(shape=signed(block._width),
                                              depth=block._capacity, init=[])
        self.buffer_write = buffer.write_port()
        self.buffer_read = buffer.read_port()
        m.submodules.lengths = lengths = Memory(shape=block._length_shape,
                                                depth=block._max_batch, init=[])
        self.length_write = lengths.write_port()
        self.length_read = lengths.read_port(transparent_for=(self.length_write,))
        #: The length of the walk's sequence, read a cycle ahead at the one it is about to
        #: reach (``next_sequence``), so that it is there whatever the stalls.
        self.length = self.length_read.data
        self.next_sequence = Signal(range(block._max_batch))

        # A walk counts sequences, steps (up to a refused request's longest) and features.
        counts = max(block._max_batch, block._largest_length, block._max_features)
        m.submodules.walk = self.walk = AddressWalk(range(counts), len(self.buffer_write.addr))

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
        Buffer words, the largest ``T*N*D`` a request may have (its time-major layout,
        padding included); by default ``max_batch * max_steps * max_features``, which
        refuses no request within the maxima for its size.

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

    Resources: a buffer RAM of ``capacity`` words of ``width`` bits; a lengths RAM of
    ``max_batch`` lengths; one :class:`~.walk.AddressWalk` (three counters, two adders of
    buffer-address width) for both phases; one multiplier of ``T`` by ``N*D`` for the capacity
    check; the running ``S``, ``T`` and ``N*D`` of the lengths and a row counter.
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
        walk = r.walk
        self._walk_batch_major(m, r, self.i.valid)
        # The rows are counted apart from the walk: a refused request's length of 0 would hold
        # the walk at its sequence. Until the last row the walk is not done, so its feature
        # counter counts every word.
        final = walk.last.inner & (r.row == r.rows - 1)
        with m.If(self.i.valid & walk.last.inner):
            m.d.sync += r.row.eq(Mux(final, 0, r.row + 1))
        self._write(m, r)
        return final

    def _emit(self, m, r):
        walk = r.walk
        final = self._walk_time_major(m, r, r.output_advance)
        m.d.comb += [
            r.offer_address.eq(walk.address),
            r.offer_inside.eq(walk.outer < r.length),
            r.offer_first.eq((walk.middle == 0) & (walk.inner == 0)),
            r.offer_last.eq(walk.last.middle & walk.last.inner),
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
        final = self._walk_time_major(m, r, self.i.valid)
        # Padding is written too: it lies inside the request's words and is never read back.
        self._write(m, r)
        return final

    def _emit(self, m, r):
        walk = r.walk
        final = self._walk_batch_major(m, r, r.output_advance)
        m.d.comb += [
            r.offer_address.eq(walk.address),
            r.offer_inside.eq(1),
            r.offer_first.eq((walk.middle == 0) & (walk.inner == 0)),
            r.offer_last.eq(walk.last.middle & walk.last.inner),
        ]
        return final
