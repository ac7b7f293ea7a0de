"""A component with byte streams, simulated in process behind the host's transport interface.

:class:`SimulatedDevice` runs any component whose members ``i`` and ``o`` are 8-bit
``amaranth.lib.stream`` interfaces (wire bytes in and out, as a UART would carry them) in the
Amaranth simulator, and offers it as a :class:`~gatework.golden.transport.Transport`: the host's
:class:`~gatework.host.client.Client` drives the simulated gateware exactly as it drives a
board. The simulation only advances inside :meth:`SimulatedDevice.read`, on demand.

How the stepping works: one testbench moves bytes between Python buffers and the two
streams, and the simulation is advanced with ``Simulator.advance()`` until that testbench
raises a flag. ``Simulator.run_until()`` would need the stopping time in advance, but the
point to stop (output has come and paused, or the component has gone quiet) is only known to
the testbench as it happens. Having raised the flag, the testbench waits for a zero delay,
which lets ``advance()`` return and resumes it at the same simulated time in the next
:meth:`~SimulatedDevice.read`: bytes written in between are offered at the very next edge, so
stepping on demand neither adds nor loses cycles. While nothing is to be sent and nothing is
offered, the testbench sleeps until ``o.valid`` changes (or a delay bounds the sleep) instead
of waking every cycle; a cycle counter in the simulated design says how long it slept.

Set ``GATEWORK_VCD`` to a folder to get a VCD waveform of the whole session, written when
the device is closed.
"""

import collections
import contextlib
import math
import time

from amaranth.hdl import Module, Shape, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.sim import Simulator

from ..golden.protocol import MAX_PAYLOAD
from ..golden.transport import Transport
from .streams import SimulationTimeout, _vcd_path


__all__ = ["ENGINES", "ByteStreamDevice", "SimulatedDevice", "simulated_accelerator"]


def _checked_component(component, engine):
    """``component``, once checked to be a component with byte streams ``i`` and ``o``."""
    if not isinstance(component, wiring.Component):
        raise TypeError(f"a {engine} simulates a wiring.Component with byte streams i and o, "
                        f"not {component!r}")
    _check_byte_stream(component, "i", wiring.In)
    _check_byte_stream(component, "o", wiring.Out)
    return component


def _check_byte_stream(component, name, flow):
    members = component.signature.members
    member = members[name] if name in members else None
    signature = member.signature if member is not None and member.is_signature else None
    if not (isinstance(signature, stream.Signature) and member.flow == flow
            and Shape.cast(signature.members["payload"].shape) == unsigned(8)
            and not signature.always_valid and not signature.always_ready):
        raise TypeError(
            f"{type(component).__name__} needs a member {name!r} of "
            f"{flow.name}(stream.Signature(8)) (valid, ready and an 8-bit payload) to be "
            f"simulated as a device; its signature is {component.signature!r}")


class ByteStreamDevice(Transport):
    """A simulated component with byte streams ``i`` and ``o``, as a transport: what every
    simulation engine shares.

    :meth:`write` queues bytes for ``i``; :meth:`read` advances the simulation until ``o`` has
    given bytes and paused, until ``max_bytes`` have come, until neither stream has moved for
    ``idle_cycles`` cycles, or until the cycle budget of its ``timeout`` at ``clock_hz`` is
    spent, whichever is first, and returns what came out. ``o.ready`` is always high: the host
    takes every byte, as a UART receiver with a large buffer would. Timeouts are simulated
    time, not wall-clock time. An engine (:class:`SimulatedDevice`, the Amaranth simulator;
    :class:`~.verilated.VerilatedDevice`, compiled Verilog) provides ``_start``, ``_queue``,
    ``_queued``, ``_simulate`` and ``_stop``, and gives the same bytes in the same cycles.

    Parameters
    ----------
    name : str
        Shown in error messages.
    clock_hz : float
        Nominal clock frequency: :meth:`read` simulates at most ``timeout * clock_hz``
        cycles.
    idle_cycles : int
        Cycles without a transfer on either stream after which :meth:`read` returns, so that
        a quiet (or busy, or stuck) component gives control back to the caller soon.
    cycle_limit : int or None
        The most cycles the simulation may run in all; a :meth:`read` that would go beyond
        raises :class:`~gatework.sim.streams.SimulationTimeout`, so that a component that
        never answers cannot keep a caller with a generous timeout busy for hours. ``None``
        for no limit.

    Attributes
    ----------
    cycles : int
        Clock cycles simulated so far (since the last :meth:`restart`, if any).
    engine : str
        What simulates it: ``"amaranth"`` or ``"verilator"``.
    """

    engine = None

    def __init__(self, *, name="sim", clock_hz=12e6, idle_cycles=1024,
                 cycle_limit=10_000_000):
        if not clock_hz > 0:
            raise ValueError(f"clock_hz must be a positive frequency, not {clock_hz!r}")
        if not (isinstance(idle_cycles, int) and idle_cycles >= 1):
            raise ValueError(f"idle_cycles must be a positive int, not {idle_cycles!r}")
        if cycle_limit is not None and not (isinstance(cycle_limit, int) and cycle_limit >= 1):
            raise ValueError(f"cycle_limit must be a positive int or None, not "
                             f"{cycle_limit!r}")
        self.name = name
        self.clock_hz = clock_hz
        self.idle_cycles = idle_cycles
        self.cycle_limit = cycle_limit
        self._closed = False
        self._restarts = 0
        self._begin()

    def _begin(self):
        self.cycles = 0
        self._output = bytearray()
        # Request frames written and responses read through feed(), to know what is owed.
        self._request_frames = 0
        self._responses = 0
        self._frame_open = False
        self._start()

    def write(self, data):
        """Queue ``data`` for the component's ``i``; it is offered as :meth:`read` runs."""
        self._check_open()
        self._queue(bytes(data))

    def read(self, max_bytes, timeout):
        """Simulate for up to ``timeout`` seconds of simulated time; return up to ``max_bytes``.

        Bytes that came out earlier and were not yet read are returned at once, without
        simulating. Returns an empty ``bytes`` when none came.

        Raises
        ------
        SimulationTimeout
            The simulation has run ``cycle_limit`` cycles.
        """
        self._check_open()
        if not self._output:
            # The small term keeps a timeout of exactly n periods from rounding to n - 1.
            budget = math.floor(max(timeout, 0.0) * self.clock_hz + 1e-6)
            if self.cycle_limit is not None and budget > 0:
                if self.cycles >= self.cycle_limit:
                    raise SimulationTimeout(
                        f"{self.name} has simulated its cycle_limit of {self.cycle_limit} "
                        f"cycles; the component may be stuck, or the work needs more: pass a "
                        f"larger cycle_limit (or None) to {type(self).__name__}")
                budget = min(budget, self.cycle_limit - self.cycles)
            if budget > 0:
                self._simulate(budget, max_bytes)
        data = bytes(self._output[:max_bytes])
        del self._output[:max_bytes]
        return data

    @property
    def pending_responses(self):
        """Responses still owed: complete request frames written through :meth:`feed` whose
        response has not come out yet."""
        return max(0, self._request_frames - self._responses)

    def feed(self, data, timeout=600.0):
        """Write ``data`` and return every byte the component answers to it.

        This is the device interface of :func:`gatework.sim.server.serve_tcp`, which serves
        the simulated RTL on a TCP port as it serves the protocol model. The component answers
        every non-empty frame with one response (``docs/protocol.md``), and a LOAD or RUN
        computes for far more than ``idle_cycles`` quiet cycles before it answers: so, while
        complete frames written so far lack their response, the simulation goes on, and it
        stops as soon as the last one is out. Bytes that complete no frame are simulated until
        the component has taken them and falls quiet.

        Parameters
        ----------
        data : bytes
            Wire bytes, any part of a frame or several frames; ``b""`` to go on simulating
            what earlier bytes asked for.
        timeout : float
            Wall-clock seconds to simulate at most (at least one :meth:`read` always runs), so
            that a stuck component cannot hold the caller forever. What has come by then is
            returned, and :attr:`pending_responses` says how many responses are still owed:
            the next call goes on with them. Bytes of a response may then come in two calls.
        """
        self.write(data)
        self._count_request_frames(data)
        answer = bytearray()
        deadline = time.monotonic() + timeout
        while True:
            owed = self.pending_responses
            # A read returns as soon as the output pauses or the component falls quiet, but
            # not while a long request streams in: so each read is also kept to idle_cycles,
            # and the deadline is looked at that often.
            chunk = self.read(1 << 16, self.idle_cycles / self.clock_hz)
            answer += chunk
            self._responses += chunk.count(0)
            if owed and not self.pending_responses:
                # Every frame has its one response: nothing more is due, and simulating on
                # until the component falls idle would add idle_cycles to every exchange.
                return bytes(answer)
            quiet = not owed and not chunk and not self._queued
            if quiet or time.monotonic() >= deadline:
                return bytes(answer)

    def restart(self):
        """Simulate the component again from its reset state, as a board that is power-cycled.

        Bytes not yet taken in, output not yet read and every response owed are dropped, and
        the component's state is at its initial values again (the accelerator holds no
        weights). :attr:`cycles` counts from zero. :func:`~gatework.sim.server.serve_tcp`
        restarts a device whose host hung up while it computed, so that the next host does
        not wait for work nobody will read.
        """
        self._check_open()
        self._stop()
        self._restarts += 1
        self._begin()

    def _count_request_frames(self, data):
        # A zero ends a frame; an empty frame (two zeros in a row) is ignored and unanswered.
        for part in bytes(data).split(b"\x00")[:-1]:
            if part or self._frame_open:
                self._request_frames += 1
            self._frame_open = False
        if not bytes(data).endswith(b"\x00") and bytes(data).rsplit(b"\x00", 1)[-1]:
            self._frame_open = True

    def close(self):
        """Stop simulating (and finish a waveform file, if one is written)."""
        if not self._closed:
            self._closed = True
            self._stop()

    def _check_open(self):
        if self._closed:
            raise ValueError(f"{self.name} is closed; make a new {type(self).__name__} to "
                             f"simulate again")


class SimulatedDevice(ByteStreamDevice):
    """Simulate ``component`` in the Amaranth simulator and exchange its wire bytes as a
    transport (see :class:`ByteStreamDevice`).

    Close the device (or use it in a ``with`` block) to finish its VCD file.

    The simulator runs about 10,000 cycles per second while bytes move (a testbench sets and
    samples the streams every cycle) and a few times more while the component works silently
    (the testbench sleeps), far less for large designs (the accelerator top: 600 to 900 cycles
    a second on a 2-core AMD EPYC, measured): a response that takes a million cycles takes
    minutes to hours to simulate, whatever ``timeout`` says. Give a
    :class:`~gatework.host.client.Client` a timeout that covers the wall-clock time of the
    simulation, or use the compiled engine (:class:`~.verilated.VerilatedDevice`).

    Parameters
    ----------
    component : wiring.Component
        With members ``i: In(stream.Signature(8))`` and ``o: Out(stream.Signature(8))``;
        clocked by the ``sync`` domain.
    name : str
        Also names the VCD file (a restarted device's is ``NAME-restart-N``).
    clock_hz, idle_cycles, cycle_limit :
        As :class:`ByteStreamDevice`'s; ``clock_hz`` is also the waveform's time axis.
    """

    engine = "amaranth"

    def __init__(self, component, *, name="sim", clock_hz=12e6, idle_cycles=1024,
                 cycle_limit=10_000_000):
        self._component = _checked_component(component, "SimulatedDevice")
        self._waveform = contextlib.ExitStack()
        super().__init__(name=name, clock_hz=clock_hz, idle_cycles=idle_cycles,
                         cycle_limit=cycle_limit)

    def _start(self):
        """Build a fresh simulation of the component, at its reset state, with empty buffers."""
        self._input = collections.deque()
        # What the current read() asked for, and the flag by which the testbench stops it.
        self._stop_at = 0
        self._wanted = 0
        self._quiet = 0
        self._stopped = False

        # Whole, even femtoseconds (the simulator's unit; it halves the period), a quarter more
        # so that converting back to femtoseconds cannot round down: edges then fall on whole
        # periods exactly, and sleeps (below) can end half way between them.
        self._period_fs = 2 * max(1, round(1e15 / self.clock_hz / 2))
        m = Module()
        m.submodules.device = self._component
        # Counts rising edges, so that the testbench knows how long it slept.
        self._edge_count = Signal(64, name="cycles")
        m.d.sync += self._edge_count.eq(self._edge_count + 1)
        self._simulator = Simulator(m)
        # The first edge one period in, as every later edge is one period after the one before:
        # a sleep from the start ends between edges too.
        period = (self._period_fs + 0.25) / 1e15
        self._simulator.add_clock(period, phase=period)
        self._simulator.add_testbench(self._testbench)
        name = self.name if not self._restarts else f"{self.name}-restart-{self._restarts}"
        path = _vcd_path(name)
        if path is not None:
            self._waveform.enter_context(self._simulator.write_vcd(str(path)))

    def _queue(self, data):
        self._input.extend(data)

    @property
    def _queued(self):
        return len(self._input)

    def _stop(self):
        self._waveform.close()

    def _simulate(self, budget, max_bytes):
        self._stop_at = self.cycles + budget
        self._wanted = max_bytes
        self._quiet = 0
        self._stopped = False
        # A cycle is two time steps of the clock; a sleep that ends between edges adds one.
        for _ in range(4 * budget + 8):
            self._simulator.advance()
            if self._stopped:
                return
        raise RuntimeError(f"{self.name}: the simulation did not stop within {budget} cycles; "
                           f"this is a bug in SimulatedDevice")

    async def _testbench(self, ctx):
        i, o = self._component.i, self._component.o
        ctx.set(o.ready, 1)
        offered = None
        # Where in the cycle the testbench stands: right after an edge (or at the start, one
        # period before the first), or half way between two edges after a sleep ran out.
        between_edges = False
        while True:
            if self._input:
                if offered is None:
                    ctx.set(i.valid, 1)
                if offered != self._input[0]:
                    offered = self._input[0]
                    ctx.set(i.payload, offered)
            elif offered is not None:
                offered = None
                ctx.set(i.valid, 0)

            stop = (self.cycles >= self._stop_at or self._quiet >= self.idle_cycles
                    or len(self._output) >= self._wanted)
            sleep = False
            if not stop and (self._output or offered is None):
                output_offered = ctx.get(o.valid)
                # Hand the output over once it pauses (mostly at the end of a frame or of a
                # COBS block) rather than byte by byte.
                stop = bool(self._output) and not output_offered
                sleep = not stop and offered is None and not output_offered
            if stop:
                # read() advances the simulation until it sees this flag. The testbench goes on
                # from here, before the next edge, in the next read(), so that bytes written
                # in between are offered at that edge.
                self._stopped = True
                await ctx.delay(0)
                continue
            if sleep:
                # Nothing to do until the component offers a byte: sleep without waking each
                # cycle, at most until this read's idle or cycle budget runs out. The sleep
                # ends half way between edges, so that no edge falls in the time step in which
                # it ends (o.valid changing then would break the wait).
                cycles = min(self._stop_at - self.cycles, self.idle_cycles - self._quiet)
                sleep_fs = cycles * self._period_fs
                if not between_edges:
                    sleep_fs += self._period_fs // 2
                between_edges, _ = await ctx.delay(sleep_fs / 1e15).changed(o.valid)
                now = ctx.get(self._edge_count)
                self._quiet += now - self.cycles
                self.cycles = now
                continue

            _, _, taken, output_valid, output_byte = await ctx.tick().sample(
                i.ready, o.valid, o.payload)
            self.cycles += 1
            between_edges = False
            input_moved = offered is not None and taken
            if input_moved:
                self._input.popleft()
            if output_valid:
                self._output.append(output_byte)
            self._quiet = 0 if input_moved or output_valid else self._quiet + 1


#: The engines ``simulated_accelerator`` can simulate with; ``"auto"``: the fastest here.
ENGINES = ("auto", "verilator", "amaranth")


def simulated_accelerator(config=None, *, max_payload=MAX_PAYLOAD, name="sim", engine="auto",
                          **options):
    """The accelerator top's RTL, simulated, as a transport (and a :meth:`~ByteStreamDevice.feed`
    device).

    The receive buffer is as large as the protocol's length field allows: in simulation it
    costs nothing, and every model within the build's maxima then loads in one request. Each
    read is bounded by its own timeout, so there is no limit on the cycles of a session. INFO
    says that the device is simulated, so that a host's client waits as long as a simulation
    takes.

    Parameters
    ----------
    engine : str
        ``"verilator"``: the top's Verilog compiled (:class:`~.verilated.VerilatedDevice`;
        raises :class:`~.verilated.VerilatorMissing` where Verilator is not installed);
        ``"amaranth"``: the Amaranth simulator (:class:`SimulatedDevice`); ``"auto"``: the
        compiled one where Verilator is installed, else Amaranth's. The device's ``engine``
        says which simulates it.
    options :
        For the device (:class:`ByteStreamDevice`): ``idle_cycles``, ``cycle_limit`` (by
        default ``None``: each read is bounded by its own timeout), ``clock_hz``.
    """
    from ..golden.config import BuildConfig
    from ..hdl.top import AcceleratorTop
    from .verilated import VerilatedDevice, verilator_available
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(map(repr, ENGINES))}, not "
                         f"{engine!r}")
    config = config or BuildConfig()

    def top():
        return AcceleratorTop(config, max_payload=max_payload, simulated=True)

    options = {"cycle_limit": None, **options}
    if engine == "verilator" or (engine == "auto" and verilator_available()):
        key = f"AcceleratorTop({config!r}, max_payload={max_payload}, simulated=True)"
        return VerilatedDevice(top, name=name, key=key, **options)
    return SimulatedDevice(top(), name=name, **options)
