"""The host's driver of a gatework device: one method per command, over any transport.

The same :class:`Client` drives a board over a serial port, a simulated or modelled device
over a TCP socket, and a :class:`~gatework.golden.device_model.DeviceModel` in process. It
refuses work that does not fit the device before sending it, matches every response to its
request (see "How the host matches responses" in ``docs/protocol.md``) and never sends
anything again by itself.
"""

import logging
import time

import numpy as np

from ..golden.protocol import Command, Status
from ..golden.messages import (FRAME_STATUSES, MAX_PAYLOAD, RESPONSE_OVERHEAD, DeviceError,
                               FrameReader, LoadRequest, ProtocolError, RunRequest,
                               command_name, decode_glu_response, decode_info_response,
                               decode_response, decode_run_response, encode_glu_request,
                               encode_load_request, encode_request, encode_run_request,
                               max_encoded_length)


__all__ = ["Client", "check_fits", "estimated_cycles"]


logger = logging.getLogger("gatework")

# The terms of estimated_cycles(), each generous: the time they buy a simulated device is a
# bound on waiting, not a prediction. The accelerator takes a byte a cycle and a LOAD then
# walks its words into the banks (about 2.5 cycles per payload byte in all, measured); a step
# adds the element-wise pipeline (about 20 deep) to its multiply-accumulates; a request adds
# decoding and the transposer's turn-around.
_CYCLES_PER_WIRE_BYTE = 4
_CYCLES_PER_STEP = 64
_CYCLES_PER_REQUEST = 1000


def check_fits(config, *, num_layers=None, direction="forward", input_size=None,
               hidden_size=None, batch=None, steps=None):
    """Raise ``ValueError`` naming every size a device built with ``config`` cannot run.

    Parameters
    ----------
    config : BuildConfig
        The device's, as INFO reports it.
    num_layers, input_size, hidden_size, batch, steps : int, optional
        Sizes to check; ``steps`` is the longest sequence. Omitted ones are not checked.
    direction : str
        ``"forward"``, ``"reverse"`` or ``"bidirectional"``.
    """
    directions = 2 if direction == "bidirectional" else 1
    problems = []
    if directions > config.directions:
        problems.append("the model is bidirectional, but this build has one direction per "
                        "layer")
    later_inputs = (directions * hidden_size
                    if num_layers is not None and num_layers > 1 and hidden_size else None)
    for value, maximum, what, name in (
            (num_layers, config.max_layers, "num_layers", "max_layers"),
            (input_size, config.max_input_size, "input_size", "max_input_size"),
            (hidden_size, config.max_hidden_size, "hidden_size", "max_hidden_size"),
            (later_inputs, config.max_input_size,
             "the input size of the layers after the first (directions * hidden_size)",
             "max_input_size"),
            (batch, config.max_batch, "the batch", "max_batch"),
            (steps, config.max_steps, "the longest sequence", "max_steps")):
        if value is not None and value > maximum:
            problems.append(f"{what} {value} exceeds the device's {name} {maximum}")
    if problems:
        raise ValueError(f"this does not fit the device: {'; '.join(problems)}. Make it "
                         f"smaller, or use a bitstream built with larger maxima")


def estimated_cycles(config, wire_bytes, run=None):
    """A generous estimate of the clock cycles a device built with ``config`` takes for a request.

    It gives a simulated device, which runs a few hundred to a few thousand cycles a second,
    time in proportion to its work: bytes moved, and for a RUN every sequence's steps through
    every layer and direction, each three passes (gates r, z, n) of ``ceil(H / lanes)`` groups
    of lanes over their rows' input and recurrent terms (``lane_width`` of them a cycle), as
    the GRU engine computes (``docs/cycles.md``). The measured cycles are below this: LOAD and
    RUN of a 16 -> 32 GRU, 4 sequences of 8 steps, on 8 lanes, take 24,050 and 23,459 cycles,
    estimated 39,500 and 35,356.

    Parameters
    ----------
    config : BuildConfig
        The device's, as INFO reports it.
    wire_bytes : int
        Bytes of the request's frame and its response's.
    run : RunRequest, optional
        The RUN, for its computation.
    """
    cycles = _CYCLES_PER_REQUEST + _CYCLES_PER_WIRE_BYTE * wire_bytes
    if run is not None:
        width = config.lane_width
        passes = 3 * -(-run.hidden_size // config.lanes)
        hidden_terms = -(-run.hidden_size // width)
        layer_inputs = ([run.input_size]
                        + [run.num_directions * run.hidden_size] * (run.num_layers - 1))
        for input_size in layer_inputs:
            terms = -(-input_size // width) + hidden_terms + 1
            cycles += (run.num_directions * run.batch * run.steps
                       * (passes * terms + _CYCLES_PER_STEP))
    return cycles


class _Lost(Exception):
    """A request that the link lost; ``error`` is what to raise when retries run out."""

    def __init__(self, error):
        super().__init__(str(error))
        self.error = error


class Client:
    """Requests to a gatework device, one method per command.

    Every failure goes to the caller, who decides whether to repeat the request:
    :class:`~gatework.golden.messages.DeviceError` (the device refused, ``status`` says why),
    :class:`~gatework.golden.messages.ProtocolError` (bytes that break the protocol) or
    ``TimeoutError``
    (no answer in time). Work that does not fit the device raises ``ValueError`` before
    anything is sent.

    Parameters
    ----------
    transport : Transport
    timeout : float
        Seconds to wait for a response, on top of the time the wire takes to carry the bytes.
    retries : int
        How often a request the link lost is sent again.
    simulation_rate : float, optional
        For a device whose INFO says it is simulated: the fewest clock cycles a second its
        simulator is taken to run. Each request then also gets the time its
        :func:`estimated_cycles` take at that rate, as a large RUN simulates for minutes to
        hours. ``None``: ``timeout`` alone, whatever the device.
    """

    def __init__(self, transport, timeout=5.0, retries=2, simulation_rate=None):
        if not timeout > 0:
            raise ValueError(f"timeout must be a positive number of seconds, not {timeout!r}")
        if not isinstance(retries, int) or retries < 0:
            raise ValueError(f"retries must be an int >= 0, not {retries!r}")
        if simulation_rate is not None and not simulation_rate > 0:
            raise ValueError(f"simulation_rate must be a positive number of cycles a second or "
                             f"None, not {simulation_rate!r}")
        self.transport = transport
        self.timeout = float(timeout)
        # Cycles a second a simulated device in this process was measured at (see _Progress).
        self._cycles_per_second = None
        self.retries = retries
        self.simulation_rate = simulation_rate
        self._sequence = 0
        self._reader = FrameReader(max_encoded_length(RESPONSE_OVERHEAD + MAX_PAYLOAD))
        self._info = None

    def close(self):
        self.transport.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    @property
    def device_info(self):
        """The device's :class:`~gatework.golden.messages.DeviceInfo`, asked for once, then
        kept."""
        if self._info is None:
            self.info()
        return self._info

    # --- commands ----------------------------------------------------------------------------

    def info(self):
        """Ask the device for its :class:`~gatework.golden.messages.DeviceInfo` (and keep it)."""
        self._info = decode_info_response(self.request(Command.INFO))
        return self._info

    def load(self, layer, direction, cell, linear_before_reset=True, h0=None):
        """Load the weights of one layer and direction, and optionally initial states.

        Parameters
        ----------
        layer, direction : int
            The slot; ``direction`` 1 is the reverse half of a bidirectional GRU.
        cell : GRUDirectionWeights
            Integer codes in the device's formats.
        linear_before_reset : bool
        h0 : numpy.ndarray, optional
            ``(N, H)`` data codes, the initial state of each sequence of a RUN with
            ``use_h0``.
        """
        request = LoadRequest(layer, direction, cell, linear_before_reset, h0)
        config = self.device_info.config
        if layer >= config.max_layers:
            raise ValueError(f"layer {layer} is beyond the device's max_layers "
                             f"{config.max_layers}")
        if direction >= config.directions:
            raise ValueError(f"direction {direction} is beyond the {config.directions} "
                             f"direction(s) per layer of this build")
        check_fits(config, input_size=request.input_size, hidden_size=request.hidden_size,
                   batch=request.batch)
        self._check_payload(request.payload_length(), "LOAD")
        self._expect_empty(self.request(Command.LOAD, encode_load_request(request)), "LOAD")

    def run(self, inputs, lengths, *, num_layers, hidden_size, steps=None, direction="forward",
            linear_before_reset=True, final_only=False, use_h0=False, glu=False):
        """Run the loaded GRU over sequences of their own lengths.

        Parameters are those of :class:`~gatework.golden.messages.RunRequest`: ``inputs``
        ``(sum(lengths), D)`` data codes, batch-major and ragged.

        Returns
        -------
        RunResponse
            ``outputs`` ``(sum(lengths), F)`` (``None`` for ``final_only``) and ``h_n``
            ``(num_layers * directions, N, H)``, data codes.
        """
        request = RunRequest(inputs, lengths, num_layers, hidden_size, steps, direction,
                             linear_before_reset, final_only, use_h0, glu)
        check_fits(self.device_info.config, num_layers=num_layers, direction=direction,
                   input_size=request.input_size, hidden_size=hidden_size,
                   batch=request.batch, steps=request.steps)
        self._check_payload(request.payload_length(), "RUN")
        if request.response_length() > MAX_PAYLOAD:
            raise ValueError(f"the RUN response would carry {request.response_length()} bytes; "
                             f"a frame carries at most {MAX_PAYLOAD}: run fewer or shorter "
                             f"sequences at a time")
        payload = self.request(Command.RUN, encode_run_request(request),
                               request.response_length(), run=request)
        return decode_run_response(payload, request)

    def glu(self, values):
        """``a * sigmoid(b)`` of ``(M, 2C)`` data codes (``a`` first) -> ``(M, C)`` codes."""
        values = np.asarray(values)
        payload = encode_glu_request(values)
        count, channels = values.shape[0], values.shape[1] // 2
        maximum = self.device_info.config.max_hidden_size
        if channels > maximum:
            raise ValueError(f"a GLU of {channels} channels exceeds the device's "
                             f"max_hidden_size {maximum}, the most channels its GLU unit "
                             f"holds: send the channels in pieces")
        self._check_payload(len(payload), "GLU")
        return decode_glu_response(self.request(Command.GLU, payload, 2 * count * channels),
                                   count, channels)

    def reset(self):
        """Make the device forget every loaded weight."""
        self._expect_empty(self.request(Command.RESET), "RESET")

    # --- one exchange ------------------------------------------------------------------------

    def request(self, command, payload=b"", response_length=0, *, run=None):
        """Send one request and return the payload of its ``OK`` response.

        No size checks: the typed methods above make them. ``command`` may be any code
        below 0x80, a command of this protocol or not. A request lost on the link (the device
        answered BAD_CRC, BAD_FRAME or TOO_LARGE in its place, or its response arrived
        damaged) is sent again, at most ``retries`` times; every command may be repeated
        safely, as LOAD replaces its slot, RESET empties the slots and the others change
        nothing. A timeout is not retried: it reports what was outstanding.

        Parameters
        ----------
        command : int
        payload : bytes
        response_length : int
            Payload bytes expected back; slow links get the time to carry them.
        run : RunRequest, optional
            What a RUN computes, so that a simulated device gets the time it takes.
        """
        for attempt in range(self.retries + 1):
            try:
                return self._attempt(command, payload, response_length, run)
            except _Lost as lost:
                if attempt == self.retries:
                    raise lost.error from None
                logger.warning("%s was lost on the link (%s); sending it again (retry %d of "
                               "%d)", command_name(command), lost.error, attempt + 1,
                               self.retries)

    def _attempt(self, command, payload, response_length, run):
        name = command_name(command)
        sequence = self._next_sequence()
        frame = encode_request(command, sequence, payload)
        self._discard_input()
        wire_bytes = 1 + len(frame) + max_encoded_length(RESPONSE_OVERHEAD + response_length) + 1
        waited = self.wait_seconds(wire_bytes, run)
        deadline = time.monotonic() + waited
        progress = _Progress(self, name, wire_bytes, run, waited)
        # A zero first ends any partial frame the device holds (docs/protocol.md, Framing).
        self._send(b"\x00" + frame, name)
        with progress:
            return self._await(name, command, sequence, deadline, waited, progress)

    def _await(self, name, command, sequence, deadline, waited, progress):
        fence = None
        reported = []
        damaged = []
        unrelated = 0
        while True:
            progress.update()
            # Past the deadline, one last look at what has arrived, then give up.
            remaining = deadline - time.monotonic()
            for encoded in self._reader.feed(self.transport.read(65536, max(remaining, 0.0))):
                try:
                    response = decode_response(encoded)
                except ProtocolError as error:
                    damaged.append(str(error))
                    fence = self._fence(fence, name)
                    continue
                if response.status in FRAME_STATUSES:
                    reported.append(response.status)
                    fence = self._fence(fence, name)
                    continue
                if (response.command, response.sequence) == (command, sequence):
                    if response.status != Status.OK:
                        raise DeviceError(response.status, name)
                    return response.payload
                if fence is not None and (response.command, response.sequence) == (
                        Command.INFO, fence):
                    raise _Lost(self._lost(name, reported, damaged))
                unrelated += 1
                logger.debug("discarded a response to %s (sequence %d) while waiting for %s "
                             "(sequence %d)", command_name(response.command),
                             response.sequence, name, sequence)
            if remaining <= 0:
                raise self._timeout(name, sequence, waited, reported, damaged, unrelated)

    def wait_seconds(self, wire_bytes, run=None):
        """Seconds to wait for the response to a request.

        ``timeout``, the time the wire takes to carry ``wire_bytes``, and, for a device whose
        INFO says it is simulated, when ``simulation_rate`` is set, the time the request's
        :func:`estimated_cycles` take at that rate.

        Parameters
        ----------
        wire_bytes : int
            Bytes of the request's frame and of its response's, on the wire.
        run : RunRequest, optional
            The RUN, for its computation.
        """
        seconds = self.timeout + self.transport.transfer_seconds(wire_bytes)
        if self.simulation_rate is not None and self._simulated:
            seconds += estimated_cycles(self._info.config, wire_bytes, run) / self.simulation_rate
        return seconds

    @property
    def _simulated(self):
        return self._info is not None and self._info.simulated

    def _next_sequence(self):
        sequence = self._sequence
        self._sequence = (sequence + 1) & 0xFF
        return sequence

    def _send(self, data, name):
        try:
            self.transport.write(data)
        except TimeoutError as error:
            raise TimeoutError(f"sending {name}: {error}") from None

    def _discard_input(self):
        # Late answers to abandoned requests; bounded, in case a link streams garbage.
        self._reader.clear()
        for _ in range(64):
            if not self.transport.read(65536, 0):
                return

    def _fence(self, fence, name):
        """Send the fence INFO once: its answer shows that the request's cannot come."""
        if fence is None:
            fence = self._next_sequence()
            self._send(b"\x00" + encode_request(Command.INFO, fence), name)
        return fence

    def _lost(self, name, reported, damaged):
        if damaged:
            return ProtocolError(
                f"the response to {name} did not arrive intact ({damaged[-1]}); the device "
                f"may or may not have executed the request, so a LOAD or RESET may have "
                f"changed its state")
        names = ", ".join(status.name for status in reported)
        return DeviceError(reported[-1], name, f"no response to {name} came back; the device "
                                               f"reported {names} in its place")

    def _timeout(self, name, sequence, waited, reported, damaged, unrelated):
        extras = ""
        if reported:
            extras += (f"; the device reported {', '.join(s.name for s in reported)} for "
                       f"frames it could not read")
        if damaged:
            extras += f"; {len(damaged)} response(s) arrived damaged ({damaged[-1]})"
        if unrelated:
            extras += f"; {unrelated} response(s) to other requests were discarded"
        if self._simulated:
            advice = ("the device is a simulation (its INFO says so): check that its server "
                      "(gatework sim-server) still runs and that no other host keeps it busy; "
                      "if this request needs longer to simulate, give it the time with "
                      "FpgaBackend(URL, timeout=SECONDS) or Client(..., timeout=SECONDS)")
        elif self.transport.name.startswith("socket://"):
            advice = ("check that a server listens at that address (gatework sim-server "
                      "prints it) and that no other host keeps it busy: it serves one request "
                      "at a time, and a simulated one can take minutes")
        else:
            advice = ("check that the board is powered and programmed with a gatework "
                      "bitstream, that the URL and baud rate are right, and that no other "
                      "program uses the port")
        return TimeoutError(
            f"no response from {self.transport.name} to {name} (sequence {sequence}) within "
            f"{waited:.{max(3, len(str(int(waited))))}g} s{extras}; {advice}")

    def _check_payload(self, length, name):
        maximum = self.device_info.max_payload
        if length > maximum:
            raise ValueError(f"the {name} request carries {length} payload bytes; the device "
                             f"accepts at most max_payload {maximum}: send less at a time, or "
                             f"use a bitstream with a larger receive buffer")

    def _expect_empty(self, payload, name):
        if payload:
            raise ProtocolError(f"an OK response to {name} carries {len(payload)} payload "
                                f"bytes; it carries none: the device breaks the protocol")


class _Progress:
    """How far a simulated device in this process has come with a request: a progress bar of
    its clock cycles against :func:`estimated_cycles` once the request has taken a few
    seconds, and a warning before it starts when the device's speed, measured over the
    client's earlier requests, will not finish it within the wait."""

    #: Seconds before a bar is shown.
    DELAY = 2.0

    def __init__(self, client, name, wire_bytes, run, waited):
        transport = client.transport
        self._bar = None
        self._transport = transport if (client._simulated and
                                         hasattr(transport, "cycles")) else None
        if self._transport is None:
            return
        self._name = name
        self._start = transport.cycles
        self._started = time.monotonic()
        self._estimate = estimated_cycles(client._info.config, wire_bytes, run)
        self._client = client
        rate = client._cycles_per_second
        if rate and self._estimate / rate > waited:
            logger.warning("%s on %s may take about %.0f s (about %d cycles at the %.0f cycles "
                           "a second measured so far), beyond its wait of %.0f s; give the "
                           "client a larger timeout", name, transport.name,
                           self._estimate / rate, self._estimate, rate, waited)

    def update(self):
        if self._transport is None:
            return
        if self._bar is None:
            if time.monotonic() - self._started < self.DELAY:
                return
            from tqdm import tqdm
            self._bar = tqdm(total=self._estimate, unit=" cycles", unit_scale=True,
                             desc=f"{self._name} on {self._transport.name} (estimated total)",
                             leave=False)
        done = min(self._transport.cycles - self._start, self._estimate)
        self._bar.update(done - self._bar.n)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        if self._bar is not None:
            self._bar.close()
        if self._transport is not None:
            # The device's speed, from a request long enough to tell it.
            seconds = time.monotonic() - self._started
            if seconds > 0.1:
                self._client._cycles_per_second = (
                    (self._transport.cycles - self._start) / seconds)
