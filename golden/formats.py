"""The numerics of a build: which fixed-point format each kind of value uses.

The defaults were chosen by measurement (``gatework bench accuracy`` and ``gatework bench
digits``, results in ``docs/numerics.md``): 16-bit formats that keep a PyTorch-initialised GRU of
up to 64 inputs and 64 hidden units well within 5e-3 (max) and 1e-3 (mean) of float over 100
steps, and that leave trained weights room (the digits classifier's weights pass 2).
"""

from dataclasses import dataclass, field, replace

from .activations import ActivationTable
from .fixed import QFormat


__all__ = ["NumberFormats", "DEFAULT_FORMATS", "FORMAT_NAMES"]


#: The formats a build has, by their field names in :class:`NumberFormats`, in INFO's order.
FORMAT_NAMES = ("data", "weight", "bias", "preactivation", "activation")


def _format_field(default):
    return field(default_factory=lambda: QFormat.parse(default))


@dataclass(frozen=True)
class NumberFormats:
    """Fixed-point formats of every kind of value in a GRU or GLU.

    Parameters
    ----------
    data : QFormat
        Inputs ``x``, hidden states ``h`` and every output (a layer's output feeds the next).
    weight : QFormat
        Weight matrices.
    bias : QFormat
        Biases; aligned exactly onto the accumulator, so at most ``data.F + weight.F`` fraction
        bits.
    preactivation : QFormat
        Inputs of sigmoid and tanh (gate pre-activations), rescaled from the accumulator.
    activation : QFormat
        Outputs of sigmoid and tanh.
    table_range_log2, table_segments_log2 : int
        Shape of the interpolated activation table (see :class:`ActivationTable`).
    """

    data: QFormat = _format_field("q4.12")
    weight: QFormat = _format_field("q3.13")
    bias: QFormat = _format_field("q4.12")
    preactivation: QFormat = _format_field("q5.13")
    activation: QFormat = _format_field("q1.15")
    table_range_log2: int = 3
    table_segments_log2: int = 9

    def __post_init__(self):
        for name in FORMAT_NAMES:
            object.__setattr__(self, name, QFormat.parse(getattr(self, name)))
        if self.bias.fraction_bits > self.product_fraction_bits:
            raise ValueError(f"bias format {self.bias} has more fraction bits than the "
                             f"accumulator ({self.product_fraction_bits}); biases must align "
                             f"onto it exactly")
        # Building the table validates its shape against the pre-activation format.
        self.table  # noqa: B018

    @property
    def product_fraction_bits(self):
        """Fraction bits of a data x weight product, and of the accumulators."""
        return self.data.fraction_bits + self.weight.fraction_bits

    @property
    def table(self):
        return _table(self.preactivation, self.activation,
                      self.table_range_log2, self.table_segments_log2)

    def accumulator(self, terms):
        """Accumulator format for a dot product of ``terms`` data x weight products plus the
        two biases of a GRU gate."""
        return self.data.accumulator(self.weight, terms + 2)

    def replace(self, **changes):
        """Return a copy with some formats changed; names such as ``"q3.13"`` are accepted."""
        return replace(self, **changes)

    def describe(self):
        return (f"data {self.data}, weight {self.weight}, bias {self.bias}, "
                f"pre-activation {self.preactivation}, activation {self.activation}")


_tables = {}


def _table(*key):
    if key not in _tables:
        _tables[key] = ActivationTable(*key)
    return _tables[key]


DEFAULT_FORMATS = NumberFormats()
