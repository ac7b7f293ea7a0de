"""Clock generation on the boards: PLL settings computed from the wanted frequency.

:func:`ice40_pll` and :func:`ecp5_pll` search the PLL's dividers for the output nearest the
wanted frequency within the datasheet's ranges (the same search ``icepll`` and ``ecppll``
do); :class:`PLLClock` instantiates the PLL and drives the ``sync`` domain from it, held in
reset until the PLL has locked.
"""

from dataclasses import dataclass

from amaranth.hdl import ClockSignal, Elaboratable, Instance, Module, Signal
from amaranth.lib.cdc import ResetSynchronizer


__all__ = ["PLLSettings", "ice40_pll", "ecp5_pll", "PLLClock"]


@dataclass(frozen=True)
class PLLSettings:
    """One PLL setting: the family's divider values and the frequency they give."""
    family: str
    input_hz: float
    output_hz: float
    dividers: tuple     # (name, value) pairs, the family's parameter names

    def __getitem__(self, name):
        return dict(self.dividers)[name]


def _check(wanted_hz, low, high):
    if not low <= wanted_hz <= high:
        raise ValueError(f"a clock of {wanted_hz / 1e6:g} MHz is beyond this PLL's "
                         f"{low / 1e6:g}-{high / 1e6:g} MHz")


def ice40_pll(input_hz, wanted_hz):
    """SB_PLL40 settings: ``f_out = f_in * (DIVF + 1) / ((DIVR + 1) * 2**DIVQ)``.

    The phase detector runs at 10-133 MHz and the VCO at 533-1066 MHz (iCE40 sysCLOCK PLL
    design guide); FILTER_RANGE follows the phase detector's frequency as in ``icepll``.
    """
    _check(wanted_hz, 16e6, 275e6)
    best = None
    for divr in range(16):
        pfd = input_hz / (divr + 1)
        if not 10e6 <= pfd <= 133e6:
            continue
        for divf in range(128):
            vco = pfd * (divf + 1)
            if not 533e6 <= vco <= 1066e6:
                continue
            for divq in range(1, 7):
                out = vco / 2 ** divq
                if best is None or abs(out - wanted_hz) < abs(best[0] - wanted_hz):
                    filter_range = next(index for index, top in enumerate(
                        (17e6, 26e6, 44e6, 66e6, 101e6, 133e6), start=1) if pfd < top)
                    best = (out, (("DIVR", divr), ("DIVF", divf), ("DIVQ", divq),
                                  ("FILTER_RANGE", filter_range)))
    if best is None:
        raise ValueError(f"no iCE40 PLL setting gives {wanted_hz / 1e6:g} MHz "
                         f"from {input_hz / 1e6:g} MHz")
    return PLLSettings("ice40", input_hz, best[0], best[1])


def ecp5_pll(input_hz, wanted_hz):
    """EHXPLLL settings: ``f_out = f_in * CLKFB_DIV / CLKI_DIV``, VCO ``f_out * CLKOP_DIV``.

    The phase detector runs at 3.125-400 MHz and the VCO at 400-800 MHz (ECP5 sysCLOCK
    guide), as ``ecppll`` searches them.
    """
    _check(wanted_hz, 3.125e6, 400e6)
    best = None
    for clki_div in range(1, 129):
        pfd = input_hz / clki_div
        if not 3.125e6 <= pfd <= 400e6:
            continue
        for clkfb_div in range(1, 81):
            out = pfd * clkfb_div
            if not 3.125e6 <= out <= 400e6:
                continue
            for clkop_div in range(1, 129):
                vco = out * clkop_div
                if not 400e6 <= vco <= 800e6:
                    continue
                # Nearest the wanted frequency; among equals, the VCO nearest 600 MHz.
                rank = (abs(out - wanted_hz), abs(vco - 600e6))
                if best is None or rank < best[0]:
                    best = (rank, out, (("CLKI_DIV", clki_div), ("CLKFB_DIV", clkfb_div),
                                        ("CLKOP_DIV", clkop_div)))
    if best is None:
        raise ValueError(f"no ECP5 PLL setting gives {wanted_hz / 1e6:g} MHz "
                         f"from {input_hz / 1e6:g} MHz")
    return PLLSettings("ecp5", input_hz, best[1], best[2])


class PLLClock(Elaboratable):
    """Drive the ``sync`` domain (defined by the parent) at ``settings.output_hz``, from the
    board's input clock.

    ``sync`` stays in reset until the PLL reports lock, released synchronously.
    ``input_clock`` is the clock pin itself on iCE40 (an I/O port, as ``SB_PLL40_PAD`` takes
    it), the buffered input clock on ECP5. nextpnr derives the output's timing constraint
    from the input's and the dividers.
    """

    def __init__(self, settings, input_clock):
        self.settings = settings
        self.input_clock = input_clock

    def elaborate(self, platform):
        m = Module()
        settings = self.settings
        locked = Signal()
        clock = Signal()
        if settings.family == "ice40":
            # The iCEBreaker's 12 MHz pin is the PLL's own pad: no input buffer of its own.
            m.submodules.pll = Instance(
                "SB_PLL40_PAD",
                p_FEEDBACK_PATH="SIMPLE",
                p_DIVR=settings["DIVR"], p_DIVF=settings["DIVF"], p_DIVQ=settings["DIVQ"],
                p_FILTER_RANGE=settings["FILTER_RANGE"],
                i_PACKAGEPIN=self.input_clock, i_RESETB=1, i_BYPASS=0,
                o_PLLOUTGLOBAL=clock, o_LOCK=locked)
        else:
            clkop_div = settings["CLKOP_DIV"]
            m.submodules.pll = Instance(
                "EHXPLLL",
                a_FREQUENCY_PIN_CLKI=f"{settings.input_hz / 1e6:g}",
                a_FREQUENCY_PIN_CLKOP=f"{settings.output_hz / 1e6:g}",
                a_ICP_CURRENT="12", a_LPF_RESISTOR="8", a_MFG_ENABLE_FILTEROPAMP="1",
                a_MFG_GMCREF_SEL="2",
                p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED", p_STDBY_ENABLE="DISABLED",
                p_DPHASE_SOURCE="DISABLED", p_OUTDIVIDER_MUXA="DIVA",
                p_CLKI_DIV=settings["CLKI_DIV"], p_CLKFB_DIV=settings["CLKFB_DIV"],
                p_CLKOP_ENABLE="ENABLED", p_CLKOP_DIV=clkop_div,
                p_CLKOP_CPHASE=clkop_div - 1, p_CLKOP_FPHASE=0, p_FEEDBK_PATH="CLKOP",
                i_RST=0, i_STDBY=0, i_CLKI=self.input_clock, i_CLKFB=clock,
                i_PHASESEL0=0, i_PHASESEL1=0, i_PHASELOADREG=0,
                i_PHASESTEP=0, i_PHASEDIR=0, i_ENCLKOP=0,
                o_CLKOP=clock, o_LOCK=locked)
        m.d.comb += ClockSignal("sync").eq(clock)
        m.submodules.reset = ResetSynchronizer(~locked, domain="sync")
        return m
