"""The boards gatework builds for, and what each one's named configuration is.

A :class:`Board` names an amaranth-boards platform, its chip's resources, the link's baud
rate and a default :class:`Build` (lanes, maxima, clock) chosen to fit that chip and meet
timing. :class:`BoardTop` is what goes on the chip: the PLL, the board's USB UART, a small
FIFO in front of the receiver, and :class:`~gatework.hdl.top.AcceleratorTop`.
"""

import dataclasses
from dataclasses import dataclass, field

from amaranth.hdl import ClockDomain, Elaboratable, Module
from amaranth.lib import io, wiring
from amaranth.lib.fifo import SyncFIFOBuffered

from ..golden.config import BuildConfig
from ..golden.protocol import DEFAULT_BAUD, MAX_PAYLOAD
from ..hdl.top import AcceleratorTop
from ..hdl.uart import UARTReceiver, UARTTransmitter
from .clocks import PLLClock, ecp5_pll, ice40_pll


__all__ = ["Build", "Board", "BOARDS", "BoardTop"]


@dataclass(frozen=True)
class Build:
    """What one bitstream holds: the engine's configuration, the receive buffer, the clock;
    and nextpnr's placement seed (``None``: nextpnr's default), which moves a large design's
    Fmax by several per cent from one seed to another."""
    config: BuildConfig
    max_payload: int
    clock_mhz: float
    seed: int = None

    def replace(self, **changes):
        """This build with some of the config's fields, ``max_payload``, ``clock_mhz`` or
        ``seed`` changed."""
        own = {name: changes.pop(name) for name in ("max_payload", "clock_mhz", "seed")
               if name in changes}
        config = dataclasses.replace(self.config, **changes) if changes else self.config
        return dataclasses.replace(self, config=config, **own)


@dataclass(frozen=True)
class Board:
    """A board: its platform, chip resources, link, and named default build."""
    name: str
    platform_name: str          # attribute of amaranth_boards.<module>
    module: str
    family: str                 # "ice40" or "ecp5"
    multipliers: int            # hard multipliers on the chip
    baud: int                   # the link's baud rate over the board's USB UART
    default: Build
    small: Build                # a quick build of the same design, for tests and CI
    build_options: dict = field(default_factory=dict)
    # A FIFO between the UART and the receiver keeps bytes that arrive while a frame is being
    # released. The host sends one request at a time, so none arrive then; on a full chip it
    # is left out.
    receive_fifo: bool = True
    # The top's register slices (see AcceleratorTop): for the clock, where logic cells allow.
    register_slices: bool = True

    def platform(self):
        import importlib
        module = importlib.import_module(f"amaranth_boards.{self.module}")
        return getattr(module, self.platform_name)()

    @property
    def oscillator_hz(self):
        """The board's own clock: 12 MHz on the iCEBreaker, 25 MHz on the ULX3S."""
        return {"ice40": 12e6, "ecp5": 25e6}[self.family]

    def clock_hz(self, clock_mhz):
        """The clock a build asking for ``clock_mhz`` gets (the PLL's nearest)."""
        settings = self.pll(clock_mhz)
        return round(self.oscillator_hz if settings is None else settings.output_hz)

    def uart_divisor(self, clock_mhz):
        """Clock cycles per bit of the link at ``clock_mhz``."""
        return round(self.clock_hz(clock_mhz) / self.baud)

    def pll(self, clock_mhz):
        """The PLL setting for ``clock_mhz``, or None to run from the oscillator itself."""
        if clock_mhz * 1e6 == self.oscillator_hz:
            return None
        search = {"ice40": ice40_pll, "ecp5": ecp5_pll}[self.family]
        return search(self.oscillator_hz, clock_mhz * 1e6)


BOARDS = {board.name: board for board in [
    Board(
        name="icebreaker", module="icebreaker", platform_name="ICEBreakerPlatform",
        family="ice40", multipliers=8, baud=DEFAULT_BAUD,
        # Two lanes (7 of the 8 DSPs: the element-wise stage and the activation take five)
        # fill the chip: 5182 of 5280 logic cells. The protocol top's control logic takes most
        # of it; one lane fits D = H = 8, T = 16 with a 1 KB buffer (5239). The top with its
        # commands as components reached 22.6 MHz at nextpnr's default seed (the transmit
        # ring's read address to the RUN intake's walk, 32 ns of its 44 in routing), 24.6 MHz
        # at seed 1, which the named build uses, and 24.1 at seed 2.
        default=Build(BuildConfig(lanes=2, max_input_size=4, max_hidden_size=4,
                                  max_batch=1, max_steps=8, max_layers=1,
                                  bidirectional=False, glu=False),
                      max_payload=256, clock_mhz=24, seed=1),
        small=Build(BuildConfig(lanes=1, max_input_size=4, max_hidden_size=4, max_batch=1,
                                max_steps=4, max_layers=1, bidirectional=False, glu=False),
                    max_payload=256, clock_mhz=12),
        build_options={"synth_opts": "-dsp"}, receive_fifo=False, register_slices=False),
    Board(
        name="ulx3s-85f", module="ulx3s", platform_name="ULX3S_85F_Platform",
        family="ecp5", multipliers=156, baud=DEFAULT_BAUD,
        # 25 MHz x 23 / 8 from the PLL: 64 lanes reached Fmax 83.4, 76.1, 78.7, 83.2 and 77.7
        # MHz asked for it in five builds of earlier designs (74.7 asked for 75: placement
        # moves Fmax by 10 %). The design with the top's commands as components reached 71.2
        # MHz at nextpnr's default seed (0.13 ns short, on a route from the engine's scheduler
        # to a state RAM placed across the chip) and 82.3 MHz at seed 2, which the named build
        # uses. The UART divides the clock by 24: 2,994,792 baud, 0.2 % from the host's
        # 3,000,000.
        default=Build(BuildConfig(lanes=64, max_input_size=64, max_hidden_size=64,
                                  max_batch=8, max_steps=32, max_layers=2,
                                  bidirectional=False),
                      max_payload=MAX_PAYLOAD, clock_mhz=71.875, seed=2),
        small=Build(BuildConfig(lanes=4, max_input_size=8, max_hidden_size=8, max_batch=2,
                                max_steps=8, max_layers=1, bidirectional=False),
                    max_payload=512, clock_mhz=45),
    ),
]}


class BoardTop(Elaboratable):
    """The accelerator on a board: PLL clock, USB UART at ``baud``, the protocol top.

    Where the board has room, the UART's bytes pass through a 64-byte FIFO, so that bytes
    arriving while the receiver hands a frame to the decoder are kept.
    """

    def __init__(self, board, build):
        self.board = board
        self.build = build
        self.pll = board.pll(build.clock_mhz)

    @property
    def clock_hz(self):
        return self.board.clock_hz(self.build.clock_mhz)

    @property
    def divisor(self):
        return self.board.uart_divisor(self.build.clock_mhz)

    def elaborate(self, platform):
        m = Module()
        if self.pll is not None:
            clock_pin = platform.request(platform.default_clk, dir="-")
            if self.board.family == "ice40":
                # SB_PLL40_PAD takes the pin itself.
                clock_input = clock_pin.io
            else:
                m.submodules.clock_buffer = clock_buffer = io.Buffer("i", clock_pin)
                clock_input = clock_buffer.i
            m.domains.sync = ClockDomain("sync")
            m.submodules.clock = PLLClock(self.pll, clock_input)
        # Without a PLL, ``sync`` is the platform's default domain: the oscillator, held in
        # reset for a moment after configuration.
        uart = platform.request("uart", 0, dir="-")
        m.submodules.uart_rx = rx_buffer = io.Buffer("i", uart.rx)
        m.submodules.uart_tx = tx_buffer = io.Buffer("o", uart.tx)
        m.submodules.rx = rx = UARTReceiver(self.divisor)
        m.submodules.tx = tx = UARTTransmitter(self.divisor)
        m.submodules.top = top = AcceleratorTop(self.build.config, self.build.max_payload,
                                                self.clock_hz,
                                                register_slices=self.board.register_slices)
        m.d.comb += [rx.rx.eq(rx_buffer.i), tx_buffer.o.eq(tx.tx)]
        if self.board.receive_fifo:
            m.submodules.fifo = fifo = SyncFIFOBuffered(width=8, depth=64)
            m.d.comb += [
                fifo.w_data.eq(rx.o.payload),
                fifo.w_en.eq(rx.o.valid),
                rx.o.ready.eq(1),               # a byte the FIFO has no room for is lost
                top.i.payload.eq(fifo.r_data),
                top.i.valid.eq(fifo.r_rdy),
                fifo.r_en.eq(top.i.ready),
            ]
        else:
            wiring.connect(m, rx.o, top.i)
        wiring.connect(m, top.o, tx.i)
        return m
