"""The ftp protocol package: options, the default root (a private copy), models it refuses."""

from __future__ import annotations

import argparse
import ftplib
import os

import pytest

import servers.ftp as ftp_protocol
from servers.runner import ConfigError, options_for, prepare
from servers.stats import ServerStats

pytestmark = pytest.mark.timeout(30)


def parse(*args: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    ftp_protocol.add_arguments(parser)
    return parser.parse_args(list(args))


def test_every_option_has_a_default():
    options = parse()
    assert options.root is None and not options.read_only and options.users is None
    assert options.idle_timeout == 300 and options.data_timeout == 30
    assert options.max_connections > 0 and options.passive_ports is None


def test_default_root_is_a_private_copy_of_the_bundled_library(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data-home"))
    app = ftp_protocol.build_application(parse(), ServerStats())
    copy = tmp_path / "data-home" / "network-workbench" / "ftp-library"
    assert app.handle_blocking is not None
    assert sorted(os.listdir(copy)) == sorted(os.listdir(ftp_protocol.BUNDLED_LIBRARY))
    (copy / "uploads" / "mine.txt").write_text("kept")
    ftp_protocol.build_application(parse(), ServerStats())  # reuses the copy, uploads survive
    assert (copy / "uploads" / "mine.txt").read_text() == "kept"
    assert not os.path.exists(os.path.join(ftp_protocol.BUNDLED_LIBRARY, "uploads", "mine.txt"))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--root", ftp_protocol.BUNDLED_LIBRARY], "package's own sample library"),
        (["--root", ftp_protocol.BUNDLED_LIBRARY + "/texts"], "package's own sample library"),
        (["--root", "/no/such/folder"], "is not a folder"),
        (["--idle-timeout", "0"], "--idle-timeout must be positive"),
        (["--passive-ports", "100-200"], "within 1024-65535"),
        (["--passive-ports", "abc"], "must look like"),
        (["--max-connections", "0"], "at least 1"),
    ],
)
def test_bad_options_are_one_line_errors(tmp_path, args, message):
    if "--root" not in args:
        args = [*args, "--root", str(tmp_path)]
    with pytest.raises(ValueError, match=message):
        ftp_protocol.build_application(parse(*args), ServerStats())


def test_bad_users_file_is_a_config_error(tmp_path):
    bad = tmp_path / "users.txt"
    bad.write_text("just-a-name\n")
    options = options_for("ftp", {"root": str(tmp_path), "users": str(bad)})
    with pytest.raises(ConfigError, match="users.txt:1"):
        prepare("ftp", "threads", options)


def test_passive_ports_come_from_the_given_range(start_ftp, library, ftp_helpers):
    port = start_ftp("threads", library, passive_ports="50100-50120")
    ftp = ftp_helpers.connect(port)
    try:
        for _ in range(3):
            _, data_port = ftplib.parse227(ftp.sendcmd("PASV"))
            assert 50100 <= data_port <= 50120
        assert ftp.nlst("texts") == ["sonnet-18.txt", "the-road-not-taken.txt"]
    finally:
        ftp_helpers.close(ftp)
