"""An address walk: three nested counters and the memory address they point at.

The accelerator top lays out sequences in memory with strides (a step's words, a sequence's
words) and walks them in another order than they are stored: ragged batch-major inputs into
a time-major buffer, the buffer back out batch-major, initial and final states row by row.
Each of those walks is an :class:`AddressWalk`, which keeps the address by adding strides as
its counters move, so that no walk needs a multiplier. A :class:`WalkReader` is one shared by
several users in turn (see :func:`~.share.share`), which also keeps track of the words its
reads have in flight.
"""

from amaranth.hdl import Module, Signal, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out


__all__ = ["AddressWalk", "WalkReader", "WalkUser", "last_of"]


_LAST = data.StructLayout({"outer": 1, "middle": 1, "inner": 1})


def _controls(address_bits):
    """The members by which a user drives an :class:`AddressWalk`."""
    return wiring.SignatureMembers({
        "start": Out(1),
        "start_done": Out(1),
        "base": Out(unsigned(address_bits)),
        "step": Out(1),
        "last": Out(_LAST),
        "strides": Out(data.StructLayout({"outer": unsigned(address_bits),
                                          "middle": unsigned(address_bits)})),
    })


def last_of(walk, outer, middle, inner):
    """The assignments (to ``m.d.comb``) that make ``outer``, ``middle`` and ``inner`` the
    limits of ``walk`` (an :class:`AddressWalk`, or a :class:`WalkUser`'s port) while they are
    in effect.

    ``counter + 1 == limit`` rather than ``counter == limit - 1``: the sum is the counter's next
    value anyway, and the limits (some of them read from a table) meet no adder. A limit from
    the wire is compared at its full width, so that one beyond the counters never matches
    early.
    """
    return [walk.last.outer.eq(walk.outer + 1 == outer),
            walk.last.middle.eq(walk.middle + 1 == middle),
            walk.last.inner.eq(walk.inner + 1 == inner)]


class AddressWalk(wiring.Component):
    """Walk ``(outer, middle, inner)`` through nested ranges and keep their address.

    ``address = base + outer * strides.outer + middle * strides.middle + inner``, counted
    inner fastest. It is kept as the running addresses of the outer and the middle counter,
    each moved by adding its stride, so the limits and strides may change from walk to walk
    (and a middle limit from one outer index to the next: a ragged walk reads its limit from a
    table at ``outer``). Address arithmetic is modulo ``2**address_bits``: a stride of
    ``2**address_bits - s`` walks backward by ``s``.

    The user compares the counters with its limits (:meth:`last_of` gives the assignments),
    so that a block with several walks compares each with its own limits, in parallel, and
    only the results are multiplexed: no multiplexer of limits lies before the comparators.

    Parameters
    ----------
    count_shape : Shape-castable
        The counters' shape: enough for every limit a walk reaches.
    address_bits : int
    registered_address : bool
        Keep ``address`` in a register of its own, updated with the counters, instead of the
        sum of the middle counter's running address and ``inner``: no adder lies between it
        and the memories it addresses, for a high clock. A register and its adders more.

    Members
    -------
    start : In(1)
        Restart the walk at ``base`` in the next cycle, at ``(0, 0, 0)``; ``done`` becomes
        ``start_done`` (a walk with nothing to do starts done). Takes precedence over
        ``step``.
    start_done : In(1)
    base : In(unsigned(address_bits))
    step : In(1)
        Move to the next position; ignored once ``done``. A step from the last position sets
        ``done`` and leaves ``outer`` there (``middle`` and ``inner`` return to 0).
    last : In(StructLayout({"outer": 1, "middle": 1, "inner": 1}))
        Each counter is at the last value of its range (its limit, at least 1, minus one),
        sampled in the cycle of each ``step``: see :meth:`last_of`.
    strides : In(StructLayout({"outer", "middle"}))
        What the address moves by with the outer and the middle counter.
    outer, middle, inner : Out(count_shape)
        The current position.
    address : Out(unsigned(address_bits))
        The current position's address.
    done : Out(1)

    Resources: the three counters with their incrementers, two address registers with an
    adder each, and (``registered_address``) a third; the user's comparators.
    """

    def __init__(self, count_shape, address_bits, *, registered_address=False):
        self._registered_address = registered_address
        super().__init__({
            **_controls(address_bits).flip(),
            "outer": Out(count_shape),
            "middle": Out(count_shape),
            "inner": Out(count_shape),
            "address": Out(unsigned(address_bits)),
            "done": Out(1),
        })

    def last_of(self, outer, middle, inner):
        """The assignments (to ``m.d.comb``) that make ``outer``, ``middle`` and ``inner`` the
        walk's limits while they are in effect.

        ``counter + 1 == limit`` rather than ``counter == limit - 1``: the sum is the
        counter's next value anyway, and the limits (some of them read from a table) meet no
        adder. A limit from the wire is compared at its full width, so that one beyond the
        counters never matches early.
        """
        return [self.last.outer.eq(self.outer + 1 == outer),
                self.last.middle.eq(self.middle + 1 == middle),
                self.last.inner.eq(self.inner + 1 == inner)]

    def elaborate(self, platform):
        m = Module()
        outer_address = Signal.like(self.address)
        middle_address = Signal.like(self.address)
        if self._registered_address:
            def keep_address(value):
                return [self.address.eq(value)]
        else:
            m.d.comb += self.address.eq(middle_address + self.inner)

            def keep_address(value):
                return []

        last, strides = self.last, self.strides
        with m.If(self.start):
            m.d.sync += [self.outer.eq(0), self.middle.eq(0), self.inner.eq(0),
                         outer_address.eq(self.base), middle_address.eq(self.base),
                         self.done.eq(self.start_done), *keep_address(self.base)]
        with m.Elif(self.step & ~self.done):
            with m.If(last.inner):
                m.d.sync += self.inner.eq(0)
                with m.If(last.middle):
                    m.d.sync += self.middle.eq(0)
                    with m.If(last.outer):
                        m.d.sync += [self.done.eq(1), *keep_address(middle_address)]
                    with m.Else():
                        next_outer = outer_address + strides.outer
                        m.d.sync += [self.outer.eq(self.outer + 1),
                                     outer_address.eq(next_outer),
                                     middle_address.eq(next_outer),
                                     *keep_address(next_outer)]
                with m.Else():
                    next_middle = middle_address + strides.middle
                    m.d.sync += [self.middle.eq(self.middle + 1),
                                 middle_address.eq(next_middle),
                                 *keep_address(next_middle)]
            with m.Else():
                m.d.sync += [self.inner.eq(self.inner + 1), *keep_address(self.address + 1)]
        return m


class WalkUser(wiring.Signature):
    """A user's port of a :class:`WalkReader`: it drives the walk (``Out`` members) while it is
    the walk's user, and 0 otherwise.

    Members
    -------
    start, start_done, base, step, last, strides : Out
        As :class:`AddressWalk`'s.
    read : Out(1)
        Read a memory along the walk: the walk steps whenever the read ports move on.
    taken : Out(1)
        While ``read``: the consumer takes the word read (``valid``).
    tag : Out(tag_shape)
        While ``read``: what the word read at the current position is tagged with.
    outer, middle, inner, address, done : In
        As :class:`AddressWalk`'s.
    valid : In(1)
        The read ports' data is a word read along the walk.
    data_tag : In(tag_shape)
        The tag it was read with.
    pending : In(1)
        A word read is still in the ports' registers.

    A port has :meth:`last_of`, as an :class:`AddressWalk` has.
    """

    def __init__(self, count_shape, address_bits, tag_shape):
        super().__init__({
            **_controls(address_bits),
            "read": Out(1),
            "taken": Out(1),
            "tag": Out(tag_shape),
            "outer": In(count_shape),
            "middle": In(count_shape),
            "inner": In(count_shape),
            "address": In(unsigned(address_bits)),
            "done": In(1),
            "valid": In(1),
            "data_tag": In(tag_shape),
            "pending": In(1),
        })

    def create(self, *, path=None, src_loc_at=0):
        return _WalkPort(self, path=path, src_loc_at=1 + src_loc_at)


class _WalkPort(wiring.PureInterface):
    def last_of(self, outer, middle, inner):
        """The assignments that make these the walk's limits: see :func:`last_of`."""
        return last_of(self, outer, middle, inner)


class WalkReader(wiring.Component):
    """An :class:`AddressWalk` that its users take turns at, writing or reading along it.

    A writer steps the walk itself (``step``). A reader (``read``) lets the walk step as the
    read ports move on: ``advance`` enables the memories' read ports, and ``valid`` says their
    data is a word read along the walk, with its ``data_tag``; the next read is issued when
    the consumer takes it (``taken``) or none is there. Starting a walk drops the words in
    flight.

    Parameters
    ----------
    count_shape, address_bits : as :class:`AddressWalk`'s
    tag_shape : Shape-castable
        What a read carries beside its word (an address for its consumer, say).
    two_cycle_reads : bool
        The memories read take two cycles (a register after the RAM's): each word is in
        flight one cycle more. Also keeps the walk's address in a register of its own.

    Members
    -------
    (those of :class:`WalkUser`, flipped: see ``user_signature``)
    advance : Out(1)
        The read ports move on this cycle: their enable.

    Resources: an :class:`AddressWalk`, and one or two flip-flops and tags of reads in flight.
    """

    def __init__(self, count_shape, address_bits, tag_shape, *, two_cycle_reads=False):
        self._count_shape = count_shape
        self._address_bits = address_bits
        self._tag_shape = tag_shape
        self._two_cycle_reads = two_cycle_reads
        #: The :class:`WalkUser` signature of its users' ports.
        self.user_signature = WalkUser(count_shape, address_bits, tag_shape)
        super().__init__({
            **self.user_signature.flip().members,
            "advance": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.walk = walk = AddressWalk(self._count_shape, self._address_bits,
                                               registered_address=self._two_cycle_reads)
        m.d.comb += [
            walk.start.eq(self.start), walk.start_done.eq(self.start_done),
            walk.base.eq(self.base), walk.last.eq(self.last), walk.strides.eq(self.strides),
            self.outer.eq(walk.outer), self.middle.eq(walk.middle), self.inner.eq(walk.inner),
            self.address.eq(walk.address), self.done.eq(walk.done),
        ]
        # With two-cycle reads, the word read a cycle ago is still in the RAMs' registers.
        valid_1 = Signal()
        tag_1 = Signal.like(self.data_tag)
        m.d.comb += [self.pending.eq(self.valid | valid_1),
                     self.advance.eq(self.read & (~self.valid | self.taken))]
        with m.If(self.start):
            m.d.sync += [self.valid.eq(0), valid_1.eq(0)]
        with m.Elif(self.advance):
            if self._two_cycle_reads:
                m.d.sync += [self.valid.eq(valid_1), self.data_tag.eq(tag_1),
                             valid_1.eq(~walk.done), tag_1.eq(self.tag)]
            else:
                m.d.sync += [self.valid.eq(~walk.done), self.data_tag.eq(self.tag)]
        m.d.comb += walk.step.eq(self.step | (self.advance & ~walk.done))
        return m
