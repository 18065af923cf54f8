"""The FTP protocol core: command lines in, replies and data-channel actions out, no sockets.

One :class:`FTPSession` per control connection holds RFC 959's state (login,
cwd, TYPE, REST offset, RNFR source, data-connection setup). It never touches a
socket: a command that needs the network (PASV, a transfer) returns an
:class:`Outcome` carrying an *action*; the control core
(:mod:`servers.ftp.control`) has it carried out and reports back
(:meth:`FTPSession.passive_opened`, :meth:`FTPSession.transfer_done`),
getting the final reply. That keeps every reply code testable without a socket,
like h11 keeps HTTP testable without one. The command table follows pyftpdlib's
``proto_cmds``: which commands need a login, an argument, a permission letter.
"""

from __future__ import annotations

import ipaddress
import os
import stat
import time
from dataclasses import dataclass, field
from typing import Any

from servers.ftp.filesystem import (
    DEFAULT_MLST_FACTS,
    MLST_FACTS,
    JailedFilesystem,
    PathOutsideRoot,
    format_mlsx_line,
)
from servers.ftp.users import Authorizer

# -- what the core asks the shell to do ----------------------------------------


@dataclass(frozen=True)
class OpenPassive:
    """Listen for the data connection (PASV, EPSV); answer via ``passive_opened``."""

    extended: bool


@dataclass(frozen=True)
class UseActive:
    """Connect to the client's ``host:port`` for the next transfer (PORT, EPRT)."""

    host: str
    port: int


@dataclass(frozen=True)
class CloseDataChannel:
    """Drop any passive listener or active target (ABOR with no transfer running)."""


@dataclass(frozen=True)
class SendFile:
    """RETR: send ``path`` from ``offset`` on the data connection."""

    path: str
    offset: int
    ascii: bool


@dataclass(frozen=True)
class SendListing:
    """LIST, NLST, MLSD: send ``payload`` on the data connection."""

    payload: bytes


@dataclass(frozen=True)
class ReceiveFile:
    """STOR, APPE: receive into a temporary file, then rename it over ``path``.

    The new content is the first ``keep`` bytes of the existing file (REST,
    APPE) followed by what arrives; an interrupted upload leaves ``path`` as it was.
    """

    path: str
    keep: int
    ascii: bool


Action = OpenPassive | UseActive | CloseDataChannel | SendFile | SendListing | ReceiveFile


@dataclass
class Outcome:
    """Replies to send (after waiting ``delay`` seconds), then the action, then maybe close."""

    replies: list[str] = field(default_factory=list)
    action: Action | None = None
    close: bool = False
    delay: float = 0.0


#: How a transfer ended, as reported by the shell.
TRANSFER_COMPLETE = "complete"
TRANSFER_NO_CONNECTION = "no-connection"
TRANSFER_ABORTED = "aborted"  # by ABOR
TRANSFER_BROKEN = "broken"  # peer closed or stalled mid-transfer
TRANSFER_LOCAL_ERROR = "local-error"
TRANSFER_STORAGE_FULL = "storage-full"


@dataclass(frozen=True)
class TransferResult:
    status: str
    transferred: int = 0
    detail: str = ""


@dataclass(frozen=True)
class FTPSettings:
    """Tunable limits; the CLI options map onto these."""

    idle_timeout: float = 300.0
    data_timeout: float = 30.0
    login_delay: float = 1.0
    max_login_attempts: int = 3
    max_line_length: int = 4096
    #: After an upload's data EOF, how long to watch for the control connection
    #: closing too (a killed client) before the upload is committed.
    upload_close_grace: float = 0.02
    #: Bytes per second each data connection may move (``--max-rate``, in KiB/s); 0: no limit.
    max_rate: int = 0
    banner: str = "Network Workbench FTP server ready."


def format_reply(code: int, text: str | list[str]) -> str:
    """One reply, multi-line (``code-first ... code last``) when given a list."""
    if isinstance(text, str):
        return f"{code} {text}\r\n"
    *head, last = text
    lines = [f"{code}-{head[0]}\r\n"] if head else []
    # Continuation lines start with a space so no line can look like a final reply.
    lines += [f" {line}\r\n" for line in head[1:]]
    return "".join(lines) + f"{code} {last}\r\n"


def reply_code(reply: str) -> int:
    return int(reply[:3])


@dataclass(frozen=True)
class CommandSpec:
    """pyftpdlib-style table entry: login needed, argument rule, permission letter, help."""

    needs_login: bool
    argument: str  # "none", "required", "optional"
    permission: str
    syntax: str


COMMANDS: dict[str, CommandSpec] = {
    "ABOR": CommandSpec(False, "none", "", "ABOR (abort the running transfer)"),
    "ALLO": CommandSpec(True, "required", "", "ALLO <SP> bytes (obsolete; allocate storage)"),
    "APPE": CommandSpec(True, "required", "a", "APPE <SP> file-name (append data to file)"),
    "CDUP": CommandSpec(True, "none", "e", "CDUP (go to the parent directory)"),
    "CWD": CommandSpec(True, "optional", "e", "CWD [<SP> dir-name] (change directory)"),
    "DELE": CommandSpec(True, "required", "d", "DELE <SP> file-name (delete file)"),
    "EPRT": CommandSpec(True, "required", "", "EPRT <SP> |proto|ip|port| (extended active mode)"),
    "EPSV": CommandSpec(True, "optional", "", "EPSV [<SP> proto/ALL] (extended passive mode)"),
    "FEAT": CommandSpec(False, "none", "", "FEAT (list the extensions supported)"),
    "HELP": CommandSpec(False, "optional", "", "HELP [<SP> cmd] (show help)"),
    "LIST": CommandSpec(True, "optional", "l", "LIST [<SP> path] (list files, ls -l form)"),
    "MDTM": CommandSpec(True, "required", "l", "MDTM <SP> file-name (modification time)"),
    "MKD": CommandSpec(True, "required", "m", "MKD <SP> dir-name (create directory)"),
    "MLSD": CommandSpec(True, "optional", "l", "MLSD [<SP> dir-name] (machine listing of a dir)"),
    "MLST": CommandSpec(True, "optional", "l", "MLST [<SP> path] (machine facts of one path)"),
    "MODE": CommandSpec(True, "required", "", "MODE <SP> S (transfer mode: stream only)"),
    "NLST": CommandSpec(True, "optional", "l", "NLST [<SP> path] (list names only)"),
    "NOOP": CommandSpec(False, "none", "", "NOOP (do nothing)"),
    "OPTS": CommandSpec(False, "required", "", "OPTS <SP> UTF8 ON | MLST facts (set options)"),
    "PASS": CommandSpec(False, "optional", "", "PASS [<SP> password] (log in)"),
    "PASV": CommandSpec(True, "none", "", "PASV (passive mode, IPv4)"),
    "PORT": CommandSpec(True, "required", "", "PORT <SP> h,h,h,h,p,p (active mode, IPv4)"),
    "PWD": CommandSpec(True, "none", "", "PWD (print the current directory)"),
    "QUIT": CommandSpec(False, "none", "", "QUIT (close the connection)"),
    "REST": CommandSpec(True, "required", "", "REST <SP> offset (restart the next transfer)"),
    "RETR": CommandSpec(True, "required", "r", "RETR <SP> file-name (download)"),
    "RMD": CommandSpec(True, "required", "d", "RMD <SP> dir-name (remove directory)"),
    "RNFR": CommandSpec(True, "required", "f", "RNFR <SP> file-name (rename from)"),
    "RNTO": CommandSpec(True, "required", "f", "RNTO <SP> file-name (rename to)"),
    "SIZE": CommandSpec(True, "required", "l", "SIZE <SP> file-name (file size)"),
    "STAT": CommandSpec(False, "optional", "l", "STAT [<SP> path] (server status, or list)"),
    "STOR": CommandSpec(True, "required", "w", "STOR <SP> file-name (upload)"),
    "STRU": CommandSpec(True, "required", "", "STRU <SP> F (file structure only)"),
    "SYST": CommandSpec(False, "none", "", "SYST (system type)"),
    "TYPE": CommandSpec(True, "required", "", "TYPE <SP> A | I (ASCII or binary)"),
    "USER": CommandSpec(False, "required", "", "USER <SP> user-name (start logging in)"),
    "XCUP": CommandSpec(True, "none", "e", "XCUP (same as CDUP)"),
    "XPWD": CommandSpec(True, "none", "", "XPWD (same as PWD)"),
}

#: Known RFC commands this server does not implement: 502, not 500.
NOT_IMPLEMENTED = frozenset(
    {"ACCT", "SMNT", "REIN", "STOU", "SITE", "AUTH", "PBSZ", "PROT", "CCC", "ADAT", "MFMT"}
)

FEATURES = (
    "EPRT",
    "EPSV",
    "MDTM",
    "MLST " + "".join(f"{fact}{'*' if fact in DEFAULT_MLST_FACTS else ''};" for fact in MLST_FACTS),
    "REST STREAM",
    "SIZE",
    "TVFS",
    "UTF8",
)


class _NullStats:
    def count_request(self, detail: str | None = None) -> None: ...
    def count_error(self, detail: str) -> None: ...


class FTPSession:
    """One control connection's protocol state (RFC 959, RFC 2428, parts of RFC 3659)."""

    def __init__(
        self,
        filesystem: JailedFilesystem,
        authorizer: Authorizer,
        client_address: tuple[str, int],
        settings: FTPSettings | None = None,
        stats: Any = None,
    ) -> None:
        self.filesystem = filesystem
        self.authorizer = authorizer
        self.client_host = normalize_host(client_address[0])
        self.client_is_ipv6 = ipaddress.ip_address(self.client_host).version == 6
        self.settings = settings or FTPSettings()
        self.stats = stats if stats is not None else _NullStats()
        self.pending_user: str | None = None
        self.username: str | None = None
        self.permissions = ""
        self.failed_logins = 0
        self.transfer_type = "A"
        self.restart_offset = 0
        self.rename_source: str | None = None
        self.data_channel_ready = False
        self.epsv_all = False
        self.transfer_running: str | None = None  # the command line, while a transfer runs
        self.mlst_facts: tuple[str, ...] = DEFAULT_MLST_FACTS

    @property
    def authenticated(self) -> bool:
        return self.username is not None

    # -- entry points the shell calls -------------------------------------------

    def greeting(self) -> Outcome:
        return Outcome([format_reply(220, self.settings.banner)])

    def line_too_long(self) -> Outcome:
        self.stats.count_error("500 command line too long")
        return Outcome([format_reply(500, "Command line too long.")])

    def idle_timeout(self) -> Outcome:
        self.stats.count_error("421 idle timeout")
        return Outcome([format_reply(421, "Idle timeout: closing control connection.")], close=True)

    def handle_line(self, line: str) -> Outcome:
        """Execute one command line (without its CRLF)."""
        verb, _, argument = line.partition(" ")
        verb = verb.upper()
        self.stats.count_request(self._describe(verb, argument))
        outcome = self._dispatch(verb, argument)
        # RNFR must be followed directly by RNTO; REST only survives until a transfer.
        if verb != "RNFR":
            self.rename_source = None
        if verb in ("RETR", "STOR", "APPE"):
            self.restart_offset = 0
        self._count_errors(outcome, verb, argument)
        return outcome

    def interrupts_transfer(self, line: str) -> bool:
        """While a transfer runs, only ABOR acts at once; other commands wait their turn."""
        return line.partition(" ")[0].upper() == "ABOR"

    def passive_opened(self, host: str, port: int, extended: bool) -> Outcome:
        self.data_channel_ready = True
        if extended:
            return Outcome([format_reply(229, f"Entering extended passive mode (|||{port}|).")])
        numbers = host.replace(".", ",")
        return Outcome(
            [format_reply(227, f"Entering passive mode ({numbers},{port >> 8},{port & 0xFF}).")]
        )

    def passive_failed(self, reason: str) -> Outcome:
        outcome = Outcome([format_reply(425, f"Can't open passive connection: {reason}.")])
        self._count_errors(outcome, "PASV", "")
        return outcome

    def transfer_done(self, result: TransferResult) -> Outcome:
        """The shell finished (or failed) the transfer an action asked for."""
        command = self.transfer_running or "transfer"
        self.transfer_running = None
        self.data_channel_ready = False
        status = result.status
        if status == TRANSFER_COMPLETE:
            replies = [format_reply(226, f"Transfer complete ({result.transferred} bytes).")]
        elif status == TRANSFER_NO_CONNECTION:
            replies = [format_reply(425, f"Can't open data connection: {result.detail}.")]
        elif status == TRANSFER_ABORTED:
            replies = [
                format_reply(426, "Transfer aborted via ABOR; data connection closed."),
                format_reply(226, "ABOR command successful."),
            ]
        elif status == TRANSFER_BROKEN:
            replies = [format_reply(426, f"Connection closed; transfer aborted: {result.detail}.")]
        elif status == TRANSFER_STORAGE_FULL:
            replies = [format_reply(452, "Insufficient storage space; nothing was stored.")]
        else:
            replies = [format_reply(451, f"Local error: {result.detail}; transfer aborted.")]
        outcome = Outcome(replies)
        self._count_errors(outcome, command, "")
        return outcome

    # -- dispatch -----------------------------------------------------------------

    def _dispatch(self, verb: str, argument: str) -> Outcome:
        spec = COMMANDS.get(verb)
        if spec is None:
            if verb in NOT_IMPLEMENTED:
                return self._reply(502, f"Command {verb} not implemented.")
            if not verb:
                return self._reply(500, "Empty command.")
            return self._reply(500, f'Command "{_printable(verb)}" not understood.')
        if spec.needs_login and not self.authenticated:
            return self._reply(530, "Log in with USER and PASS first.")
        if spec.argument == "required" and not argument.strip():
            return self._reply(501, f"Syntax error: {verb} needs an argument.")
        if spec.argument == "none" and argument.strip():
            return self._reply(501, f"Syntax error: {verb} takes no argument.")
        # STAT without a path is allowed to everyone; with one it lists.
        listing_status = verb != "STAT" or bool(argument.strip())
        if (
            spec.permission
            and self.authenticated
            and spec.permission not in self.permissions_at(argument)
            and listing_status
        ):
            return self._reply(550, f"Permission denied: {verb} is not allowed for you.")
        handler = getattr(self, f"ftp_{verb.lower()}")
        try:
            return handler(argument)
        except PathOutsideRoot:
            return self._reply(550, "Permission denied: path is outside the served folder.")
        except FileNotFoundError:
            return self._reply(550, "No such file or directory.")
        except NotADirectoryError:
            return self._reply(550, "Not a directory.")
        except IsADirectoryError:
            return self._reply(550, "Is a directory.")
        except PermissionError:
            return self._reply(550, "Permission denied by the file system.")
        except OSError as error:
            return self._reply(550, f"{error.strerror or 'File system error'}.")

    @staticmethod
    def _reply(code: int, text: str | list[str], **outcome: Any) -> Outcome:
        return Outcome([format_reply(code, text)], **outcome)

    @staticmethod
    def _describe(verb: str, argument: str) -> str:
        if verb == "PASS":
            return "PASS ****"
        return f"{verb} {_printable(argument)}".rstrip()

    def _count_errors(self, outcome: Outcome, verb: str, argument: str) -> None:
        for reply in outcome.replies:
            code = reply_code(reply)
            if code >= 400:
                text = reply[4:].splitlines()[0] if len(reply) > 4 else ""
                self.stats.count_error(f"{code} {self._describe(verb, argument)}: {text}")

    # -- login (RFC 959 4.1.1) ---------------------------------------------------------

    def ftp_user(self, argument: str) -> Outcome:
        if self.authenticated:
            return self._reply(503, "Already logged in.")
        self.pending_user = argument
        # Always 331, whoever it is: the reply must not reveal which names exist.
        return self._reply(331, "Password required.")

    def ftp_pass(self, argument: str) -> Outcome:
        if self.authenticated:
            return self._reply(503, "Already logged in.")
        if self.pending_user is None:
            return self._reply(503, "Login with USER first.")
        name, self.pending_user = self.pending_user, None
        permissions = self.authorizer.authenticate(name, argument)
        if permissions is None:
            self.failed_logins += 1
            delay = self.settings.login_delay
            if self.failed_logins >= self.settings.max_login_attempts:
                return Outcome(
                    [format_reply(530, "Login incorrect; too many failures, disconnecting.")],
                    close=True,
                    delay=delay,
                )
            return Outcome([format_reply(530, "Login incorrect.")], delay=delay)
        self.username = name
        self.permissions = permissions
        access = self.authorizer.describe(name, permissions)
        return self._reply(230, f"User {name} logged in ({access}).")

    def permissions_at(self, client_path: str) -> str:
        """The login's permission letters for ``client_path`` (a folder may grant more)."""
        if self.username is None:
            return self.permissions
        virtual = self.filesystem.virtual_path(_strip_list_options(client_path))
        return self.authorizer.permissions_at(self.username, self.permissions, virtual)

    def ftp_quit(self, argument: str) -> Outcome:
        return self._reply(221, "Goodbye.", close=True)

    # -- informational --------------------------------------------------------------

    def ftp_noop(self, argument: str) -> Outcome:
        return self._reply(200, "NOOP ok.")

    def ftp_syst(self, argument: str) -> Outcome:
        return self._reply(215, "UNIX Type: L8")

    def ftp_feat(self, argument: str) -> Outcome:
        return self._reply(211, ["Features supported:", *FEATURES, "End"])

    def ftp_help(self, argument: str) -> Outcome:
        if argument.strip():
            verb = argument.strip().upper()
            if verb not in COMMANDS:
                return self._reply(501, f"Unknown command {_printable(verb)}.")
            return self._reply(214, f"Syntax: {COMMANDS[verb].syntax}")
        names = sorted(COMMANDS)
        rows = [
            " ".join(f"{name:<5}" for name in names[i : i + 8]) for i in range(0, len(names), 8)
        ]
        return self._reply(214, ["Recognized commands:", *rows, "Help OK."])

    def ftp_opts(self, argument: str) -> Outcome:
        option, _, value = argument.strip().partition(" ")
        option = option.upper()
        if option == "UTF8" and value.strip().upper() in ("ON", ""):
            return self._reply(200, "Always in UTF8 mode.")
        if option == "UTF8":
            return self._reply(504, "UTF8 cannot be turned off.")
        if option == "MLST":
            wanted = [fact.lower() for fact in value.split(";") if fact]
            self.mlst_facts = tuple(fact for fact in MLST_FACTS if fact in wanted)
            return self._reply(200, "MLST OPTS " + "".join(f"{f};" for f in self.mlst_facts))
        return self._reply(501, f"Invalid OPTS option {_printable(option)}.")

    def ftp_stat(self, argument: str) -> Outcome:
        if not argument.strip():
            lines = [
                "Network Workbench FTP server status:",
                f"Connected from {self.client_host}",
                f"Logged in as {self.username}" if self.authenticated else "Not logged in",
                f"TYPE: {'ASCII' if self.transfer_type == 'A' else 'BINARY'}, STRUcture: File, MODE: Stream",
                "Data connection: " + ("ready" if self.data_channel_ready else "none"),
                "End of status.",
            ]
            return self._reply(211, lines)
        if not self.authenticated:
            return self._reply(530, "Log in with USER and PASS first.")
        real = self.filesystem.real_path(_strip_list_options(argument))
        text = self._list_payload(real).decode("utf-8", "surrogateescape")
        lines = [line for line in text.split("\r\n") if line]
        return self._reply(213, [f"Status of {argument.strip()}:", *lines, "End of status."])

    # -- navigation ---------------------------------------------------------------------

    def ftp_pwd(self, argument: str) -> Outcome:
        return self._reply(257, f"{_quote_path(self.filesystem.cwd)} is the current directory.")

    ftp_xpwd = ftp_pwd

    def ftp_cwd(self, argument: str) -> Outcome:
        cwd = self.filesystem.change_directory(argument or "/")
        return self._reply(250, f"{_quote_path(cwd)} is the current directory.")

    def ftp_cdup(self, argument: str) -> Outcome:
        return self.ftp_cwd("..")

    ftp_xcup = ftp_cdup

    # -- parameters -------------------------------------------------------------------------

    def ftp_type(self, argument: str) -> Outcome:
        kind = argument.strip().upper().replace(" ", "")
        if kind in ("A", "AN"):
            self.transfer_type = "A"
            return self._reply(200, "Type set to A (ASCII).")
        if kind in ("I", "L8"):
            self.transfer_type = "I"
            return self._reply(200, "Type set to I (binary).")
        return self._reply(504, f"Type {_printable(argument)} not supported; use A or I.")

    def ftp_mode(self, argument: str) -> Outcome:
        mode = argument.strip().upper()
        if mode == "S":
            return self._reply(200, "Mode set to S (stream).")
        if mode in ("B", "C"):
            return self._reply(504, f"Mode {mode} not supported; only S (stream).")
        return self._reply(501, f"Unknown mode {_printable(argument)}.")

    def ftp_stru(self, argument: str) -> Outcome:
        structure = argument.strip().upper()
        if structure == "F":
            return self._reply(200, "Structure set to F (file).")
        if structure in ("R", "P"):
            return self._reply(504, f"Structure {structure} not supported; only F (file).")
        return self._reply(501, f"Unknown structure {_printable(argument)}.")

    def ftp_allo(self, argument: str) -> Outcome:
        return self._reply(202, "No storage allocation necessary.")

    def ftp_rest(self, argument: str) -> Outcome:
        try:
            offset = int(argument.strip())
        except ValueError:
            return self._reply(501, "Invalid REST offset: not a number.")
        if offset < 0:
            return self._reply(501, "Invalid REST offset: negative.")
        if self.transfer_type == "A":
            return self._reply(501, "Resuming transfers is not allowed in ASCII mode; use TYPE I.")
        self.restart_offset = offset
        return self._reply(350, f"Restarting at {offset}. Send STOR or RETR to continue.")

    # -- data connection setup (RFC 959 PASV/PORT, RFC 2428 EPSV/EPRT) -----------------------

    def ftp_pasv(self, argument: str) -> Outcome:
        if self.epsv_all:
            return self._reply(503, "PASV not allowed after EPSV ALL.")
        if self.client_is_ipv6:
            return self._reply(522, "PASV is IPv4 only; use EPSV.")
        return Outcome(action=OpenPassive(extended=False))

    def ftp_epsv(self, argument: str) -> Outcome:
        protocol = argument.strip().upper()
        if protocol == "ALL":
            self.epsv_all = True
            return self._reply(200, "EPSV ALL ok: only EPSV will set up data connections now.")
        expected = "2" if self.client_is_ipv6 else "1"
        if protocol and protocol != expected:
            if protocol in ("1", "2"):
                return self._reply(522, f"Network protocol not supported, use ({expected}).")
            return self._reply(501, f"Unknown network protocol {_printable(protocol)}.")
        return Outcome(action=OpenPassive(extended=True))

    def ftp_port(self, argument: str) -> Outcome:
        if self.epsv_all:
            return self._reply(503, "PORT not allowed after EPSV ALL.")
        if self.client_is_ipv6:
            return self._reply(522, "PORT is IPv4 only; use EPRT.")
        try:
            numbers = [int(part) for part in argument.strip().split(",")]
        except ValueError:
            return self._reply(501, "Invalid PORT argument: expected h1,h2,h3,h4,p1,p2.")
        if len(numbers) != 6 or any(not 0 <= number <= 255 for number in numbers):
            return self._reply(501, "Invalid PORT argument: expected h1,h2,h3,h4,p1,p2.")
        host = ".".join(str(number) for number in numbers[:4])
        return self._active_target(host, numbers[4] << 8 | numbers[5], "PORT")

    def ftp_eprt(self, argument: str) -> Outcome:
        if self.epsv_all:
            return self._reply(503, "EPRT not allowed after EPSV ALL.")
        text = argument.strip()
        if len(text) < 7 or text[0] != text[-1]:
            return self._reply(501, "Invalid EPRT argument: expected |proto|address|port|.")
        fields = text[1:-1].split(text[0])
        if len(fields) != 3:
            return self._reply(501, "Invalid EPRT argument: expected |proto|address|port|.")
        protocol, host, port_text = fields
        expected = "2" if self.client_is_ipv6 else "1"
        if protocol != expected:
            if protocol in ("1", "2"):
                return self._reply(522, f"Network protocol not supported, use ({expected}).")
            return self._reply(501, f"Unknown network protocol {_printable(protocol)}.")
        try:
            port = int(port_text)
            address = ipaddress.ip_address(host)
        except ValueError:
            return self._reply(501, "Invalid EPRT address or port.")
        if not 0 < port < 65536 or address.version != int(protocol) * 2 + 2:
            return self._reply(501, "Invalid EPRT address or port.")
        return self._active_target(host, port, "EPRT")

    def _active_target(self, host: str, port: int, verb: str) -> Outcome:
        # FTP bounce (RFC 2577): never connect on a client's behalf to a third
        # host, nor to a privileged port where another service listens.
        if normalize_host(host) != self.client_host:
            return self._reply(504, f"{verb} rejected: data connection to a foreign address.")
        if port < 1024:
            return self._reply(504, f"{verb} rejected: data connection to a privileged port.")
        self.data_channel_ready = True
        return self._reply(200, f"{verb} command successful.", action=UseActive(host, port))

    # -- transfers ------------------------------------------------------------------------

    def _needs_data_channel(self) -> Outcome | None:
        if not self.data_channel_ready:
            return self._reply(425, "Use PORT, PASV, EPRT or EPSV first.")
        return None

    def _start_transfer(self, verb: str, argument: str, text: str, action: Action) -> Outcome:
        self.transfer_running = f"{verb} {argument}".strip()
        self.restart_offset = 0
        return self._reply(150, text, action=action)

    def ftp_retr(self, argument: str) -> Outcome:
        if (refusal := self._needs_data_channel()) is not None:
            return refusal
        real = self.filesystem.real_path(argument)
        info = os.stat(real)
        if not stat.S_ISREG(info.st_mode):
            return self._reply(550, "Not a regular file.")
        if not os.access(real, os.R_OK):
            raise PermissionError(real)
        offset = self.restart_offset
        if offset > info.st_size:
            return self._reply(
                554, f"Invalid REST offset {offset}: the file has {info.st_size} bytes."
            )
        mode = "ASCII" if self.transfer_type == "A" else "BINARY"
        text = (
            f"Opening {mode} mode data connection for {argument} ({info.st_size - offset} bytes)."
        )
        action = SendFile(real, offset, ascii=self.transfer_type == "A")
        return self._start_transfer("RETR", argument, text, action)

    def ftp_stor(self, argument: str) -> Outcome:
        return self._store(argument, "STOR", append=False)

    def ftp_appe(self, argument: str) -> Outcome:
        return self._store(argument, "APPE", append=True)

    def _store(self, argument: str, verb: str, append: bool) -> Outcome:
        if (refusal := self._needs_data_channel()) is not None:
            return refusal
        real = self.filesystem.real_path(argument)
        parent = os.path.dirname(real)
        if not os.path.isdir(parent):
            return self._reply(553, "Cannot store there: the folder does not exist.")
        if os.path.basename(real) in ("", ".", ".."):
            return self._reply(553, "File name not allowed.")
        try:
            info = os.stat(real)
        except FileNotFoundError:
            info = None
        if info is not None and not stat.S_ISREG(info.st_mode):
            return self._reply(550, "Cannot overwrite: not a regular file.")
        if info is not None and "w" not in self.permissions_at(argument) and verb == "STOR":
            return self._reply(550, "Permission denied: cannot overwrite.")
        existing = info.st_size if info is not None else 0
        if append:
            if self.restart_offset:
                return self._reply(503, "APPE cannot follow REST; use STOR to resume.")
            keep = existing
        else:
            keep = self.restart_offset
            if keep > existing:
                return self._reply(
                    554, f"Invalid REST offset {keep}: the file has {existing} bytes."
                )
        text = f"Ok to send data for {argument}" + (f" (resuming at {keep})." if keep else ".")
        action = ReceiveFile(real, keep, ascii=self.transfer_type == "A")
        return self._start_transfer(verb, argument, text, action)

    def _list_target(self, argument: str) -> str:
        return self.filesystem.real_path(_strip_list_options(argument))

    def _list_payload(self, real: str) -> bytes:
        if os.path.isdir(real):
            names = self.filesystem.list_names(real)
            return self.filesystem.format_list(real, names)
        os.lstat(real)  # raises FileNotFoundError for a missing path
        return self.filesystem.format_list(os.path.dirname(real), [os.path.basename(real)])

    def ftp_list(self, argument: str) -> Outcome:
        if (refusal := self._needs_data_channel()) is not None:
            return refusal
        payload = self._list_payload(self._list_target(argument))
        return self._start_transfer(
            "LIST", argument, "Here comes the listing.", SendListing(payload)
        )

    def ftp_nlst(self, argument: str) -> Outcome:
        if (refusal := self._needs_data_channel()) is not None:
            return refusal
        real = self._list_target(argument)
        if os.path.isdir(real):
            names = self.filesystem.list_names(real)
        else:
            os.stat(real)
            names = [os.path.basename(real)]
        payload = "".join(f"{name}\r\n" for name in names).encode("utf-8", "surrogateescape")
        return self._start_transfer(
            "NLST", argument, "Here comes the name list.", SendListing(payload)
        )

    def ftp_mlsd(self, argument: str) -> Outcome:
        if (refusal := self._needs_data_channel()) is not None:
            return refusal
        real = self.filesystem.real_path(argument)
        if not os.path.isdir(real):
            os.stat(real)
            return self._reply(501, "MLSD needs a directory; use MLST for a file.")
        lines = self.filesystem.format_mlsx(
            real,
            self.filesystem.list_names(real),
            self.permissions,
            self.mlst_facts,
            permissions_of=self.permissions_at,
        )
        payload = "".join(f"{line}\r\n" for line in lines).encode("utf-8", "surrogateescape")
        return self._start_transfer(
            "MLSD", argument, "Here comes the MLSD listing.", SendListing(payload)
        )

    def ftp_mlst(self, argument: str) -> Outcome:
        real = self.filesystem.real_path(argument)
        virtual = self.filesystem.virtual_path(argument)
        info = os.stat(real)
        inside = self.permissions_at(virtual.rstrip("/") + "/-")
        line = format_mlsx_line(
            virtual, info, self.permissions_at(argument), self.mlst_facts, inside=inside
        )
        return self._reply(250, [f"Listing {virtual}", line, "End."])

    # -- file information ----------------------------------------------------------------

    def ftp_size(self, argument: str) -> Outcome:
        info = os.stat(self.filesystem.real_path(argument))
        if not stat.S_ISREG(info.st_mode):
            return self._reply(550, "Not a regular file.")
        return self._reply(213, str(info.st_size))

    def ftp_mdtm(self, argument: str) -> Outcome:
        info = os.stat(self.filesystem.real_path(argument))
        if not stat.S_ISREG(info.st_mode):
            return self._reply(550, "Not a regular file.")
        return self._reply(213, time.strftime("%Y%m%d%H%M%S", time.gmtime(info.st_mtime)))

    # -- changes ------------------------------------------------------------------------------

    def ftp_dele(self, argument: str) -> Outcome:
        real = self.filesystem.real_path(argument)
        if os.path.isdir(real):
            return self._reply(550, "Is a directory; use RMD.")
        os.remove(real)
        return self._reply(250, "File deleted.")

    def ftp_mkd(self, argument: str) -> Outcome:
        real = self.filesystem.real_path(argument)
        if os.path.lexists(real):
            return self._reply(550, "File exists.")
        os.mkdir(real)
        virtual = self.filesystem.virtual_path(argument)
        return self._reply(257, f"{_quote_path(virtual)} directory created.")

    def ftp_rmd(self, argument: str) -> Outcome:
        real = self.filesystem.real_path(argument)
        if os.path.realpath(real) == self.filesystem.root:
            return self._reply(550, "Cannot remove the root directory.")
        if not os.path.isdir(real):
            os.stat(real)
            return self._reply(550, "Not a directory.")
        if os.listdir(real):
            return self._reply(550, "Directory not empty.")
        os.rmdir(real)
        return self._reply(250, "Directory removed.")

    def ftp_rnfr(self, argument: str) -> Outcome:
        real = self.filesystem.real_path(argument)
        if os.path.realpath(real) == self.filesystem.root:
            return self._reply(550, "Cannot rename the root directory.")
        if not os.path.lexists(real):
            return self._reply(550, "No such file or directory.")
        self.rename_source = real
        return self._reply(350, "Ready for RNTO.")

    def ftp_rnto(self, argument: str) -> Outcome:
        source, self.rename_source = self.rename_source, None
        if source is None:
            return self._reply(503, "Bad sequence of commands: use RNFR first.")
        target = self.filesystem.real_path(argument)
        if os.path.isdir(target) and not os.path.isdir(source):
            return self._reply(550, "Target is a directory.")
        os.rename(source, target)
        return self._reply(250, "Rename successful.")

    # -- ABOR with nothing running (the shell handles ABOR during a transfer) ---------------

    def ftp_abor(self, argument: str) -> Outcome:
        if self.data_channel_ready:
            self.data_channel_ready = False
            return self._reply(
                225, "No transfer to abort; data connection closed.", action=CloseDataChannel()
            )
        return self._reply(225, "No transfer to abort.")


def normalize_host(host: str) -> str:
    """Comparable address text: IPv4-mapped IPv6 (``::ffff:1.2.3.4``) becomes IPv4."""
    try:
        address = ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        return host
    if address.version == 6 and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


def _quote_path(path: str) -> str:
    """RFC 959 257 form: the path in double quotes, inner quotes doubled."""
    return '"' + path.replace('"', '""') + '"'


def _strip_list_options(argument: str) -> str:
    """Drop ``ls`` flags clients send (``LIST -la``, ``LIST -a dir``)."""
    words = argument.strip().split(" ")
    while words and words[0].startswith("-"):
        words.pop(0)
    return " ".join(words)


def _printable(text: str) -> str:
    """Echo client text safely: no control characters, bounded length."""
    cleaned = "".join(ch if ch.isprintable() else "?" for ch in text)
    return cleaned[:80] + ("..." if len(cleaned) > 80 else "")
