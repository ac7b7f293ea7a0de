"""The protocol's layouts for the gateware, made from golden's table.

:mod:`gatework.golden.protocol` declares every fixed layout of the protocol once, as a
:class:`~gatework.golden.protocol.Header` of named little-endian fields. :func:`layout` turns
one into an :class:`amaranth.lib.data.StructLayout` with the same fields at the same bits, so
that the gateware reads a field by its name (``run.flags.final_only``, ``load.hidden_size``)
from the bytes as they arrived, and a flags field's reserved bits are one named field. The
tests check the two views field by field.
"""

from amaranth.hdl import unsigned
from amaranth.lib import data

from ..golden.protocol import Header


__all__ = ["layout", "flags_layout", "RESERVED"]


#: The member of a flags layout holding the bits its ``IntFlag`` does not name.
RESERVED = "reserved"


def flags_layout(flags, width):
    """A :class:`~amaranth.lib.data.StructLayout` of ``width`` bits, one member of one bit per
    member of the :class:`enum.IntFlag` ``flags`` (its name in lower case), bit 0 first, and
    :data:`RESERVED` for the bits above them."""
    members = {flag.name.lower(): 1 for flag in flags}
    if width > len(members):
        members[RESERVED] = unsigned(width - len(members))
    return data.StructLayout(members)


def layout(header):
    """The :class:`~amaranth.lib.data.StructLayout` of a
    :class:`~gatework.golden.protocol.Header`: its fields in wire order from bit 0, each
    little-endian as it arrives byte by byte, a flags field as a :func:`flags_layout`."""
    if not isinstance(header, Header):
        raise TypeError(f"layout() takes a golden protocol Header, not {header!r}")
    members = {}
    for field in header.fields:
        width = 8 * field.size
        members[field.name] = (unsigned(width) if field.flags is None else
                               flags_layout(field.flags, width))
    return data.StructLayout(members)
