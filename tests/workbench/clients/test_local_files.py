"""Tests for the local-disk client: browsing and changes on tmp_path, its errors in words, and the
one FileSource contract it shares with the FTP client (the same scenario run on both)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from servers.ftp.users import hash_password
from servers.launcher import running_server
from workbench.clients.files import FileEntry, FileOpError, FileSource, run_renewing
from workbench.clients.ftp import FtpClient, FtpError
from workbench.clients.local_files import LocalFiles

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    (root / "Sub" / "deeper").mkdir(parents=True)
    (root / "Sub" / "deeper" / "leaf.txt").write_text("leaf")
    (root / "alpha").mkdir()
    (root / "b.txt").write_bytes(b"12345")
    (root / "A.txt").write_bytes(b"")
    return root


def test_lists_folders_first_with_sizes_times_and_links(folder: Path) -> None:
    (folder / "link-to-b").symlink_to(folder / "b.txt")
    (folder / "dangling").symlink_to(folder / "nowhere")
    entries = LocalFiles(folder).list_dir()
    assert [entry.name for entry in entries] == [
        "alpha",
        "Sub",
        "A.txt",
        "b.txt",
        "dangling",
        "link-to-b",
    ]
    by_name = {entry.name: entry for entry in entries}
    assert by_name["b.txt"].size == 5 and not by_name["b.txt"].is_dir
    assert by_name["Sub"].is_dir and by_name["Sub"].size is None
    assert by_name["link-to-b"] == FileEntry(
        "link-to-b", False, 5, by_name["link-to-b"].modified, is_link=True
    )
    assert by_name["dangling"] == FileEntry("dangling", False, None, None, is_link=True)
    assert by_name["b.txt"].modified is not None
    assert abs(by_name["b.txt"].modified.timestamp() - (folder / "b.txt").stat().st_mtime) < 1


def test_cwd_goes_relative_absolute_up_and_home(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = LocalFiles(folder)
    assert files.pwd() == str(folder)
    assert files.cwd("Sub") == str(folder / "Sub")
    assert files.cwd("deeper") == str(folder / "Sub" / "deeper")
    assert [entry.name for entry in files.list_dir()] == ["leaf.txt"]
    assert files.cwd("..") == str(folder / "Sub")
    assert files.directory == folder / "Sub"
    assert files.cwd(str(folder / "alpha")) == str(folder / "alpha")
    monkeypatch.setenv("HOME", str(folder / "Sub"))
    assert files.cwd("~/deeper") == str(folder / "Sub" / "deeper")
    assert [entry.name for entry in files.list_dir("..")] == ["deeper"]


def test_cwd_refuses_what_it_cannot_open_and_stays_put(folder: Path) -> None:
    files = LocalFiles(folder)
    with pytest.raises(FileOpError, match=r"cannot open .*no/such: it does not exist$"):
        files.cwd("no/such")
    with pytest.raises(FileOpError, match=r"cannot open .*b\.txt: it is not a folder$"):
        files.cwd("b.txt")
    with pytest.raises(FileOpError, match="it does not exist"):
        files.list_dir("missing")
    assert files.pwd() == str(folder)


def test_exists_and_size(folder: Path) -> None:
    files = LocalFiles(folder)
    (folder / "dangling").symlink_to(folder / "nowhere")
    assert files.exists("b.txt") and files.exists("Sub") and files.exists("dangling")
    assert not files.exists("c.txt")
    assert files.size("b.txt") == 5 and files.size("A.txt") == 0
    assert files.size("Sub") is None and files.size("c.txt") is None


def test_mkdir_and_its_refusal(folder: Path) -> None:
    files = LocalFiles(folder)
    files.mkdir("new")
    assert (folder / "new").is_dir()
    with pytest.raises(FileOpError, match="^cannot create folder new: it already exists$"):
        files.mkdir("new")
    with pytest.raises(FileOpError, match="^cannot create folder b.txt: it already exists$"):
        files.mkdir("b.txt")


def test_rename_never_replaces_an_existing_entry(folder: Path) -> None:
    files = LocalFiles(folder)
    files.rename("b.txt", "c.txt")
    assert (folder / "c.txt").read_bytes() == b"12345" and not (folder / "b.txt").exists()
    with pytest.raises(FileOpError, match="^cannot rename c.txt to A.txt: A.txt already exists$"):
        files.rename("c.txt", "A.txt")
    assert (folder / "A.txt").read_bytes() == b"" and (folder / "c.txt").exists()
    with pytest.raises(FileOpError, match="^cannot rename gone to x: it does not exist"):
        files.rename("gone", "x")


def test_delete_file_and_its_refusals(folder: Path) -> None:
    files = LocalFiles(folder)
    (folder / "link-to-sub").symlink_to(folder / "Sub")
    files.delete_file("b.txt")
    assert not (folder / "b.txt").exists()
    files.delete_file("link-to-sub")  # the link goes, the folder it pointed to stays
    assert not (folder / "link-to-sub").exists() and (folder / "Sub" / "deeper").is_dir()
    with pytest.raises(FileOpError, match="^cannot delete b.txt: it does not exist$"):
        files.delete_file("b.txt")
    with pytest.raises(FileOpError, match="^cannot delete Sub: it is a folder$"):
        files.delete_file("Sub")


def test_remove_dir_plain_recursive_and_links(folder: Path) -> None:
    files = LocalFiles(folder)
    with pytest.raises(FileOpError, match="^cannot remove folder Sub: it is not empty$"):
        files.remove_dir("Sub")
    files.remove_dir("alpha")
    (folder / "link-to-sub").symlink_to(folder / "Sub")
    with pytest.raises(FileOpError, match="^cannot remove folder link-to-sub: it is not a folder"):
        files.remove_dir("link-to-sub", recursive=True)
    assert (folder / "Sub" / "deeper" / "leaf.txt").exists()  # never followed through the link
    files.remove_dir("Sub", recursive=True)
    assert sorted(path.name for path in folder.iterdir()) == ["A.txt", "b.txt", "link-to-sub"]


PERMISSION_PROBE = """
import sys
from workbench.clients.files import FileOpError
from workbench.clients.local_files import LocalFiles
files = LocalFiles(sys.argv[1])
for attempt in (
    lambda: files.mkdir("new"),
    lambda: files.delete_file("kept.txt"),
    lambda: files.remove_dir("inner", recursive=True),
    lambda: files.cwd("closed"),
):
    try:
        attempt()
    except FileOpError as error:
        print(error)
    else:
        print("allowed")
"""


def test_permission_denied_is_said_in_words(tmp_path: Path) -> None:
    """A read-only folder, probed by a process that cannot override file modes (root can)."""
    locked = tmp_path / "locked"
    (locked / "inner").mkdir(parents=True)
    (locked / "inner" / "x").write_text("x")
    (locked / "closed").mkdir()
    (locked / "kept.txt").write_text("kept")
    for path in (locked / "inner", locked):
        path.chmod(0o555)
    (locked / "closed").chmod(0o000)
    command = [sys.executable, "-c", PERMISSION_PROBE, str(locked)]
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("root without setpriv (util-linux) cannot drop its override of file modes")
        command = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--", *command]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=20, check=True)
    finally:
        for path in (locked, locked / "inner", locked / "closed"):
            path.chmod(0o755)
    assert result.stdout.splitlines() == [
        "cannot create folder new: permission denied",
        "cannot delete kept.txt: permission denied",
        "cannot remove folder inner: permission denied (x)",  # rmtree names what it met inside
        f"cannot open {locked / 'closed'}: permission denied",
    ]
    assert (locked / "kept.txt").exists() and (locked / "inner" / "x").exists()


# ---------------------------------------------------------------------------
# One contract, two sources: what a pane does, on the disk and on an FTP server


@pytest.fixture
def ftp_root(tmp_path: Path) -> Path:
    root = tmp_path / "served"
    root.mkdir()
    return root


@pytest.fixture
def ftp_source(ftp_root: Path, tmp_path: Path) -> Iterator[FtpClient]:
    users = tmp_path / "users.txt"
    users.write_text(f"teacher:{hash_password('secret')}:elradfmw\n")
    options = {"root": str(ftp_root), "users": str(users), "login_delay": 0.0}
    with running_server("ftp", "threads", options=options) as proc:
        client = FtpClient("127.0.0.1", proc.port, "teacher", "secret", timeout=10)
        client.connect()
        try:
            yield client
        finally:
            client.close()


@pytest.fixture(params=["local", "ftp"])
def source_and_root(
    request: pytest.FixtureRequest, ftp_root: Path
) -> tuple[FileSource, Path, type[FileOpError]]:
    if request.param == "local":
        return LocalFiles(ftp_root), ftp_root, FileOpError
    return request.getfixturevalue("ftp_source"), ftp_root, FtpError


def names(source: FileSource) -> list[str]:
    return [entry.name for entry in source.list_dir()]


def test_the_pane_scenario_runs_alike_on_both_sources(
    source_and_root: tuple[FileSource, Path, type[FileOpError]],
) -> None:
    source, root, error_type = source_and_root
    (root / "readme.txt").write_text("hello")
    assert names(source) == ["readme.txt"]
    source.mkdir("books")
    assert names(source) == ["books", "readme.txt"]
    assert source.exists("books") and not source.exists("nothing")
    assert source.size("readme.txt") == 5
    source.rename("readme.txt", "read.txt")
    top = source.pwd()
    assert source.cwd("books").rstrip("/").endswith("books")
    source.mkdir("inside")
    (root / "books" / "inside" / "page.txt").write_text("page")
    assert names(source) == ["inside"]
    assert source.cwd("..") == top
    with pytest.raises(error_type) as refused:
        source.remove_dir("books")  # not empty
    assert isinstance(refused.value, FileOpError)
    source.remove_dir("books", recursive=True)
    source.delete_file("read.txt")
    assert names(source) == [] and list(root.iterdir()) == []
    with pytest.raises(FileOpError):
        source.cwd("books")
    assert source.pwd() == top


def test_run_renewing_logs_in_again_only_when_the_source_dropped(
    ftp_source: FtpClient, folder: Path
) -> None:
    calls: list[str] = []

    def listing(source: FileSource) -> list[FileEntry]:
        calls.append("list")
        return source.list_dir()

    ftp_source._forget_if_broken(EOFError(), force=True)  # what a 421 from an idle server does
    assert not ftp_source.connected
    assert run_renewing(ftp_source, listing) == []
    assert ftp_source.connected and calls == ["list", "list"]

    def refused(source: FileSource) -> None:
        calls.append("cwd")
        source.cwd("no-such-folder")

    calls.clear()
    with pytest.raises(FtpError, match="550"):
        run_renewing(ftp_source, refused)  # still connected: a refusal is not retried
    with pytest.raises(FileOpError, match="it does not exist"):
        run_renewing(LocalFiles(folder), refused)  # the disk never drops
    assert calls == ["cwd", "cwd"]
