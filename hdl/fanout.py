"""Copies of a register whose value reaches many cells across the chip.

A register that feeds every lane (the broadcast element, an enable, a shared address) has one
output and a route to each of its loads; at 64 lanes those routes, not the logic, set the
clock. :func:`replicas` builds several registers of the same value, one per group of loads,
each near its own group.

Yosys merges registers that compute the same value (``opt_merge``), and a ``keep`` on their
wires does not stop it: the flip-flop cells themselves must carry ``keep``. Copies are named
``<name>_replica_<k>``, and :data:`KEEP_REPLICAS` is the Yosys command, run after the netlist
is read, that marks the flip-flops driving such wires; board builds and
:func:`gatework.boards.synthesis.synthesize` run it.
"""

from amaranth.hdl import Signal


__all__ = ["KEEP_REPLICAS", "replicas", "replica_of"]


#: Yosys command: keep the flip-flops that drive a register copy made by :func:`replicas`.
KEEP_REPLICAS = "setattr -set keep 1 w:*_replica_* %ci1:+$dff[Q] t:$dff %i"


def replicas(m, value, count, *, name, enable=None, shape=None, init=0, reset_less=True):
    """``count`` registers that each take ``value`` at every clock edge (where ``enable``, if
    given, is high), named ``<name>_replica_<k>``; returns them in a list.

    ``shape`` defaults to ``value``'s. Simulation sees ``count`` identical registers; a chip,
    once :data:`KEEP_REPLICAS` has run, as many flip-flops.
    """
    if count < 1:
        raise ValueError(f"count must be at least 1, not {count!r}")
    copies = [Signal(value.shape() if shape is None else shape, name=f"{name}_replica_{k}",
                     init=init, reset_less=reset_less)
              for k in range(count)]
    for copy in copies:
        if enable is None:
            m.d.sync += copy.eq(value)
        else:
            with m.If(enable):
                m.d.sync += copy.eq(value)
    return copies


def replica_of(copies, index, total):
    """The copy that load ``index`` of ``total`` uses: loads are split into ``len(copies)``
    runs of consecutive indices, as equal as they can be."""
    return copies[index * len(copies) // total]
