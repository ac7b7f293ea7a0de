"""The gateware's protocol layouts against golden's table, field by field.

The host packs and unpacks a header's bytes with the :class:`~gatework.golden.protocol.Header`
itself (a ``struct.Struct``); the gateware reads the same bytes through
:func:`gatework.hdl.protocol.layout`. Both views of random bytes must give every field, and
every flag bit, the same value.
"""

import enum

import numpy as np
import pytest
from amaranth.lib import data

from gatework.golden import messages
from gatework.golden.protocol import (CRC, GLU_HEADER, HEADERS, INFO_LAYOUT, LOAD_HEADER,
                                      MAX_PAYLOAD, REQUEST_HEADER, RESPONSE_HEADER, RUN_HEADER,
                                      Field, Header, LoadFlag, RunFlag)
from gatework.hdl.link import REQUEST_HEADER_LAYOUT, RESPONSE_HEADER_LAYOUT
from gatework.hdl.protocol import RESERVED, flags_layout, layout


def _random_values(header, rng):
    return {field.name: int(rng.integers(0, header.maximum(field.name) + 1, dtype=np.uint64))
            for field in header.fields}


@pytest.mark.parametrize("name", sorted(HEADERS))
def test_both_views_of_a_header_agree_field_by_field(name, rng):
    header = HEADERS[name]
    gateware = layout(header)
    assert gateware.size == 8 * header.size
    for _ in range(200):
        values = _random_values(header, rng)
        wire = header.encode(**values)
        assert header.as_dict(wire) == values
        # The gateware sees the bytes in arrival order, the first at bit 0.
        view = data.Const(gateware, int.from_bytes(wire, "little"))
        for field in header.fields:
            value = values[field.name]
            assert gateware[field.name].offset == 8 * header.offset(field.name)
            if field.flags is None:
                assert view[field.name] == value, field.name
                continue
            flags = view[field.name]
            for flag in field.flags:
                assert flags[flag.name.lower()] == bool(value & flag), (field.name, flag)
            assert flags[RESERVED] == value >> len(field.flags), field.name


def test_the_link_and_the_host_frame_the_same_header_fields():
    assert REQUEST_HEADER_LAYOUT == layout(REQUEST_HEADER)
    assert RESPONSE_HEADER_LAYOUT == layout(RESPONSE_HEADER)
    assert messages.REQUEST_OVERHEAD == REQUEST_HEADER.size + CRC.size == 6
    assert messages.RESPONSE_OVERHEAD == RESPONSE_HEADER.size + CRC.size == 7
    assert MAX_PAYLOAD == messages.MAX_PAYLOAD == 0xFFFF


def test_the_flags_layouts_name_every_bit_of_the_flags_byte():
    load_flags = layout(LOAD_HEADER)["flags"].shape
    assert list(load_flags.members) == ["has_bias", "linear_before_reset", "has_h0", RESERVED]
    assert load_flags[RESERVED].offset == 3 and load_flags.size == 8
    run_flags = layout(RUN_HEADER)["flags"].shape
    assert [name for name, _ in run_flags] == [flag.name.lower() for flag in RunFlag] + [RESERVED]
    # A flag type that fills its field leaves no reserved bits.
    full = enum.IntFlag("Full", [(f"B{bit}", 1 << bit) for bit in range(8)])
    assert RESERVED not in dict(flags_layout(full, 8).members)


def test_the_table_is_what_the_protocol_document_says():
    # docs/protocol.md: the byte offsets a reader of the document checks against.
    assert [(f.name, LOAD_HEADER.offset(f.name)) for f in LOAD_HEADER.fields] == [
        ("layer", 0), ("direction", 1), ("input_size", 2), ("hidden_size", 4), ("flags", 6)]
    assert [(f.name, RUN_HEADER.offset(f.name)) for f in RUN_HEADER.fields] == [
        ("num_layers", 0), ("flags", 1), ("batch", 2), ("steps", 4), ("input_size", 6),
        ("hidden_size", 8)]
    assert GLU_HEADER.format == "<HH" and INFO_LAYOUT.size == 32
    assert (LoadFlag.HAS_BIAS, LoadFlag.LINEAR_BEFORE_RESET, LoadFlag.HAS_H0) == (1, 2, 4)


def test_a_value_that_does_not_fit_its_field_is_named():
    with pytest.raises(ValueError, match="RUN's batch 65536 does not fit its 16-bit field"):
        RUN_HEADER.encode(num_layers=1, flags=0, batch=65536, steps=1, input_size=1,
                          hidden_size=1)
    with pytest.raises(KeyError, match="count"):
        GLU_HEADER.encode(channels=1)


def test_a_flag_type_must_name_the_low_bits_in_order():
    gapped = enum.IntFlag("Gapped", [("A", 1), ("B", 4)])
    with pytest.raises(ValueError, match="Gapped must name the low bits"):
        Header("broken", Field("flags", 1, gapped))
    with pytest.raises(TypeError, match="golden protocol Header"):
        layout({"flags": 8})
