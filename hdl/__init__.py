"""Amaranth gateware of gatework.

Every block is a ``wiring.Component`` with ``lib.stream`` interfaces whose numerics come from
:mod:`gatework.golden`. :data:`BLOCKS` names the blocks that ``gatework verilog`` exports,
with their constructor's default arguments.
"""

from dataclasses import dataclass, field
import importlib


__all__ = ["Block", "BLOCKS"]


@dataclass(frozen=True)
class Block:
    """A block that can be built by name: ``path`` is ``"module:Class"``."""

    path: str
    summary: str
    defaults: dict = field(default_factory=dict)

    def build(self, **arguments):
        module, name = self.path.split(":")
        # A default of None means "the constructor's own default".
        merged = {key: value for key, value in {**self.defaults, **arguments}.items()
                  if value is not None}
        return getattr(importlib.import_module(module), name)(**merged)


BLOCKS = {
    "rescale": Block("gatework.hdl.arith:Rescale",
                     "narrow wide values to a fixed-point format (round half up, saturate)",
                     {"input_width": 40, "from_fraction": 25, "fmt": "q4.12"}),
    "mac": Block("gatework.hdl.arith:MultiplyAccumulate",
                 "exact multiply-accumulate of data x weight products",
                 {"data_format": "q4.12", "weight_format": "q3.13", "terms": 130}),
    "activation": Block("gatework.hdl.activation:Activation",
                        "sigmoid and tanh from the interpolated table ROM, pipelined",
                        {"formats": None}),
    "glu": Block("gatework.hdl.glu:GLUUnit", "a * sigmoid(b) on vectors, one word per cycle",
                 {"formats": None, "max_channels": 64}),
    "gru": Block("gatework.hdl.gru:GRUEngine",
                 "GRU layer engine: lanes of multiply-accumulate, weight banks, both forms",
                 {"config": None}),
    "link_rx": Block("gatework.hdl.link:FrameReceiver",
                     "COBS frames with CRC-16 in; only good frames out, errors reported",
                     {"max_payload": 1024}),
    "link_tx": Block("gatework.hdl.link:FrameTransmitter",
                     "response header and payload in; the CRC'd COBS frame out", {}),
    "uart_rx": Block("gatework.hdl.uart:UARTReceiver",
                     "8N1 UART receiver (divisor = clock / baud)", {"divisor": 104}),
    "uart_tx": Block("gatework.hdl.uart:UARTTransmitter",
                     "8N1 UART transmitter (divisor = clock / baud)", {"divisor": 104}),
    "pack": Block("gatework.hdl.transposer:SequencePack",
                  "ragged batch-major sequences -> time-major zero-padded steps",
                  {"width": 16, "max_batch": 8, "max_steps": 32, "max_features": 16}),
    "unpack": Block("gatework.hdl.transposer:SequenceUnpack",
                    "time-major padded steps -> ragged batch-major sequences",
                    {"width": 16, "max_batch": 8, "max_steps": 32, "max_features": 16}),
}
