"""Memories shaped for the chips: SPRAMs on an iCE40UP, banked reads for large buffers.

The iCE40UP5K has 30 block RAMs of 4 Kbit and four 256 Kbit single-port RAMs
(``SB_SPRAM256KA``, 16384 x 16). Yosys does not infer the SPRAMs from a memory, so a buffer
that should live there is a :class:`SinglePortMemory`: on an iCE40UP platform it instantiates
as many SPRAMs as its depth needs, anywhere else (simulation, ECP5) it is an Amaranth memory
with one read and one write port, and behaves the same.

A buffer of many block RAMs lies all over the chip, and a RAM's output followed by a long
route and a wide multiplexer in one cycle sets the clock. :class:`BankedMemory` reads such a
buffer in two cycles: each bank (one block RAM) into a register beside it, then the bank.

Neither an iCE40's nor an ECP5's block RAM defines the word a read gets when the same cycle
writes the same address, so for a memory whose read port is not transparent Yosys builds
bypass logic around every RAM: on an iCE40 about 40 flip-flops and 28 LUTs a port. Most of
the gateware's memories never use such a word (a layer reads one bank and writes the other;
a read port runs on while its data is ignored). Those are built with :data:`NO_RW_CHECK`,
read through :func:`read_data`, and their netlists are marked by
:func:`gatework.boards.synthesis.mark_read_write_collisions`, which leaves the word to the
RAM. In simulation :func:`read_data` returns the complement of a word read in such a cycle,
so a design that uses one fails the bit-exact tests instead of failing on a chip.
"""

from amaranth.hdl import (Array, Cat, ClockSignal, Const, Instance, Module, Mux, Signal, Value,
                          unsigned)
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out


__all__ = ["BankedMemory", "NO_RW_CHECK", "SinglePortMemory", "SPRAM_DEPTH", "held_read",
           "read_data", "uses_spram"]


SPRAM_DEPTH = 16384
_SPRAM_WIDTH = 16


#: Attributes of a memory none of whose reads uses a word its address was written with in
#: the same cycle (Yosys' name for the same promise). Read its ports with :func:`read_data`.
NO_RW_CHECK = {"no_rw_check": 1}


def read_data(m, read, write, *, platform):
    """The word ``read`` (a synchronous read port) gives the design, for a memory built with
    :data:`NO_RW_CHECK` and written by ``write``.

    For a chip (a ``platform``), the port's own data. Without one (simulation, or Verilog for
    a simulator) the port's data, complemented when the cycle that read it also wrote its
    address: a design that used that word would fail its bit-exact tests, where on a chip the
    word is whatever the RAM gives.
    """
    if platform is not None:
        return read.data
    collided = Signal()
    with m.If(read.en):
        m.d.sync += collided.eq(write.en.any() & (write.addr == read.addr))
    return Mux(collided, ~read.data, read.data)


def held_read(m, enable, data, *, registered):
    """``data``, a synchronous read port's (or :func:`read_data`'s), for a port read with
    ``enable``: as it is, held by the port until the next read; or, ``registered``, through a
    register taken at each ``enable``, so that a read takes two cycles and no RAM's output
    meets logic before a flip-flop."""
    if not registered:
        return data
    registered = Signal.like(data)
    with m.If(enable):
        m.d.sync += registered.eq(data)
    return registered


def uses_spram(platform):
    """Whether ``platform`` is an iCE40UP part, which has SPRAMs."""
    return str(getattr(platform, "device", "")).startswith("iCE40UP")


class SinglePortMemory(wiring.Component):
    """``depth`` words of ``shape``; each cycle either one write or one read.

    Parameters
    ----------
    shape : int or Shape
        Word shape, at most 16 bits wide.
    depth : int

    Members
    -------
    addr : In(range(depth))
    write : In(1)
        Write ``w_data`` at ``addr`` this cycle (no read happens).
    w_data : In(shape)
    read : In(1)
        Read ``addr``; the word is on ``r_data`` the next cycle and stays there until the next
        read or write (on an SPRAM a write may change ``r_data``: do not rely on it across
        one).
    r_data : Out(shape)

    Resources: on an iCE40UP, ``ceil(depth / 16384)`` SPRAMs and a little logic to pick the
    bank; elsewhere a memory of ``depth`` words.
    """

    def __init__(self, shape, depth):
        self._shape = shape
        self._depth = depth
        super().__init__({
            "addr": In(range(max(depth, 2))),
            "write": In(1),
            "w_data": In(shape),
            "read": In(1),
            "r_data": Out(shape),
        })
        if Value.cast(self.w_data).shape().width > _SPRAM_WIDTH:
            raise ValueError(f"a SinglePortMemory word is at most {_SPRAM_WIDTH} bits wide")

    @property
    def depth(self):
        return self._depth

    def elaborate(self, platform):
        m = Module()
        width = Value.cast(self.w_data).shape().width
        if not uses_spram(platform):
            m.submodules.memory = memory = Memory(shape=unsigned(width), depth=self._depth,
                                                  init=[])
            read, write = memory.read_port(), memory.write_port()
            m.d.comb += [read.addr.eq(self.addr), read.en.eq(self.read & ~self.write),
                         write.addr.eq(self.addr), write.data.eq(self.w_data),
                         write.en.eq(self.write),
                         self.r_data.eq(read.data)]
            return m

        banks = -(-self._depth // SPRAM_DEPTH)
        read_bank = Signal(range(max(banks, 2)))
        outputs = []
        low = self.addr[:14]
        select = self.addr[14:] if banks > 1 else 0
        for index in range(banks):
            output = Signal(_SPRAM_WIDTH, name=f"spram_{index}_data")
            chosen = Signal(name=f"spram_{index}_chosen")
            m.d.comb += chosen.eq(select == index)
            m.submodules[f"spram_{index}"] = Instance(
                "SB_SPRAM256KA",
                i_ADDRESS=low, i_DATAIN=Cat(self.w_data, Const(0, _SPRAM_WIDTH - width)),
                i_MASKWREN=0b1111, i_WREN=self.write & chosen,
                i_CHIPSELECT=(self.write | self.read) & chosen,
                i_CLOCK=ClockSignal("sync"),
                i_STANDBY=0, i_SLEEP=0, i_POWEROFF=1,
                o_DATAOUT=output)
            outputs.append(output)
        with m.If(self.read & ~self.write):
            m.d.sync += read_bank.eq(select)
        data = outputs[0]
        for index, output in enumerate(outputs[1:], start=1):
            data = Mux(read_bank == index, output, data)
        m.d.comb += self.r_data.eq(data[:width])
        return m


class BankedMemory(wiring.Component):
    """``depth`` words of ``shape`` in banks of ``bank_depth`` words, read in two cycles.

    Parameters
    ----------
    shape : int or Shape
    depth : int
    bank_depth : int
        A power of two: words per bank, one block RAM's worth (2048 bytes on an ECP5).

    Members
    -------
    w_addr, w_data, w_en : In
        Write ``w_data`` at ``w_addr`` when ``w_en`` is high. With ``register_writes`` the
        write reaches its bank a cycle later, from registers (the bank's write enable
        decoded into a flip-flop beside it), so a read may take the word from the cycle
        after next on; a read in the cycle after the write is undefined (see
        :func:`read_data`). Without, a read may take it from the next cycle on.
    r_addr, r_en : In
        The read pipeline moves only in cycles with ``r_en`` high: the word at the ``r_addr``
        of such a cycle is on ``r_data`` after the next such cycle, and held meanwhile. A read
        of a word written in the same cycle is undefined (see :func:`read_data`).
    r_data : Out(shape)
        The chosen bank's register: no RAM's output meets logic before a flip-flop.

    Resources: ``ceil(depth / bank_depth)`` memories, a register of ``shape`` beside each, a
    multiplexer over the registers; with ``register_writes`` a write enable flip-flop beside
    each and the write's address and data registers.
    """

    def __init__(self, shape, depth, bank_depth=2048, *, register_writes=True):
        if bank_depth < 1 or bank_depth & (bank_depth - 1):
            raise ValueError(f"bank_depth must be a power of two, not {bank_depth!r}")
        self._depth = depth
        self._bank_depth = min(depth, bank_depth)
        self._register_writes = register_writes
        super().__init__({
            "w_addr": In(range(max(depth, 2))),
            "w_data": In(shape),
            "w_en": In(1),
            "r_addr": In(range(max(depth, 2))),
            "r_en": In(1),
            "r_data": Out(shape),
        })

    def elaborate(self, platform):
        m = Module()
        bank_depth = self._bank_depth
        count = -(-self._depth // bank_depth)
        low_bits = max(1, (bank_depth - 1).bit_length())
        shape = self.r_data.shape()

        def bank_of(address):
            return address[low_bits:] if count > 1 else 0

        chosen = Signal(range(count))           # the bank of the RAMs' outputs
        chosen_next = Signal(range(count))      # ... and of the registers'
        registers = Array(Signal(shape, name=f"bank_{index}_data") for index in range(count))
        with m.If(self.r_en):
            m.d.sync += [chosen.eq(bank_of(self.r_addr)), chosen_next.eq(chosen)]
        # Writes a cycle late: no decoder and no route across the chip from the writer's
        # logic to a RAM's write enable in one cycle.
        if self._register_writes:
            w_addr, w_data = Signal.like(self.w_addr), Signal.like(self.w_data)
            m.d.sync += [w_addr.eq(self.w_addr), w_data.eq(self.w_data)]
        else:
            w_addr, w_data = self.w_addr, self.w_data
        for index in range(count):
            m.submodules[f"bank_{index}"] = bank = Memory(shape=shape, depth=bank_depth,
                                                          init=[], attrs=NO_RW_CHECK)
            write, read = bank.write_port(), bank.read_port()
            word = read_data(m, read, write, platform=platform)
            write_enable = Signal(name=f"bank_{index}_write")
            selected = self.w_en & (bank_of(self.w_addr) == index)
            if self._register_writes:
                m.d.sync += write_enable.eq(selected)
            else:
                m.d.comb += write_enable.eq(selected)
            m.d.comb += [
                write.addr.eq(w_addr[:low_bits]),
                write.data.eq(w_data),
                write.en.eq(write_enable),
                read.addr.eq(self.r_addr[:low_bits]),
                read.en.eq(self.r_en),
            ]
            with m.If(self.r_en):
                m.d.sync += registers[index].eq(word)
        m.d.comb += self.r_data.eq(registers[chosen_next])
        return m
