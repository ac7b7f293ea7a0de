"""The fpga backend against the device model: bit-exact with golden, refusals, the TCP path."""

import logging

import numpy as np
import pytest

from gatework.golden import glu_fixed, gru_fixed, quantize_gru, transposer
from gatework.golden.config import BuildConfig
from gatework.golden.formats import DEFAULT_FORMATS
from gatework.golden.protocol import Command, Status
from gatework.host import GLU, GRU
from gatework.host.client import Client
from gatework.golden.device_model import DeviceModel
from gatework.sim.server import serve_tcp
from gatework.host.fpga import FpgaBackend, fpga_backend
from gatework.golden import messages as protocol
from gatework.golden.messages import (DeviceError, FrameReader, LoadRequest, ProtocolError,
                                    RunRequest, decode_request)
from gatework.host.transport import LoopbackTransport, SerialTransport


CONFIG = BuildConfig(lanes=4, max_input_size=24, max_hidden_size=12, max_batch=6,
                     max_steps=16, max_layers=2, bidirectional=True)


class Recorder(LoopbackTransport):
    """A loopback that counts the bytes and the requests written to the device."""

    def __init__(self, device):
        super().__init__(device)
        self.bytes_written = 0
        self.commands = []
        self._reader = FrameReader(1 << 20)

    def write(self, data):
        self.bytes_written += len(data)
        self.commands += [decode_request(frame).command for frame in self._reader.feed(data)]
        super().write(data)


def backend_on(config=CONFIG, **options):
    recorder = Recorder(DeviceModel(config, **options))
    return FpgaBackend(recorder), recorder


# --- bit-exact with golden through the public API --------------------------------------------

CASES = [
    dict(num_layers=1),
    dict(num_layers=2),
    dict(num_layers=1, bidirectional=True),
    dict(num_layers=2, bidirectional=True),
    dict(num_layers=1, reverse=True),
    dict(num_layers=2, linear_before_reset=False),
    dict(num_layers=2, bidirectional=True, linear_before_reset=False),
    dict(num_layers=1, reverse=True, linear_before_reset=False, bias=False),
    dict(num_layers=2, bias=False, batch_first=True),
]


@pytest.mark.parametrize("case", range(len(CASES)))
@pytest.mark.parametrize("ragged", [False, True])
@pytest.mark.parametrize("with_h0", [False, True])
def test_fpga_equals_golden(rng, case, ragged, with_h0):
    kwargs = CASES[case]
    backend, recorder = backend_on()
    input_size, hidden = int(rng.integers(1, 9)), int(rng.integers(1, 11))
    steps, batch = int(rng.integers(1, 13)), int(rng.integers(1, 6))
    seed = int(rng.integers(1 << 30))
    on_device = GRU(input_size, hidden, device=backend, seed=seed, **kwargs)
    reference = GRU(input_size, hidden, device="golden", seed=seed, **kwargs)
    for _ in range(2):
        x = rng.normal(0, 1, (steps, batch, input_size))
        if kwargs.get("batch_first"):
            x = x.transpose(1, 0, 2)
        states = on_device.num_layers * (2 if on_device.bidirectional else 1)
        h0 = rng.uniform(-1, 1, (states, batch, hidden)) if with_h0 else None
        lengths = rng.integers(1, steps + 1, batch) if ragged else None
        output, h_n = on_device(x, h0, lengths=lengths)
        expected_output, expected_h_n = reference(x, h0, lengths=lengths)
        assert np.array_equal(output, expected_output)
        assert np.array_equal(h_n, expected_h_n)
        assert np.any(output != 0)
    # The weights went over once; only changed initial states are sent again.
    loads = recorder.commands.count(Command.LOAD)
    assert loads == states * (2 if with_h0 else 1)
    assert recorder.commands.count(Command.RUN) == 2


def test_fpga_glu_equals_golden(rng):
    backend, recorder = backend_on()
    for _ in range(6):
        shape = tuple(int(n) for n in rng.integers(1, 6, rng.integers(1, 4)))
        dim = int(rng.integers(-len(shape), len(shape)))
        shape = shape[:dim % len(shape)] + (2 * shape[dim],) + shape[dim % len(shape) + 1:]
        x = rng.normal(0, 2, shape)
        assert np.array_equal(GLU(dim, device=backend)(x), GLU(dim, device="golden")(x))
    # 30 channels: more than the device's GLU unit holds (max_hidden_size 12), so 3 pieces.
    sent = recorder.commands.count(Command.GLU)
    x = rng.normal(0, 2, (60, 3))
    assert np.array_equal(GLU(0, device=backend)(x), GLU(0, device="golden")(x))
    assert recorder.commands.count(Command.GLU) == sent + 3
    assert GLU(device=backend)(np.zeros((0, 4))).shape == (0, 2)


def test_large_batches_are_split_into_requests_that_fit(rng):
    # 6 sequences: more than max_batch 4, and 57 steps of 8 inputs, more than 400 bytes.
    config = BuildConfig(max_input_size=8, max_hidden_size=8, max_batch=4, max_steps=16)
    backend, recorder = backend_on(config, max_payload=400)
    x = rng.normal(0, 1, (16, 6, 8))
    lengths = np.array([16, 3, 16, 9, 1, 12])
    h0 = rng.uniform(-1, 1, (2, 6, 4))
    on_device = GRU(8, 4, bidirectional=True, device=backend, seed=3)
    reference = GRU(8, 4, bidirectional=True, device="golden", seed=3)
    for got, expected in zip(on_device(x, h0, lengths), reference(x, h0, lengths)):
        assert np.array_equal(got, expected)
    assert recorder.commands.count(Command.RUN) == 3
    x = rng.normal(0, 1, (3, 50, 4))
    assert np.array_equal(GLU(device=backend)(x), GLU(device="golden")(x))
    assert recorder.commands.count(Command.GLU) == 4


def test_changed_weights_are_loaded_again(rng):
    backend, recorder = backend_on()
    x = rng.normal(0, 1, (5, 2, 3))
    gru = GRU(3, 4, device=backend, seed=1)
    gru(x)
    gru(x)
    assert recorder.commands.count(Command.LOAD) == 1
    gru.load_weights(GRU(3, 4, device="golden", seed=2).weights)
    assert np.array_equal(gru(x)[0], GRU(3, 4, device="golden", seed=2)(x)[0])
    assert recorder.commands.count(Command.LOAD) == 2


def test_weights_lost_by_the_device_are_loaded_again(rng, caplog):
    backend, recorder = backend_on()
    x = rng.normal(0, 1, (5, 2, 3))
    gru = GRU(3, 4, device=backend, seed=1)
    first = gru(x)
    recorder.device.feed(protocol.encode_request(Command.RESET, 200))
    with caplog.at_level(logging.WARNING, logger="gatework"):
        again = gru(x)
    assert "no longer held the weights" in caplog.text
    assert all(np.array_equal(a, b) for a, b in zip(first, again))


# --- refusals before anything is sent --------------------------------------------------------

ONE_WAY = BuildConfig(lanes=4, max_input_size=24, max_hidden_size=12, max_batch=6,
                      max_steps=16, max_layers=2, bidirectional=False)


@pytest.mark.parametrize("config, kwargs, steps, message", [
    (CONFIG, dict(input_size=25, hidden_size=4), 5, "input_size 25 exceeds the device's "
                                                   "max_input_size 24"),
    (CONFIG, dict(input_size=4, hidden_size=13), 5, "hidden_size 13 exceeds the device's "
                                                    "max_hidden_size 12"),
    (CONFIG, dict(input_size=4, hidden_size=4, num_layers=3), 5, "num_layers 3 exceeds the "
                                                                 "device's max_layers 2"),
    (CONFIG, dict(input_size=4, hidden_size=4), 17, "the longest sequence 17 exceeds the "
                                                    "device's max_steps 16"),
    (BuildConfig(max_input_size=10, max_hidden_size=8), dict(input_size=4, hidden_size=6,
                                                             num_layers=2, bidirectional=True),
     5, r"the input size of the layers after the first \(directions \* hidden_size\) 12 "
        r"exceeds the device's max_input_size 10"),
    (ONE_WAY, dict(input_size=4, hidden_size=4, bidirectional=True), 5,
     "bidirectional, but this build has one direction"),
    (BuildConfig(formats=DEFAULT_FORMATS.replace(data="q5.11")), dict(input_size=4,
                                                                      hidden_size=4), 5,
     r"the model computes in data q4.12.*device was built for data q5.11"),
])
def test_a_model_that_does_not_fit_is_refused_before_sending(rng, config, kwargs, steps,
                                                             message):
    backend, recorder = backend_on(config)
    sent = recorder.bytes_written
    gru = GRU(device=backend, seed=0, **kwargs)
    x = rng.normal(0, 1, (steps, 2, kwargs["input_size"]))
    with pytest.raises(ValueError, match=message):
        gru(x)
    assert recorder.bytes_written == sent


def test_weights_larger_than_the_receive_buffer_are_refused_before_sending():
    backend, recorder = backend_on(max_payload=500)
    sent = recorder.bytes_written
    with pytest.raises(ValueError, match="a request of 1591 bytes; the device accepts at most "
                                         "max_payload 500"):
        GRU(8, 12, device=backend, seed=0)(np.zeros((2, 1, 8)))
    assert recorder.bytes_written == sent


# --- the client against the model ------------------------------------------------------------

def quantized(rng, input_size, hidden, **kwargs):
    gru = GRU(input_size, hidden, device="numpy", seed=int(rng.integers(1 << 30)), **kwargs)
    return quantize_gru(gru.weights, DEFAULT_FORMATS)


def load_all(client, qweights, h0=None):
    weights = qweights.weights
    for k, layer in enumerate(weights.layers):
        for d, cell in enumerate(layer):
            state = None if h0 is None else h0[k * weights.num_directions + d]
            client.load(k, d, cell, weights.linear_before_reset, state)


def test_run_flags_final_only_glu_and_h0_match_golden(rng):
    client = Client(LoopbackTransport(DeviceModel(CONFIG)))
    qweights = quantized(rng, 5, 6, num_layers=2, bidirectional=True)
    lengths = np.array([4, 1, 7])
    x = DEFAULT_FORMATS.data.quantize(rng.normal(0, 1, (int(lengths.sum()), 5)))
    h0 = DEFAULT_FORMATS.data.quantize(rng.uniform(-1, 1, (4, 3, 6)))
    load_all(client, qweights, h0)
    expected, expected_h_n = gru_fixed(qweights, transposer.pack(x, lengths), h0, lengths)
    expected = transposer.unpack(expected, lengths)
    common = dict(num_layers=2, hidden_size=6, direction="bidirectional", use_h0=True)
    full = client.run(x, lengths, **common)
    assert np.array_equal(full.outputs, expected) and np.array_equal(full.h_n, expected_h_n)
    final = client.run(x, lengths, final_only=True, **common)
    assert final.outputs is None and np.array_equal(final.h_n, expected_h_n)
    gated = client.run(x, lengths, glu=True, **common)
    assert np.array_equal(gated.outputs, glu_fixed(expected, -1, DEFAULT_FORMATS))
    assert gated.outputs.shape == (12, 6)
    without_h0 = client.run(x, lengths, num_layers=2, hidden_size=6, direction="bidirectional")
    assert not np.array_equal(without_h0.h_n, expected_h_n)


def test_device_statuses_reach_the_caller(rng):
    model = DeviceModel(CONFIG)
    client = Client(LoopbackTransport(model))
    qweights = quantized(rng, 3, 4)
    x = np.zeros((5, 3), dtype=np.int64)

    def run(**kwargs):
        return client.run(x, np.array([5]), num_layers=1, hidden_size=4, **kwargs)
    with pytest.raises(DeviceError, match="NOT_LOADED") as error:
        run()
    assert error.value.status == Status.NOT_LOADED
    load_all(client, qweights)
    run()
    for mismatch in (dict(linear_before_reset=False), dict(use_h0=True)):
        with pytest.raises(DeviceError, match="NOT_LOADED"):
            run(**mismatch)
    client.reset()
    assert model.loaded_slots() == []
    with pytest.raises(DeviceError, match="NOT_LOADED"):
        run()
    # Raw requests the client's own checks would have refused.
    beyond = LoadRequest(CONFIG.max_layers, 0, qweights.weights.layers[0][0])
    with pytest.raises(DeviceError, match="BEYOND_MAXIMA"):
        client.request(Command.LOAD, protocol.encode_load_request(beyond))
    with pytest.raises(DeviceError, match="UNKNOWN_COMMAND.*another protocol version"):
        client.request(0x42)
    with pytest.raises(DeviceError, match="MALFORMED"):
        client.request(Command.RESET, b"\x00")
    with pytest.raises(DeviceError, match="BEYOND_MAXIMA"):
        client.request(Command.GLU, protocol.encode_glu_request(np.zeros((1, 26), np.int64)))
    with pytest.raises(ValueError, match="hidden_size 13 exceeds the device's max_hidden_size"):
        client.run(x, np.array([5]), num_layers=1, hidden_size=13)
    with pytest.raises(ValueError, match="GLU of 13 channels exceeds the device's "
                                         "max_hidden_size 12"):
        client.glu(np.zeros((1, 26), np.int64))
    assert model.answered[Status.OK] == 4


def test_responses_beyond_a_frame_are_refused(rng):
    config = BuildConfig(max_input_size=1, max_hidden_size=64, max_batch=8, max_steps=128)
    client = Client(LoopbackTransport(DeviceModel(config)))
    load_all(client, quantized(rng, 1, 64, bidirectional=True))
    # 8 x 128 steps of 1 input: a small request, but 8 * 128 * 128 outputs of 2 bytes, and
    # 2 * 8 * 64 final states.
    lengths = np.full(8, 128)
    arguments = (np.zeros((1024, 1), dtype=np.int64), lengths)
    with pytest.raises(ValueError, match="the RUN response would carry 264192 bytes"):
        client.run(*arguments, num_layers=1, hidden_size=64, direction="bidirectional")
    payload = protocol.encode_run_request(RunRequest(*arguments, num_layers=1, hidden_size=64,
                                                     direction="bidirectional"))
    with pytest.raises(DeviceError, match="TOO_LARGE"):
        client.request(Command.RUN, payload)


def test_a_device_of_another_protocol_version_is_refused():
    class FutureDevice(DeviceModel):
        def _info(self, payload):
            return b"\x02" + super()._info(payload)[1:]
    with pytest.raises(ProtocolError, match="speaks protocol version 2"):
        FpgaBackend(LoopbackTransport(FutureDevice(CONFIG)))


# --- the socket:// path ----------------------------------------------------------------------

def test_socket_url_through_pyserial(rng):
    model = DeviceModel(CONFIG)
    with serve_tcp(model) as port:
        backend = fpga_backend(f"fpga:socket://127.0.0.1:{port}", timeout=5.0)
        try:
            assert isinstance(backend.client.transport, SerialTransport)
            x = rng.normal(0, 1, (9, 3, 5))
            lengths = np.array([9, 4, 6])
            on_device = GRU(5, 7, 2, bidirectional=True, device=backend, seed=5)
            reference = GRU(5, 7, 2, bidirectional=True, device="golden", seed=5)
            for got, expected in zip(on_device(x, lengths=lengths), reference(x, lengths=lengths)):
                assert np.array_equal(got, expected)
        finally:
            backend.close()
    assert model.answered[Status.OK] == 1 + 4 + 1


def test_serve_tcp_refuses_other_than_loopback():
    with pytest.raises(ValueError, match="loopback address only"):
        with serve_tcp(DeviceModel(CONFIG), host="0.0.0.0"):
            pass


def test_fpga_device_strings():
    with pytest.raises(ValueError, match="'fpga:URL'"):
        fpga_backend("fpga:")
    with pytest.raises(ConnectionError, match="could not open '/nonexistent/tty'.*plugged in"):
        fpga_backend("fpga:/nonexistent/tty")


def test_error_answers_echo_what_the_protocol_says():
    model = DeviceModel(CONFIG, max_payload=64)

    def answer(data):
        (frame,) = FrameReader(1 << 20).feed(model.feed(data))
        response = protocol.decode_response(frame)
        return response.status, response.command, response.sequence

    bad_crc = bytearray(protocol.encode_request(Command.RUN, 42, b"\x01\x02\x03"))
    bad_crc[-2] ^= 0x01
    assert answer(bytes(bad_crc)) == (Status.BAD_CRC, Command.RUN, 42)
    # Too long: the first two body bytes as a streaming decoder sees them, also when the
    # sequence byte is a zero that COBS encodes.
    assert answer(protocol.encode_request(Command.GLU, 7, bytes(200))) == (
        Status.TOO_LARGE, Command.GLU, 7)
    assert answer(protocol.encode_request(Command.GLU, 0, bytes(200))) == (
        Status.TOO_LARGE, Command.GLU, 0)
    assert answer(bytes([0x04, 0x33, 0x09]) + bytes([0x05] * 300) + b"\x00") == (
        Status.TOO_LARGE, 0x33, 0x09)
    assert answer(b"\x05\x01\x02\x00") == (Status.BAD_FRAME, 0, 0)
    assert answer(b"\x00\x00" + protocol.encode_request(Command.INFO, 9)) == (
        Status.OK, Command.INFO, 9)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_a_build_without_glu_is_reported_and_refused(bidirectional):
    config = BuildConfig(lanes=2, max_input_size=8, max_hidden_size=4, max_batch=2,
                         max_steps=4, max_layers=1, bidirectional=bidirectional, glu=False)
    model = DeviceModel(config)
    backend = FpgaBackend(LoopbackTransport(model))
    assert backend.info.config == config
    with pytest.raises(ValueError, match="built without a GLU unit"):
        GLU(device=backend)(np.zeros((2, 4)))
    with pytest.raises(DeviceError, match="BEYOND_MAXIMA"):
        backend.client.request(Command.GLU,
                               protocol.encode_glu_request(np.zeros((1, 4), np.int64)))
    # Only bits 0 to 4 of INFO's flags byte are defined (bits 2-3: the lanes' width, bit 4: a
    # simulation).
    info = bytearray(protocol.encode_info_response(backend.info))
    assert info[13] == (1 if bidirectional else 0) | 2
    info[13] |= 0x20
    with pytest.raises(ProtocolError, match="flags byte is 0x2"):
        protocol.decode_info_response(bytes(info))
