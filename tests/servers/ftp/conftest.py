"""Fixtures for FTP server tests: a private library folder, an accounts file, servers always stopped."""

from __future__ import annotations

import contextlib
import ftplib
import os
import shutil
import time

import pytest

from servers.ftp import BUNDLED_LIBRARY
from servers.ftp.users import Account, hash_password, save_accounts
from servers.launcher import ServerProcess, ServerSpec

#: Password of the write-enabled account ``alice`` in the ``users_file`` fixture.
ALICE_PASSWORD = "wonderland"


@pytest.fixture
def library(tmp_path):
    """A copy of the bundled sample library to serve (never the package's own)."""
    root = tmp_path / "library"
    shutil.copytree(BUNDLED_LIBRARY, root)
    return root


@pytest.fixture(scope="session")
def alice_account():
    return Account("alice", hash_password(ALICE_PASSWORD), "elradfmw")


@pytest.fixture
def users_file(tmp_path, alice_account):
    path = tmp_path / "users.txt"
    reader = Account("reader", alice_account.password_hash, "elr")
    save_accounts(str(path), {"alice": alice_account, "reader": reader})
    return path


@pytest.fixture
def start_ftp():
    """``start_ftp(model, root, **options) -> port``; every server is stopped at teardown."""
    started: list[ServerProcess] = []

    def start(model: str, root, *, stats_queue=None, workers=None, **options) -> int:
        options = {"root": str(root), "login_delay": 0.05, **options}
        server = ServerProcess(
            ServerSpec("ftp", model, workers=workers, options=options, server_id=f"ftp-{model}"),
            stats_queue,
        )
        started.append(server)
        start.last_server = server  # for tests that stop or inspect the server themselves
        return server.start(timeout=20)

    yield start
    for server in started:
        server.stop()


class FTPHelpers:
    """Small client-side helpers shared by the FTP test modules."""

    ALICE_PASSWORD = ALICE_PASSWORD

    @staticmethod
    def connect(port: int, user: str = "anonymous", password: str = "guest@", **kwargs):
        ftp = ftplib.FTP(timeout=15)
        ftp.connect("127.0.0.1", port, **kwargs)
        if user:
            ftp.login(user, password)
        return ftp

    @staticmethod
    def close(ftp: ftplib.FTP) -> None:
        with contextlib.suppress(OSError, EOFError, ftplib.Error):
            ftp.quit()
        ftp.close()

    @staticmethod
    def part_files(folder) -> list[str]:
        return [name for name in os.listdir(folder) if name.endswith(".part")]

    @staticmethod
    def wait_until(predicate, timeout: float = 10.0, interval: float = 0.02) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(interval)
        return predicate()


@pytest.fixture
def ftp_helpers():
    return FTPHelpers
