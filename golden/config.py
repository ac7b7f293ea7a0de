"""The configuration of a build: maxima, lanes and numerics, frozen.

One :class:`BuildConfig` describes what a bitstream (or a simulation of one) can run: the
largest sizes, how many multiply-accumulate lanes it has, and its number formats. The
gateware is sized from it; the device reports it so that the host can refuse a model that
does not fit, before anything is sent.
"""

from dataclasses import dataclass, field

from .formats import DEFAULT_FORMATS, NumberFormats


__all__ = ["BuildConfig"]


@dataclass(frozen=True)
class BuildConfig:
    """Maxima, parallelism and numerics of one accelerator build.

    Parameters
    ----------
    lanes : int
        Parallel multiply-accumulate lanes of the GRU engine.
    lane_width : int
        Terms each lane multiplies per cycle (1, 2 or 4): ``lanes * lane_width`` multipliers
        in all. A row's input and recurrent terms are each padded to a multiple of it.
    max_input_size, max_hidden_size, max_batch, max_steps : int
        Largest ``D``, ``H``, ``N`` and ``T`` a run may have. A second layer of a
        bidirectional GRU takes ``2 * H`` inputs, so ``max_input_size`` bounds that too.
    max_layers : int
        Layers whose weights fit in the engine's banks at once.
    bidirectional : bool
        Whether every layer has a bank for the reverse direction as well.
    formats : NumberFormats
    glu : bool
        Whether the build has a GLU unit (the GLU command and RUN's GLU flag). Small chips
        leave it out; INFO says so, and the device answers ``BEYOND_MAXIMA`` to either.
    """

    lanes: int = 8
    lane_width: int = 1
    max_input_size: int = 64
    max_hidden_size: int = 64
    max_batch: int = 8
    max_steps: int = 128
    max_layers: int = 2
    bidirectional: bool = True
    formats: NumberFormats = field(default_factory=lambda: DEFAULT_FORMATS)
    glu: bool = True

    def __post_init__(self):
        for name in ("lanes", "max_input_size", "max_hidden_size", "max_batch", "max_steps",
                     "max_layers"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")
        if isinstance(self.lane_width, bool) or self.lane_width not in (1, 2, 4):
            raise ValueError(f"lane_width must be 1, 2 or 4, not {self.lane_width!r}")
        if not isinstance(self.formats, NumberFormats):
            raise TypeError(f"formats must be a NumberFormats, not {type(self.formats).__name__}")

    @property
    def directions(self):
        return 2 if self.bidirectional else 1

    @property
    def weight_sets(self):
        """Banks of weights: one per layer and direction."""
        return self.max_layers * self.directions

    @property
    def groups(self):
        """Passes per gate at the largest hidden size: each lane owns one row of a group."""
        return -(-self.max_hidden_size // self.lanes)

    @property
    def max_terms(self):
        """Terms of the longest dot product, ``max_input_size + max_hidden_size``."""
        return self.max_input_size + self.max_hidden_size

    @property
    def lane_width_log2(self):
        """``log2(lane_width)``: the low address bits that pick a weight within a bank word."""
        return self.lane_width.bit_length() - 1

    def padded_terms(self, size):
        """``size`` terms rounded up to a multiple of ``lane_width``: the weight words a row
        takes for them, and ``lane_width`` times the cycles a lane takes over them."""
        return -(-size // self.lane_width) * self.lane_width

    @property
    def max_term_words(self):
        """Weight words of the longest row in a lane's bank: its input and its recurrent
        terms each padded to a multiple of ``lane_width``."""
        return self.padded_terms(self.max_input_size) + self.padded_terms(self.max_hidden_size)

    @property
    def accumulator(self):
        """Accumulator format: never overflows for the longest dot product and its biases."""
        return self.formats.accumulator(self.max_terms)

    @property
    def weight_set_words(self):
        """Words of one weight set in each lane's bank: 3 gates x ``groups`` passes of
        ``max_term_words`` weights."""
        return 3 * self.groups * self.max_term_words

    @property
    def bias_set_words(self):
        """Words of one weight set in each lane's bias bank: two biases per pass."""
        return 3 * self.groups * 2

    def weight_set(self, layer, direction):
        """Bank index of ``layer``'s weights in ``direction`` (0 forward, 1 reverse)."""
        if not 0 <= layer < self.max_layers or not 0 <= direction < self.directions:
            raise ValueError(f"layer {layer}, direction {direction} is beyond this build's "
                             f"{self.max_layers} layers and {self.directions} direction(s)")
        return layer * self.directions + direction

    def memory_words(self):
        """On-chip words the GRU engine keeps, by purpose."""
        return {
            "weights": self.lanes * self.weight_sets * self.weight_set_words,
            "biases": self.lanes * self.weight_sets * self.bias_set_words,
            "hidden state": 2 * self.max_batch * self.max_hidden_size,
            "gate buffers": 3 * self.max_hidden_size,
            "input buffer": 2 * self.max_input_size,
            "activation table": self.formats.table.segments + 1,
        }
