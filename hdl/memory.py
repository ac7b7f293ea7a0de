"""A single-port RAM that is an iCE40UP's SPRAM on that chip and a plain memory elsewhere.

The iCE40UP5K has 30 block RAMs of 4 Kbit and four 256 Kbit single-port RAMs
(``SB_SPRAM256KA``, 16384 x 16). Yosys does not infer the SPRAMs from a memory, so a buffer
that should live there is a :class:`SinglePortMemory`: on an iCE40UP platform it instantiates
as many SPRAMs as its depth needs, anywhere else (simulation, ECP5) it is an Amaranth memory
with one read and one write port, and behaves the same.
"""

from amaranth.hdl import Cat, ClockSignal, Const, Instance, Module, Mux, Signal, Value, unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out


__all__ = ["SinglePortMemory", "SPRAM_DEPTH", "uses_spram"]


SPRAM_DEPTH = 16384
_SPRAM_WIDTH = 16


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
