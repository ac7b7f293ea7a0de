"""How the host's :class:`~gatework.host.client.Client` matches responses to its requests,
and what it says when a device fails it."""

import pytest

from gatework.golden import messages as protocol
from gatework.golden.messages import DeviceError, FrameReader
from gatework.golden.protocol import Command, Status
from gatework.host.client import Client
from gatework.host.transport import LoopbackTransport


# --- how the client matches responses --------------------------------------------------------

class ScriptedDevice:
    """Answers every request with responses made by ``script(request)``."""

    def __init__(self, script):
        self.script = script
        self.reader = FrameReader(1000)
        self.requests = []

    def feed(self, data):
        out = b""
        for frame in self.reader.feed(data):
            request = protocol.decode_request(frame)
            self.requests.append(request)
            out += self.script(request)
        return out


def test_client_numbers_requests_modulo_256():
    def echo(request):
        return protocol.encode_response(request.command, request.sequence, Status.OK,
                                        bytes([request.sequence]))
    device = ScriptedDevice(echo)
    client = Client(LoopbackTransport(device), timeout=0.5)
    answers = [client.request(Command.INFO)[0] for _ in range(300)]
    assert answers == [n % 256 for n in range(300)]
    assert [r.sequence for r in device.requests] == answers


@pytest.mark.parametrize("wrong", ["sequence", "command"])
def test_client_rejects_a_response_to_another_request(wrong):
    def misdirected(request):
        sequence = request.sequence + (wrong == "sequence")
        command = Command.RESET if wrong == "command" else request.command
        return protocol.encode_response(command, sequence, Status.OK, b"wrong")
    client = Client(LoopbackTransport(ScriptedDevice(misdirected)), timeout=0.05)
    with pytest.raises(TimeoutError, match=r"to GLU \(sequence 0\) within 0.05 s; 1 response"
                                           r"\(s\) to other requests were discarded; check"):
        client.request(Command.GLU, b"x")


def test_client_takes_its_response_after_unrelated_ones():
    def late_then_right(request):
        return (protocol.encode_response(request.command, request.sequence - 1, Status.OK, b"old")
                + protocol.encode_response(request.command, request.sequence, Status.OK, b"new"))
    client = Client(LoopbackTransport(ScriptedDevice(late_then_right)), timeout=0.5)
    assert client.request(Command.GLU, b"x") == b"new"


def test_client_settles_an_untrusted_error_with_a_fence():
    # A BAD_FRAME before the answer concerned garbage: the request still succeeds.
    def garbage_then_answer(request):
        return (protocol.encode_response(0, 0, Status.BAD_FRAME)
                + protocol.encode_response(request.command, request.sequence, Status.OK, b"ok"))
    device = ScriptedDevice(garbage_then_answer)
    assert Client(LoopbackTransport(device), timeout=0.5).request(Command.GLU, b"x") == b"ok"
    assert [r.command for r in device.requests] == [Command.GLU, Command.INFO]

    # A BAD_CRC and then only the fence's answer: the request was lost.
    def lost(request):
        if request.command == Command.INFO:
            return protocol.encode_response(Command.INFO, request.sequence, Status.OK, b"")
        return protocol.encode_response(request.command, 99, Status.BAD_CRC)
    with pytest.raises(DeviceError, match="answered GLU with BAD_CRC.*check the link") as error:
        Client(LoopbackTransport(ScriptedDevice(lost)), timeout=0.5).request(Command.GLU, b"x")
    assert error.value.status == Status.BAD_CRC


def test_device_error_names_status_and_what_to_do():
    def refuse(request):
        return protocol.encode_response(request.command, request.sequence, Status.NOT_LOADED)
    client = Client(LoopbackTransport(ScriptedDevice(refuse)), timeout=0.5)
    with pytest.raises(DeviceError, match="answered RUN with NOT_LOADED.*LOAD them first"):
        client.request(Command.RUN, b"x")


def test_timeout_names_device_command_and_seconds():
    client = Client(LoopbackTransport(ScriptedDevice(lambda request: b"")), timeout=0.02)
    with pytest.raises(TimeoutError, match=r"no response from loopback to ScriptedDevice to "
                                           r"RESET \(sequence 0\) within 0.02 s; check that "
                                           r"the board is powered"):
        client.reset()
