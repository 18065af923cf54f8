"""The FTP control core without sockets: bytes in, reply bytes out, transfers handed over and woken back."""

from __future__ import annotations

import socket
import threading

import pytest

from servers.contracts import monotonic
from servers.ftp.control import ControlCore
from servers.ftp.limits import ConnectionLimiter
from servers.ftp.server import FTPContext
from servers.ftp.session import (
    TRANSFER_ABORTED,
    TRANSFER_COMPLETE,
    FTPSettings,
    SendFile,
    TransferResult,
)
from servers.ftp.users import Authorizer
from servers.stats import ServerStats

pytestmark = pytest.mark.timeout(10)


class FakeDataLink:
    """Records the set-up calls; PASV gets a fixed port, or fails when told to."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []
        self.fail_with: OSError | None = None

    def open_passive(self, family: socket.AddressFamily, host: str) -> int:
        self.calls.append(("passive", family, host))
        if self.fail_with is not None:
            raise self.fail_with
        return 50000 + 2 * 256 + 3

    def use_active(self, host: str, port: int, local_host: str) -> None:
        self.calls.append(("active", host, port, local_host))

    def close(self) -> None:
        self.calls.append(("close",))


class Wakes:
    def __init__(self) -> None:
        self.count = 0
        self.event = threading.Event()

    def __call__(self) -> None:
        self.count += 1
        self.event.set()


@pytest.fixture
def make_core(tmp_path):
    (tmp_path / "song.txt").write_bytes(b"la la la\n")
    cores: list[ControlCore] = []

    def make(
        *, local_host="127.0.0.1", client=("127.0.0.1", 40000), limiter=None, **settings
    ) -> tuple[ControlCore, FakeDataLink, Wakes, list[str]]:
        context = FTPContext(
            root=str(tmp_path),
            authorizer=Authorizer({}, allow_anonymous=True),
            settings=FTPSettings(**{"login_delay": 0.2, "idle_timeout": 5.0, **settings}),
            stats=ServerStats(),
            limiter=limiter or ConnectionLimiter(8),
        )
        data, wakes, interrupts = FakeDataLink(), Wakes(), []
        core = ControlCore(
            context,
            client,
            local_host,
            data,
            wake=wakes,
            interrupt=lambda: interrupts.append("ABOR"),
        )
        cores.append(core)
        return core, data, wakes, interrupts

    yield make
    for core in cores:
        core.close()


def replies(data: bytes) -> list[str]:
    """The final reply lines (``NNN text``) in ``data``."""
    lines = data.decode("utf-8", "surrogateescape").split("\r\n")
    return [line for line in lines if line[:3].isdigit() and line[3:4] == " "]


def codes(data: bytes) -> list[str]:
    return [reply[:3] for reply in replies(data)]


def say(core: ControlCore, data: bytes) -> bytes:
    core.receive(data)
    return core.advance()


def logged_in(make_core, **options):
    core, data, wakes, interrupts = make_core(**options)
    assert codes(core.start()) == ["220"]
    assert codes(say(core, b"USER anonymous\r\nPASS guest@\r\nTYPE I\r\n")) == ["331", "230", "200"]
    return core, data, wakes, interrupts


def start_retr(core: ControlCore) -> SendFile:
    assert codes(say(core, b"PASV\r\nRETR song.txt\r\n")) == ["227", "150"]
    action = core.take_transfer()
    assert isinstance(action, SendFile) and action.path.endswith("song.txt")
    assert core.take_transfer() is None  # handed over once
    return action


def test_pipelined_and_split_lines_answer_in_order(make_core):
    core, *_ = make_core()
    core.start()
    assert codes(say(core, b"USER anonymous\r\nPASS x\r\nPWD\r\nSY")) == ["331", "230", "257"]
    assert say(core, b"ST\r") == b""
    assert replies(say(core, b"\n")) == ["215 UNIX Type: L8"]


def test_passive_address_is_the_local_host_the_client_reached(make_core):
    core, data, *_ = logged_in(make_core, local_host="127.0.0.5")
    assert replies(say(core, b"PASV\r\n")) == ["227 Entering passive mode (127,0,0,5,197,83)."]
    assert data.calls == [("passive", socket.AF_INET, "127.0.0.5")]
    assert replies(say(core, b"EPSV\r\n")) == ["229 Entering extended passive mode (|||50515|)."]


def test_ipv6_control_connection_listens_on_ipv6(make_core):
    core, data, *_ = logged_in(make_core, local_host="::1", client=("::1", 40000, 0, 0))
    assert codes(say(core, b"PASV\r\n")) == ["522"]  # IPv4 only
    assert codes(say(core, b"EPSV\r\n")) == ["229"]
    assert data.calls == [("passive", socket.AF_INET6, "::1")]


def test_passive_failure_is_a_425_and_the_session_goes_on(make_core):
    core, data, *_ = logged_in(make_core)
    data.fail_with = OSError(98, "Address already in use")
    assert replies(say(core, b"PASV\r\nNOOP\r\n")) == [
        "425 Can't open passive connection: Address already in use.",
        "200 NOOP ok.",
    ]


def test_active_mode_connects_from_the_local_host(make_core):
    core, data, *_ = logged_in(make_core)
    assert codes(say(core, b"PORT 127,0,0,1,200,10\r\n")) == ["200"]
    assert data.calls[-1] == ("active", "127.0.0.1", 200 * 256 + 10, "127.0.0.1")


def test_transfer_result_comes_back_through_one_wake_from_another_thread(make_core):
    core, _, wakes, _ = logged_in(make_core)
    start_retr(core)
    # While the transfer runs nothing is due: no deadline, so a loop has no reason to wake.
    assert core.deadline() is None
    assert codes(say(core, b"PWD\r\nNOOP\r\n")) == []  # queued behind the transfer
    assert core.advance() == b""
    worker = threading.Thread(
        target=core.transfer_finished, args=(TransferResult(TRANSFER_COMPLETE, 9),)
    )
    worker.start()
    worker.join()
    assert wakes.event.wait(5) and wakes.count == 1
    assert codes(core.advance()) == ["226", "257", "200"]
    assert core.deadline() is not None  # the idle timer runs again


def test_plain_abor_line_interrupts_the_transfer_once(make_core):
    core, _, _, interrupts = logged_in(make_core)
    start_retr(core)
    assert say(core, b"ABOR\r\n") == b""
    assert core.abort_requested and interrupts == ["ABOR"]
    core.transfer_finished(TransferResult(TRANSFER_ABORTED, 3, "ABOR"))
    assert replies(core.advance()) == [
        "426 Transfer aborted via ABOR; data connection closed.",
        "226 ABOR command successful.",
    ]
    assert not core.abort_requested


@pytest.mark.parametrize(
    "chunks",
    [
        [b"\xff\xf4\xff\xf2ABOR\r\n"],  # Telnet IP and Synch, urgent byte kept inline
        [b"\xff\xf4\xff", b"ABOR\r\n"],  # the DM was urgent and left out of band
        [b"ABOR\r"],  # the LF was urgent and left out of band: never arrives
        [b"AB", b"OR\r", b"\n"],  # arrives late after all
    ],
)
def test_abor_however_the_client_sends_it(make_core, chunks):
    core, _, _, interrupts = logged_in(make_core)
    start_retr(core)
    for chunk in chunks:
        core.receive(chunk)
    assert interrupts == ["ABOR"]
    core.transfer_finished(TransferResult(TRANSFER_ABORTED, 0, "ABOR"))
    assert codes(core.advance()) == ["426", "226"]
    # Whatever came of ABOR's LF, the next command is the next command, not an empty one.
    assert replies(say(core, b"NOOP\r\n")) == ["200 NOOP ok."]


def test_abor_racing_the_end_of_the_transfer_still_gets_its_answer(make_core):
    core, *_ = logged_in(make_core)
    start_retr(core)
    core.transfer_finished(TransferResult(TRANSFER_COMPLETE, 9))
    assert say(core, b"ABOR\r\n").endswith(b"226 ABOR: the transfer had completed.\r\n")


def test_abor_with_no_transfer_is_a_command(make_core):
    core, data, *_ = logged_in(make_core)
    assert replies(say(core, b"PASV\r\nABOR\r")) == [
        "227 Entering passive mode (127,0,0,1,197,83).",
        "225 No transfer to abort; data connection closed.",
    ]
    assert data.calls[-1] == ("close",)


def test_overlong_line_is_answered_once_and_the_next_line_served(make_core):
    core, *_ = make_core(max_line_length=64)
    core.start()
    assert codes(say(core, b"X" * 100)) == ["500"]
    assert codes(say(core, b"more of it\r\nNOOP\r\n")) == ["200"]
    assert codes(say(core, b"NOOP " + b"y" * 100 + b"\r\nNOOP\r\n")) == ["500", "200"]


def test_failed_login_is_held_on_a_timer_with_what_follows(make_core):
    core, *_ = make_core()
    core.start()
    core.receive(b"USER alice\r\nPASS wrong\r\nNOOP\r\n")
    now = monotonic()
    assert codes(core.advance(now)) == ["331"]
    assert core.deadline() == pytest.approx(now + 0.2)
    assert core.advance(now + 0.1) == b""
    assert codes(core.advance(now + 0.2)) == ["530", "200"]


def test_idle_timeout_closes_with_421(make_core):
    core, *_ = make_core(idle_timeout=1.0)
    core.start()
    deadline = core.deadline()
    assert core.advance(deadline - 0.5) == b""
    assert codes(core.advance(deadline)) == ["421"] and core.should_close
    assert core.deadline() is None


def test_admission_refuses_with_421_and_frees_the_slot_on_close(make_core):
    limiter = ConnectionLimiter(1)
    first, *_ = make_core(limiter=limiter)
    assert codes(first.start()) == ["220"]
    second, *_ = make_core(limiter=limiter)
    refusal = second.start()
    assert replies(refusal) == ["421 Sorry, too many connections (limit 1); try again later."]
    assert second.should_close
    first.close()
    first.close()  # idempotent
    third, *_ = make_core(limiter=limiter)
    assert codes(third.start()) == ["220"]
