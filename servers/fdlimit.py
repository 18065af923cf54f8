"""The open-file limit of a server process: raising RLIMIT_NOFILE, and refusing cleanly when it is reached.

Every connection costs a file descriptor, and Linux gives a process 1024 by
default (the *soft* RLIMIT_NOFILE), so without raising it no model gets past
about a thousand clients, and select's own FD_SETSIZE wall (descriptors 1024
and above) is never reached. A server raises its soft limit up to the hard one.

When descriptors run out anyway, ``accept()`` fails with EMFILE (or ENFILE for
the whole system) while the client stays queued in the kernel: the listening
socket stays readable, so an event loop that only logs and returns is woken
again at once and spins, and the client hangs. The cure (libev's, nginx's) is a
spare descriptor kept open for this moment: close it, accept the waiting client
into the freed slot, close that connection at once (the client sees the server
hang up), and open the spare again.
"""

from __future__ import annotations

import errno
import logging
import os
import resource
import select
import socket
import time

from servers.stats import ServerStats

#: accept() errors meaning "no descriptor left", not "something wrong with this client".
OUT_OF_DESCRIPTORS = frozenset({errno.EMFILE, errno.ENFILE})
#: Fewest descriptors a server can run with: listener, waker pair, stats pipes, spare...
MINIMUM_OPEN_FILES = 32
#: How long a blocking accept loop waits for the queue before trying again when out of descriptors.
BLOCKING_RETRY_SECONDS = 0.1
#: At most one log line per this many seconds about running out (the refusals are all counted).
LOG_INTERVAL = 1.0

log = logging.getLogger(__name__)


def open_file_limits() -> tuple[int, int]:
    """The process's (soft, hard) RLIMIT_NOFILE; RLIM_INFINITY comes back as a large number."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return _finite(soft), _finite(hard)


def set_open_file_limit(wanted: int | None = None) -> int:
    """Set the soft RLIMIT_NOFILE to ``wanted`` (None: as high as the hard limit); returns it.

    ``wanted`` may also lower the limit, which is how a test reaches EMFILE with
    a few dozen connections. Raises ValueError with a one-line reason.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if wanted is None:
        target = hard
    else:
        if wanted < MINIMUM_OPEN_FILES:
            raise ValueError(
                f"--max-open-files must be at least {MINIMUM_OPEN_FILES}, not {wanted}"
            )
        if hard != resource.RLIM_INFINITY and wanted > hard:
            raise ValueError(
                f"--max-open-files {wanted} is above the hard limit {hard} "
                "(ulimit -Hn; only root may raise that)"
            )
        target = wanted
    if target != soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as error:
            raise ValueError(f"cannot set the open-file limit to {target}: {error}") from None
    return _finite(target)


def _finite(value: int) -> int:
    return 2**31 - 1 if value == resource.RLIM_INFINITY else value


class ThrottledLog:
    """Logs an error at most once per LOG_INTERVAL, saying how many were held back.

    A crowd refused at a limit is hundreds of identical errors a second: the
    panel counts every one (*Refused*), the log needs one line.
    """

    def __init__(self, logger: logging.Logger) -> None:
        self.logger = logger
        self._last = float("-inf")
        self._held_back = 0

    def error(self, message: str) -> None:
        now = time.monotonic()
        if now - self._last < LOG_INTERVAL:
            self._held_back += 1
            return
        suffix = f" (and {self._held_back} more like it)" if self._held_back else ""
        self.logger.error("%s%s", message, suffix)
        self._last = now
        self._held_back = 0


class SpareDescriptor:
    """One descriptor held in reserve, given up for an instant to turn away a client at EMFILE."""

    def __init__(self, stats: ServerStats) -> None:
        self.stats = stats
        self.fd: int | None = None
        self._log = ThrottledLog(log)
        self.reserve()

    def reserve(self) -> None:
        if self.fd is None:
            try:
                self.fd = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
            except OSError:  # still none free: try again at the next refusal
                self.fd = None

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    @property
    def available(self) -> bool:
        return self.fd is not None

    def refuse(self, listener: socket.socket, error: OSError) -> bool:
        """Accept one queued client into the spare's slot and hang up on it at once.

        Returns True when a client was turned away (counted as a refusal and
        logged, at most once a second), False when none was waiting or there
        was no spare to give up.
        """
        refused = False
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
            try:
                sock, _ = listener.accept()
            except OSError:  # EAGAIN: nobody queued after all (or they gave up)
                pass
            else:
                sock.close()
                refused = True
            self.reserve()
        if refused:
            self.note_refusal(error)
        return refused

    def note_refusal(self, error: OSError) -> None:
        """Count one client refused for want of descriptors; log it, throttled."""
        message = "refused a connection: " + _shortage(error)
        self.stats.count_refusal(message)
        self._log.error(message)

    def note_shortage(self, error: OSError) -> None:
        """No spare to refuse with: clients wait in the backlog; say so (throttled), count nothing."""
        self._log.error("not accepting for a moment: " + _shortage(error))


def _shortage(error: OSError) -> str:
    limit, _ = open_file_limits()
    whose = "the system's" if error.errno == errno.ENFILE else f"this process's {limit}"
    code = errno.errorcode.get(error.errno or 0, "EMFILE")
    return (
        f"out of file descriptors ({whose} open-file limit reached, {code}); "
        "raise it with --max-open-files or close connections"
    )


def accept_or_refuse(
    listener: socket.socket, spare: SpareDescriptor
) -> tuple[socket.socket, tuple] | None:
    """``listener.accept()`` for the blocking models; None when a client was refused for want of descriptors.

    A blocking accept() fails with EMFILE at once, whether or not anyone is
    queued, so it cannot simply be retried: that would spin. Wait (bounded) for
    a queued client, turn it away through the spare, and let the caller loop.
    """
    try:
        return listener.accept()
    except OSError as error:
        if error.errno not in OUT_OF_DESCRIPTORS:
            raise
        # Only a client already queued may be accepted through the spare: with
        # none, the blocking accept() would wait while the spare is given up.
        # (Under `pool` a sibling may take it first; then this accept() waits
        # for the next client, who is refused: the process is out of descriptors.)
        poller = select.poll()
        poller.register(listener.fileno(), select.POLLIN)
        if poller.poll(BLOCKING_RETRY_SECONDS * 1000) and not spare.refuse(listener, error):
            spare.note_shortage(error)
            time.sleep(BLOCKING_RETRY_SECONDS)
        return None
