"""FTP server (RFC 959 + RFC 2428 + parts of RFC 3659): the course's ftp 文件服务器 exercise (3.2), for real clients.

``python -m servers ftp --model threads --root DIR`` serves DIR to curl, lftp,
ftplib or any GUI client. Without ``--root`` it serves a private copy of the
bundled sample library, made once in the user's data folder, so uploads never
touch the package's own files.
"""

from __future__ import annotations

import argparse
import os
import shutil
from typing import Any

NAME = "ftp"
TRANSPORT = "tcp"

#: The sample library shipped with the package (read-only source of the default root).
BUNDLED_LIBRARY = os.path.join(os.path.dirname(os.path.dirname(__file__)), "data", "library")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("ftp")
    group.add_argument(
        "--root",
        default=None,
        help="folder to serve (default: a copy of the sample library in the user data folder)",
    )
    group.add_argument(
        "--read-only", action="store_true", help="refuse every upload, delete, rename and mkdir"
    )
    group.add_argument(
        "--users",
        default=None,
        metavar="FILE",
        help="accounts file (python -m servers.ftp.users add FILE NAME)",
    )
    group.add_argument(
        "--no-anonymous",
        action="store_true",
        help="refuse anonymous logins (USER anonymous/ftp; by default they read everywhere "
        "and write in uploads/ only)",
    )
    group.add_argument(
        "--idle-timeout",
        type=float,
        default=300.0,
        metavar="SECONDS",
        help="close a silent control connection with 421 (default %(default)s)",
    )
    group.add_argument(
        "--data-timeout",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="wait this long for a data connection or a stalled transfer (default %(default)s)",
    )
    group.add_argument(
        "--login-delay",
        type=float,
        default=1.0,
        metavar="SECONDS",
        help="pause before answering a failed login (default %(default)s)",
    )
    group.add_argument(
        "--max-connections",
        type=int,
        default=256,
        metavar="N",
        help="control connections at once, 421 beyond (default %(default)s)",
    )
    group.add_argument(
        "--max-per-address",
        type=int,
        default=128,
        metavar="N",
        help="control connections from one address, 421 beyond; 0 = no limit (default %(default)s)",
    )
    group.add_argument(
        "--max-rate",
        type=int,
        default=0,
        metavar="KIB_PER_S",
        help="most KiB/s each transfer may move, so a class can watch one; 0 = no limit "
        "(default %(default)s)",
    )
    group.add_argument(
        "--passive-ports",
        default=None,
        metavar="LOW-HIGH",
        help="port range for PASV/EPSV listeners (default: any free port)",
    )


def default_root() -> str:
    """The user's private copy of the sample library, created on first use."""
    import platformdirs

    data_dir = platformdirs.user_data_dir("network-workbench", appauthor=False)
    root = os.path.join(data_dir, "ftp-library")
    if not os.path.isdir(root):
        os.makedirs(data_dir, exist_ok=True)
        staging = f"{root}.tmp{os.getpid()}"
        shutil.copytree(BUNDLED_LIBRARY, staging)
        try:
            os.rename(staging, root)
        except OSError:  # another server made it first
            shutil.rmtree(staging, ignore_errors=True)
    return root


def parse_port_range(text: str | None) -> tuple[int, int] | None:
    if not text:
        return None
    low, separator, high = text.partition("-")
    try:
        low_port, high_port = int(low), int(high if separator else low)
    except ValueError:
        raise ValueError(f"--passive-ports must look like 60000-60100, not {text!r}") from None
    if not 1024 <= low_port <= high_port <= 65535:
        raise ValueError(f"--passive-ports must be within 1024-65535, not {text!r}")
    return low_port, high_port


def build_application(options: argparse.Namespace, stats: Any):
    """The FTP Application: blocking handler for per-connection models, sans-IO for event loops."""
    from servers.contracts import Application
    from servers.ftp.limits import ConnectionLimiter
    from servers.ftp.server import FTPContext
    from servers.ftp.session import FTPSettings
    from servers.ftp.users import Authorizer, load_accounts

    root = options.root or default_root()
    if not os.path.isdir(root):
        raise ValueError(f"--root {root} is not a folder")
    real_root, bundled = os.path.realpath(root), os.path.realpath(BUNDLED_LIBRARY)
    if real_root == bundled or real_root.startswith(bundled + os.sep):
        raise ValueError("refusing to serve the package's own sample library; pass a copy")
    for name in ("idle_timeout", "data_timeout"):
        if getattr(options, name) <= 0:
            raise ValueError(f"--{name.replace('_', '-')} must be positive")
    if options.login_delay < 0:
        raise ValueError("--login-delay cannot be negative")
    max_rate = getattr(options, "max_rate", 0) or 0
    if max_rate < 0:
        raise ValueError("--max-rate cannot be negative (0 means no limit)")
    accounts = load_accounts(options.users) if options.users else {}
    authorizer = Authorizer(
        accounts, allow_anonymous=not options.no_anonymous, read_only=options.read_only
    )
    settings = FTPSettings(
        idle_timeout=options.idle_timeout,
        data_timeout=options.data_timeout,
        login_delay=options.login_delay,
        max_rate=max_rate * 1024,
    )
    context = FTPContext(
        root=os.path.realpath(root),
        authorizer=authorizer,
        settings=settings,
        stats=stats,
        limiter=ConnectionLimiter(options.max_connections, options.max_per_address),
        passive_ports=parse_port_range(options.passive_ports),
    )
    from servers.ftp.evented import FTPEventHandler

    _sweep_in_background(context.root, stats)
    return Application(
        name=NAME,
        stats=stats,
        # The per-connection models run the blocking server; the event-loop
        # models multiplex control connections through the sans-IO handler.
        handle_blocking=context.handle_connection,
        new_handler=lambda peer: FTPEventHandler(context, peer),
        after_fork=context.after_fork,
    )


def _sweep_in_background(root: str, stats: Any) -> None:
    """Remove what uploads cut short by a killed server left behind, without delaying the start."""
    from servers.ftp.transfer import sweep_abandoned_uploads
    from servers.signals import HelperThread

    def sweep() -> None:
        removed = sweep_abandoned_uploads(root)
        if removed:
            stats.event(
                "cleanup", f"removed {len(removed)} unfinished upload(s) left by a stopped server"
            )

    HelperThread(target=sweep, name="upload-sweep", daemon=True).start()
