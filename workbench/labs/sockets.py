"""Socket labs (course 1.3.4 TCP套接字细节, 3.2.2 阻塞IO, 3.2.3 非阻塞IO): message boundaries, closing, blocking."""

from __future__ import annotations

import contextlib
import errno
import queue
import select
import socket
import threading
import time
from collections.abc import Iterator

from workbench.labs.base import Lab, LabContext, Param

LOOPBACK = "127.0.0.1"
#: Longest any single wait of these labs may block, so a broken kernel or peer cannot hang a lab.
SAFETY_TIMEOUT = 5.0


def shown(data: bytes, limit: int = 48) -> str:
    """Bytes as the student would type them: 'hello\\n', cut short when long."""
    text = repr(data.decode("utf-8", "replace"))
    return text if len(text) <= limit else text[: limit - 4] + "...'"


def error_name(error: OSError) -> str:
    """``ConnectionResetError [ECONNRESET]``: the exception and the errno's symbolic name."""
    code = errno.errorcode.get(error.errno or 0, str(error.errno))
    return f"{type(error).__name__} [{code}]"


@contextlib.contextmanager
def connected_pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    """A real TCP connection on loopback: (client end, server end); both closed after."""
    with socket.create_server((LOOPBACK, 0)) as listener:
        client = socket.create_connection(listener.getsockname(), timeout=SAFETY_TIMEOUT)
        try:
            server, _ = listener.accept()
        except BaseException:
            client.close()
            raise
    with client, server:
        server.settimeout(SAFETY_TIMEOUT)
        yield client, server


def _milliseconds(seconds: float) -> float:
    return round(seconds * 1000, 2)


class FramingLab(Lab):
    name = "framing"
    title = "TCP is a byte stream: three sends, how many recv()s?"
    course_term = "粘包 (tcp粘包问题)"
    course_section = "1.3.4"
    explanation = (
        "TCP carries a stream of bytes, not messages: the kernel keeps what arrives in the "
        "receive buffer, and one recv() takes whatever is there, so three send()s read late "
        "come out as one chunk (粘包), while a receiver that keeps up may see them apart — by "
        "timing, not by design. UDP sends datagrams: each recvfrom() returns exactly one "
        "sendto(), boundaries kept (1.3.5: tcp套接字会有粘包,udp套接字有消息边界). The cure "
        "the course gives is to add boundaries yourself (人为的添加消息边界): with split_lines "
        "the sender ends each message with a newline and the receiver splits the stream on it."
    )
    order = 1.34
    params = (
        Param(
            "delay_ms",
            0,
            "pause between the three sends; 0 = the receiver reads only after all three",
            minimum=0,
            maximum=1000,
        ),
        Param("split_lines", False, "end each message with '\\n' and frame the stream on it"),
    )

    MESSAGES = (b"hello", b"how are you", b"bye")

    def run(self, ctx: LabContext) -> None:
        delay = int(ctx["delay_ms"]) / 1000
        split_lines = bool(ctx["split_lines"])
        messages = [m + b"\n" if split_lines else m for m in self.MESSAGES]

        ctx.line("TCP: one connection on loopback; the receiver runs in its own thread")
        chunks = self._tcp(ctx, messages, delay)
        if chunks is None:
            return
        datagrams = self._udp(ctx, messages)
        if datagrams is None:
            return

        stream = b"".join(chunks)
        if split_lines:
            *complete, _rest = stream.split(b"\n")
            for number, message in enumerate(complete, 1):
                ctx.line(f"frame on '\\n' -> message {number}: {shown(message)}")
            wanted = [m.rstrip(b"\n") for m in messages]
        else:
            # A receiver without framing can only take each recv() as one message.
            complete = chunks
            wanted = messages
        recovered = sum(1 for message in wanted if message in complete)

        ctx.figure("tcp_sends", "TCP send() calls", len(messages))
        ctx.figure("tcp_recv_chunks", "TCP recv() chunks with data", len(chunks))
        ctx.figure("tcp_bytes", "TCP bytes received", len(stream), "bytes")
        ctx.figure("udp_datagrams", "UDP datagrams received", len(datagrams))
        ctx.figure("messages_recovered", "TCP messages the receiver got back whole", recovered)

        kept = chunks == messages
        how = "framing on '\\n'" if split_lines else "taking each recv() as a message"
        ctx.verdict(
            f"TCP turned {len(messages)} sends into {len(chunks)} recv() chunk(s)"
            + (
                " — each its own, but only by timing"
                if kept
                else " — the boundaries were lost (粘包)"
            )
            + f"; UDP returned {len(datagrams)} datagram(s) for {len(messages)} sendto()s; "
            f"{how} recovered {recovered} of {len(messages)} messages."
        )

    def _tcp(self, ctx: LabContext, messages: list[bytes], delay: float) -> list[bytes] | None:
        arrivals: queue.Queue[tuple[float, bytes | OSError]] = queue.Queue()
        reader_may_start = threading.Event()
        chunks: list[bytes] = []
        with connected_pair() as (sender, receiver):
            started = time.perf_counter()
            reader = threading.Thread(
                target=_read_until_eof,
                args=(receiver, reader_may_start, arrivals, started),
                name="framing-receiver",
                daemon=True,
            )
            if delay:
                reader_may_start.set()
            reader.start()
            offsets: list[tuple[int, int]] = []
            sent = 0

            def report_arrivals(until: float) -> bool:
                """Show the chunks that arrive before ``until``; True once the stream ended."""
                while (remaining := until - time.perf_counter()) > 0:
                    try:
                        at, data = arrivals.get(timeout=remaining)
                    except queue.Empty:
                        return False
                    if isinstance(data, OSError):
                        ctx.line(f"recv -> {error_name(data)} {data.strerror}")
                        return True
                    if not data:
                        ctx.line(f"recv -> 0 bytes b'': the sender is done (t={at * 1000:.1f} ms)")
                        return True
                    chunks.append(data)
                    ctx.line(f"recv -> {len(data)} bytes {shown(data)} (t={at * 1000:.1f} ms)")
                return False

            try:
                for number, message in enumerate(messages, 1):
                    if ctx.cancelled:
                        ctx.line("cancelled")
                        return None
                    if number > 1 and delay:
                        report_arrivals(time.perf_counter() + delay)
                    at = time.perf_counter() - started
                    sender.sendall(message)
                    offsets.append((sent, sent + len(message)))
                    sent += len(message)
                    ctx.line(
                        f"send #{number}: {len(message)} bytes {shown(message)} (t={at * 1000:.1f} ms)"
                    )
                if not delay:
                    ctx.line("receiver starts reading now, after all three sends")
                    reader_may_start.set()
                sender.shutdown(socket.SHUT_WR)
                ctx.line("sender: shutdown(SHUT_WR) — no more bytes (FIN)")
                report_arrivals(time.perf_counter() + SAFETY_TIMEOUT)
            finally:
                # On every way out (a cancel too), end the stream so the reader's recv returns.
                with contextlib.suppress(OSError):
                    sender.shutdown(socket.SHUT_WR)
                reader_may_start.set()
                reader.join(SAFETY_TIMEOUT)

        rows = []
        position = 0
        for number, chunk in enumerate(chunks, 1):
            end = position + len(chunk)
            parts = []
            for send_number, (first, last) in enumerate(offsets, 1):
                if first < end and position < last:
                    whole = position <= first and last <= end
                    parts.append(f"#{send_number}" + ("" if whole else " (part)"))
            rows.append((f"recv #{number}", len(chunk), shown(chunk), " + ".join(parts)))
            position = end
        ctx.table(
            "TCP: which send's bytes landed in which recv() chunk",
            ("chunk", "bytes", "data", "from send"),
            rows,
        )
        return chunks

    def _udp(self, ctx: LabContext, messages: list[bytes]) -> list[bytes] | None:
        ctx.line("UDP: the same three messages as datagrams, read after all were sent")
        datagrams: list[bytes] = []
        with (
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as receiver,
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender,
        ):
            receiver.bind((LOOPBACK, 0))
            address = receiver.getsockname()
            for number, message in enumerate(messages, 1):
                sender.sendto(message, address)
                ctx.line(f"sendto #{number}: {len(message)} bytes {shown(message)}")
            if ctx.cancelled:
                ctx.line("cancelled")
                return None
            # Wait for the expected datagrams, then look once more without waiting:
            # an extra one would show here too.
            receiver.settimeout(1.0)
            while True:
                try:
                    data, peer = receiver.recvfrom(65536)
                except (TimeoutError, BlockingIOError):
                    break
                datagrams.append(data)
                ctx.line(f"recvfrom -> {len(data)} bytes {shown(data)} from port {peer[1]}")
                if len(datagrams) >= len(messages):
                    receiver.setblocking(False)
        return datagrams


def _read_until_eof(
    conn: socket.socket,
    may_start: threading.Event,
    arrivals: queue.Queue[tuple[float, bytes | OSError]],
    started: float,
) -> None:
    """The receiving side: every recv() result, with its time, until end of stream."""
    may_start.wait(SAFETY_TIMEOUT)
    while True:
        try:
            data = conn.recv(4096)
        except OSError as error:
            arrivals.put((time.perf_counter() - started, error))
            return
        arrivals.put((time.perf_counter() - started, data))
        if not data:
            return


class ClosingLab(Lab):
    name = "closing"
    title = "When the peer closes: recv() returns b'', send() breaks"
    course_term = "TCP套接字细节: recv返回空字串, BrokenPipeError"
    course_section = "1.3.4"
    explanation = (
        "Closing a TCP socket sends FIN: the other side's recv() first returns whatever was "
        "still buffered, then b'' (0 bytes) — every time it is called — which is how a server "
        "knows a client has gone (一端退出,另一端recv会立即返回一个空字串). Sending to a peer that "
        "has closed is different: the first send() succeeds, because it only copies the bytes "
        "into our kernel's buffer; the peer's kernel, having no socket for them, answers RST. "
        "From then on send() raises BrokenPipeError (EPIPE) (向已不存在的一端send则会产生"
        "BrokenPipeError). A peer that closes with unread data in its buffer sends RST at once "
        "instead of FIN: then recv() does not return b'' but raises ConnectionResetError "
        "(ECONNRESET), and the data the server had sent is lost."
    )
    order = 1.341
    params = (
        Param("sends", 4, "most send() calls to try after the peer closed", minimum=2, maximum=10),
    )

    def run(self, ctx: LabContext) -> None:
        ctx.line("A. the client says 'last words' and closes properly (FIN)")
        with connected_pair() as (client, server):
            client.sendall(b"last words")
            ctx.line("client: send 10 bytes 'last words'")
            client.close()
            ctx.line("client: close() — FIN sent, the client's socket is gone")
            eof_bytes, eof_calls = self._read_to_end(ctx, server)
            if ctx.cancelled:
                ctx.line("cancelled")
                return
            attempts, accepted, errors = self._send_to_the_departed(ctx, server)
        ctx.table("A. send() after the peer closed", ("call", "result", "meaning"), attempts)
        if ctx.cancelled:
            ctx.line("cancelled")
            return

        ctx.line("B. the server sends 'welcome'; the client closes without reading it (RST)")
        with connected_pair() as (client, server):
            server.sendall(b"welcome")
            ctx.line("server: send 7 bytes 'welcome'")
            # Wait until the bytes sit in the client's buffer, so close() finds them unread.
            select.select([client], [], [], SAFETY_TIMEOUT)
            client.close()
            ctx.line("client: close() with 7 bytes unread — its kernel sends RST, not FIN")
            watcher = select.poll()
            watcher.register(server, select.POLLIN | select.POLLERR | select.POLLHUP)
            for _, mask in watcher.poll(int(SAFETY_TIMEOUT * 1000)):
                ctx.line(f"server: poll -> {poll_flag_names(mask)}")
            try:
                data = server.recv(1024)
                reset_error = "none"
                ctx.line(f"server: recv -> {len(data)} bytes {shown(data)}")
            except OSError as error:
                reset_error = errno.errorcode.get(error.errno or 0, "?")
                ctx.line(f"server: recv -> {error_name(error)} {error.strerror}")

        ctx.figure("eof_recv_bytes", "bytes returned by recv() after the peer closed", eof_bytes)
        ctx.figure("recv_calls_to_eof", "recv() calls until b''", eof_calls)
        ctx.figure("sends_accepted", "send() calls that succeeded after the close", accepted)
        names = [errno.errorcode.get(e.errno or 0, "?") for e in errors]
        ctx.figure("first_send_error", "first send() error", names[0] if names else "none")
        ctx.figure("second_send_error", "next send() error", names[1] if len(names) > 1 else "none")
        ctx.figure("reset_recv_error", "recv() after a close with unread data", reset_error)
        said = ", then ".join(
            f"{type(e).__name__} ({n})" for e, n in zip(errors, names, strict=True)
        )
        ctx.verdict(
            f"After a proper close recv() returned {eof_bytes} bytes (b''); "
            f"{accepted} send() still succeeded, then "
            + (said if errors else "no send() failed")
            + f". After a close with unread data, recv() gave {reset_error} instead of b''."
        )

    @staticmethod
    def _read_to_end(ctx: LabContext, server: socket.socket) -> tuple[int, int]:
        """recv() until b''; returns (bytes of the last recv, calls made)."""
        for call in range(1, 10):
            data = server.recv(1024)
            if data:
                ctx.line(f"server: recv #{call} -> {len(data)} bytes {shown(data)}")
                continue
            ctx.line(f"server: recv #{call} -> bytes=0 b'' — end of stream: the peer closed")
            again = server.recv(1024)
            ctx.line(f"server: recv again -> bytes={len(again)} {again!r} — b'' every time now")
            return len(data), call
        return -1, 9

    @staticmethod
    def _send_to_the_departed(
        ctx: LabContext, server: socket.socket
    ) -> tuple[list[tuple[str, str, str]], int, list[OSError]]:
        attempts: list[tuple[str, str, str]] = []
        accepted = 0
        errors: list[OSError] = []
        watcher = select.poll()
        watcher.register(server, select.POLLERR | select.POLLHUP)
        for number in range(1, int(ctx["sends"]) + 1):
            if ctx.cancelled:
                break
            payload = f"are you there? #{number}".encode()
            try:
                count = server.send(payload)
            except OSError as error:
                errors.append(error)
                attempts.append((f"send #{number}", error_name(error), error.strerror or ""))
                ctx.line(f"server: send #{number} -> {error_name(error)} {error.strerror}")
                if len(errors) >= 2:
                    break
                continue
            accepted += 1
            attempts.append((f"send #{number}", f"{count} bytes", "copied to our kernel"))
            ctx.line(
                f"server: send #{number} -> {count} bytes accepted "
                "(only copied into our kernel's buffer)"
            )
            # Wait for the peer kernel's answer as an event, not a sleep.
            events = watcher.poll(1000)
            for _, mask in events:
                ctx.line(f"server: poll -> {poll_flag_names(mask)}: the peer answered RST")
            if not events:
                ctx.line("server: poll -> nothing within 1 s (no RST yet)")
        return attempts, accepted, errors


_POLL_FLAGS = ("POLLIN", "POLLPRI", "POLLOUT", "POLLERR", "POLLHUP", "POLLNVAL", "POLLRDHUP")


def poll_flag_names(mask: int) -> str:
    """``POLLIN|POLLHUP`` for a poll() event mask."""
    names = [name for name in _POLL_FLAGS if mask & getattr(select, name, 0)]
    return "|".join(names) or f"0x{mask:x}"


class BlockingLab(Lab):
    name = "blocking"
    title = "Blocking, non-blocking and timeout recv() on an idle connection"
    course_term = "阻塞IO / 非阻塞IO / 超时检测"
    course_section = "3.2.2-3.2.3"
    explanation = (
        "A blocking recv() (阻塞IO, the default) sleeps in the kernel until data arrives, "
        "using no CPU however long it waits. setblocking(False) (非阻塞IO) makes recv() return "
        "at once: with no data it raises BlockingIOError (EAGAIN), so a loop that keeps "
        "asking spins a whole core to learn nothing — the reason event loops ask select/poll/"
        "epoll which sockets are ready instead. settimeout(t) (超时检测) is the middle way: "
        "block, but at most t seconds, then raise socket.timeout (TimeoutError)."
    )
    order = 3.22
    params = (
        Param("spin_ms", 300, "how long the non-blocking loop keeps asking", 10, 2000),
        Param("timeout_ms", 200, "settimeout() for the timeout recv()", 10, 2000),
        Param("sender_delay_ms", 300, "when the peer sends during the blocking recv()", 0, 2000),
    )

    def run(self, ctx: LabContext) -> None:
        with connected_pair() as (client, server):
            spun = self._non_blocking(ctx, server, int(ctx["spin_ms"]) / 1000)
            if spun is None or ctx.cancelled:
                return
            errors, wall, cpu = spun
            ctx.figure("nonblocking_errors", "BlockingIOErrors raised", errors)
            ctx.figure(
                "nonblocking_errors_per_s", "BlockingIOErrors per second", round(errors / wall)
            )
            ctx.figure(
                "nonblocking_cpu_percent", "CPU used by the loop", round(100 * cpu / wall, 1), "%"
            )

            asked = int(ctx["timeout_ms"]) / 1000
            server.settimeout(asked)
            ctx.line(f"settimeout({asked:g}); recv(1024) on the idle connection ...")
            started, cpu_started = time.perf_counter(), time.thread_time()
            try:
                data = server.recv(1024)
                outcome = f"{len(data)} bytes (unexpected: nobody sent)"
            except TimeoutError as error:
                outcome = f"{type(error).__name__}: {error}"
            waited = time.perf_counter() - started
            cpu = time.thread_time() - cpu_started
            ctx.line(f"recv -> {outcome} after {waited * 1000:.1f} ms, {cpu * 1000:.2f} ms CPU")
            ctx.figure("timeout_asked_ms", "timeout asked", _milliseconds(asked), "ms")
            ctx.figure("timeout_measured_ms", "timeout measured", _milliseconds(waited), "ms")
            ctx.figure("timeout_cpu_ms", "CPU used while timing out", _milliseconds(cpu), "ms")
            if ctx.cancelled:
                return

            delay = int(ctx["sender_delay_ms"]) / 1000
            server.settimeout(delay + SAFETY_TIMEOUT)  # blocking in effect; bounded for safety
            stop = threading.Event()

            def send_later() -> None:
                if not stop.wait(delay):
                    client.sendall(b"ping")

            sender = threading.Thread(target=send_later, name="blocking-sender", daemon=True)
            ctx.line(f"blocking recv(1024); the peer will send 'ping' in {delay * 1000:.0f} ms ...")
            started, cpu_started = time.perf_counter(), time.thread_time()
            sender.start()
            try:
                data = server.recv(1024)
            finally:
                stop.set()
                sender.join(SAFETY_TIMEOUT)
            waited = time.perf_counter() - started
            cpu = time.thread_time() - cpu_started
            ctx.line(
                f"recv -> {len(data)} bytes {shown(data)} after {waited * 1000:.1f} ms, "
                f"{cpu * 1000:.2f} ms CPU"
            )
            ctx.figure("sender_delay_ms", "the peer sent after", _milliseconds(delay), "ms")
            ctx.figure("blocking_wait_ms", "blocking recv() waited", _milliseconds(waited), "ms")
            ctx.figure("blocking_cpu_ms", "CPU used while blocked", _milliseconds(cpu), "ms")

        ctx.table(
            "one idle connection, three ways to wait",
            ("mode", "waited", "CPU", "what recv() did"),
            [
                (
                    "non-blocking loop",
                    f"{spun[1] * 1000:.1f} ms",
                    f"{spun[2] * 1000:.2f} ms",
                    f"raised BlockingIOError {spun[0]:,} times",
                ),
                (
                    f"settimeout({asked:g})",
                    f"{ctx.report.value('timeout_measured_ms'):.1f} ms",
                    f"{ctx.report.value('timeout_cpu_ms'):.2f} ms",
                    "raised TimeoutError once",
                ),
                (
                    "blocking",
                    f"{ctx.report.value('blocking_wait_ms'):.1f} ms",
                    f"{ctx.report.value('blocking_cpu_ms'):.2f} ms",
                    f"returned {len(data)} bytes when they came",
                ),
            ],
        )
        spin_percent = ctx.report.value("nonblocking_cpu_percent")
        ctx.verdict(
            f"Non-blocking recv() raised BlockingIOError {errors:,} times in "
            f"{spun[1] * 1000:.0f} ms, using {spin_percent}% of a core for nothing; "
            f"settimeout({asked:g}) gave up after {ctx.report.value('timeout_measured_ms')} ms; "
            f"the blocking recv() slept {ctx.report.value('blocking_wait_ms')} ms "
            f"(the peer's delay was {delay * 1000:.0f} ms) on "
            f"{ctx.report.value('blocking_cpu_ms')} ms of CPU."
        )

    @staticmethod
    def _non_blocking(
        ctx: LabContext, conn: socket.socket, spin: float
    ) -> tuple[int, float, float] | None:
        conn.setblocking(False)
        ctx.line(f"setblocking(False); recv(1024) in a loop for {spin * 1000:.0f} ms ...")
        errors = 0
        started, cpu_started = time.perf_counter(), time.thread_time()
        deadline = started + spin
        while time.perf_counter() < deadline:
            try:
                data = conn.recv(1024)
            except BlockingIOError as error:
                errors += 1
                if errors <= 3:
                    ctx.line(f"recv #{errors} -> {error_name(error)} {error.strerror}")
                elif errors % 4096 == 0 and ctx.cancelled:
                    ctx.line("cancelled")
                    return None
                continue
            ctx.line(f"recv -> {len(data)} bytes (unexpected: nobody sent)")
            break
        wall = time.perf_counter() - started
        cpu = time.thread_time() - cpu_started
        ctx.line(
            f"... BlockingIOError {errors:,} times in {wall * 1000:.0f} ms, "
            f"{cpu * 1000:.0f} ms of CPU"
        )
        return errors, wall, cpu


LABS = (FramingLab(), ClosingLab(), BlockingLab())
