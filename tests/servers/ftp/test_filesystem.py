"""The jailed file view: virtual paths, escapes refused, ls -l and MLSx lines; text-mode conversion."""

from __future__ import annotations

import os
import time

import pytest

from servers.ftp.control import decode_command_line
from servers.ftp.filesystem import (
    JailedFilesystem,
    PathOutsideRoot,
    format_list_line,
    format_mlsx_line,
    mlsx_permissions,
)
from servers.ftp.transfer import LocalToNetworkText, NetworkToLocalText

pytestmark = pytest.mark.timeout(10)


def test_virtual_paths_are_normalized_and_clamped(tmp_path):
    fs = JailedFilesystem(str(tmp_path))
    assert fs.virtual_path("") == "/"
    assert fs.virtual_path("a/b/../c") == "/a/c"
    assert fs.virtual_path("../../..") == "/"
    assert fs.virtual_path("//etc") == "/etc"
    fs.cwd = "/docs"
    assert fs.virtual_path("x.txt") == "/docs/x.txt"
    assert fs.virtual_path("/x.txt") == "/x.txt"
    assert fs.real_path("..") == str(tmp_path) + "/"


def test_symlinks_out_and_nul_bytes_are_refused(tmp_path, tmp_path_factory):
    outside = tmp_path_factory.mktemp("elsewhere")
    os.symlink(outside, tmp_path / "out")
    os.symlink("/etc/passwd", tmp_path / "passwd")
    (tmp_path / "inside").mkdir()
    os.symlink(tmp_path / "inside", tmp_path / "ok-link")
    fs = JailedFilesystem(str(tmp_path))
    for path in ("out", "out/x", "passwd", "a\x00b"):
        with pytest.raises(PathOutsideRoot):
            fs.real_path(path)
    assert fs.real_path("ok-link") == str(tmp_path / "ok-link")
    assert fs.to_virtual(str(tmp_path / "inside")) == "/inside"


def test_list_line_has_the_ls_l_shape(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_bytes(b"x" * 1234)
    info = os.stat(path)
    recent = format_list_line("notes.txt", info, now=info.st_mtime + 60)
    fields = recent.split()
    assert fields[0] == "-rw-r--r--" or fields[0].startswith("-rw")
    assert fields[4] == "1234" and fields[-1] == "notes.txt" and recent.endswith("\r\n")
    assert ":" in fields[7]  # recent files show the time of day
    old = format_list_line("notes.txt", info, now=info.st_mtime + 400 * 86400)
    assert old.split()[7] == time.strftime("%Y", time.localtime(info.st_mtime))


def test_mlsx_line_and_permission_facts(tmp_path):
    (tmp_path / "f").write_bytes(b"abc")
    line = format_mlsx_line("f", os.stat(tmp_path / "f"), "elr", ("type", "size", "perm"))
    assert line == "type=file;size=3;perm=r; f"
    assert mlsx_permissions("elradfmw", is_dir=True) == "elfmcdp"
    assert mlsx_permissions("elradfmw", is_dir=False) == "radfw"
    assert mlsx_permissions("elr", is_dir=True) == "el"


def test_listing_shows_symlink_targets(tmp_path):
    (tmp_path / "target.txt").write_text("t")
    os.symlink("target.txt", tmp_path / "link")
    fs = JailedFilesystem(str(tmp_path))
    text = fs.format_list(str(tmp_path), fs.list_names(str(tmp_path))).decode()
    assert "link -> target.txt\r\n" in text


@pytest.mark.parametrize("split", [1, 2, 3, 5, 7])
def test_ascii_conversion_survives_any_chunking(split):
    local = b"one\ntwo\r\nthree\n\nfour"
    sender = LocalToNetworkText()
    wire = b"".join(sender.convert(local[i : i + split]) for i in range(0, len(local), split))
    wire += sender.finish()
    assert wire == b"one\r\ntwo\r\nthree\r\n\r\nfour"
    receiver = NetworkToLocalText()
    back = b"".join(receiver.convert(wire[i : i + split]) for i in range(0, len(wire), split))
    assert back + receiver.finish() == b"one\ntwo\nthree\n\nfour"


def test_command_lines_lose_crlf_and_telnet_interrupts():
    assert decode_command_line(b"NOOP\r") == "NOOP"
    assert decode_command_line(b"\xff\xf4\xff\xf2ABOR\r") == "ABOR"
    assert decode_command_line(b"RETR caf\xc3\xa9") == "RETR café"
    assert decode_command_line(b"RETR \xe9t\xe9") == "RETR \udce9t\udce9"  # kept byte-exact
