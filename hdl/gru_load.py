"""The GRU engine's load port: words for the weight banks, bias banks and state memory."""

from amaranth.hdl import Cat, Module, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.memory import WritePort
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from .fanout import replicas
from .gru_layouts import LANES_PER_COPY, LoadRegion, load_layout


__all__ = ["LoadDecoder", "load_writes_signature"]


def load_writes_signature(config):
    """The writes of the lanes' banks that :class:`LoadDecoder` drives, seen from it.

    ``weight`` enables, for lane ``l``, granule ``k`` of its weight bank (bit
    ``l * lane_width + k``), ``bias`` its bias bank (bit ``l``); ``address`` and ``data`` are
    copies of the word's address and data, one per eight lanes (:mod:`.fanout`), copy ``c``
    for the lanes :func:`.fanout.replica_of` gives it. A weight bank's address is the
    weights' read address, which follows the load words between runs.
    """
    layout = load_layout(config)
    copies = -(-config.lanes // LANES_PER_COPY)
    return wiring.Signature({
        "weight": Out(config.lanes * config.lane_width),
        "bias": Out(config.lanes),
        "address": Out(layout["address"].shape).array(copies),
        "data": Out(layout["data"].shape).array(copies),
    })


class LoadDecoder(wiring.Component):
    """Take load words and write each a cycle later, from registers.

    The lanes' write enables are decoded into a register per lane, and the address and data
    come from copies per group of lanes, so no decoder or shared register sits between the
    load port and the lanes' RAMs.

    Parameters
    ----------
    config : BuildConfig

    Members
    -------
    load : In(stream.Signature(load_layout(config)))
        The engine's load words; ready while ``enable`` is high.
    enable : In(1)
        Between runs: load words are taken.
    writes : Out(load_writes_signature(config))
        The lanes' weight and bias bank writes of the word taken a cycle before.
    state : Out(WritePort.Signature(...).flip())
        The state memory's write of the word taken a cycle before.
    refused : Out(1)
        The word taken this cycle lies beyond the build's memories: it is not written.

    Latency: a word is written in the cycle after the one it is taken in. Throughput: a word
    per cycle.
    """

    def __init__(self, config):
        self._config = config
        super().__init__({
            "load": In(stream.Signature(load_layout(config))),
            "enable": In(1),
            "writes": Out(load_writes_signature(config)),
            "state": Out(WritePort.Signature(
                addr_width=ceil_log2(2 * config.max_batch * config.max_hidden_size),
                shape=signed(config.formats.data.total_bits)).flip()),
            "refused": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        config = self._config
        lanes = config.lanes
        load = self.load.payload
        m.d.comb += self.load.ready.eq(self.enable)
        in_range = Signal()
        with m.Switch(load.region):
            with m.Case(LoadRegion.WEIGHT):
                m.d.comb += in_range.eq(
                    (load.address < config.weight_sets * config.weight_set_words) &
                    (load.lane < lanes))
            with m.Case(LoadRegion.BIAS):
                m.d.comb += in_range.eq(
                    (load.address < config.weight_sets * config.bias_set_words) &
                    (load.lane < lanes))
            with m.Case(LoadRegion.STATE):
                m.d.comb += in_range.eq(load.address < config.max_batch *
                                        config.max_hidden_size)
        write = self.load.valid & self.load.ready & in_range
        # A weight word goes to one granule of its lane's bank: the low bits of its address.
        width, shift = config.lane_width, config.lane_width_log2
        m.d.sync += [
            self.writes.weight.eq(Cat((write & (load.region == LoadRegion.WEIGHT) &
                                       (load.lane == lane) & (load.address[:shift] == k))
                                      for lane in range(lanes) for k in range(width))),
            self.writes.bias.eq(Cat((write & (load.region == LoadRegion.BIAS) &
                                     (load.lane == lane)) for lane in range(lanes))),
            self.state.en.eq(write & (load.region == LoadRegion.STATE)),
        ]
        copies = len(self.writes.address)
        load_address = replicas(m, load.address, copies, name="load_address")
        load_data = replicas(m, load.data, copies, name="load_data")
        m.d.comb += [
            *(port.eq(copy) for port, copy in zip(self.writes.address, load_address)),
            *(port.eq(copy) for port, copy in zip(self.writes.data, load_data)),
            self.state.addr.eq(load_address[0]),
            self.state.data.eq(load_data[0]),
            self.refused.eq(self.load.valid & self.load.ready & ~in_range),
        ]
        return m
