"""Real FTP clients against the server: curl (list, download, upload, resume, active mode) and lftp."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from servers.ftp import BUNDLED_LIBRARY
from servers.launcher import running_server

pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed"),
]


def curl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["curl", "--silent", "--show-error", "--max-time", "20", *args],
        capture_output=True,
        timeout=30,
    )


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    """One library for the curl tests, which share one server (they use distinct names)."""
    root = tmp_path_factory.mktemp("curl") / "library"
    shutil.copytree(BUNDLED_LIBRARY, root)
    return root


@pytest.fixture(scope="module")
def ftp_port(library):
    with running_server("ftp", "threads", options={"root": str(library)}) as server:
        yield server.port


def test_curl_lists_downloads_and_uploads(ftp_port, library, tmp_path):
    base = f"ftp://127.0.0.1:{ftp_port}"
    listing = curl(f"{base}/")
    assert listing.returncode == 0, listing.stderr
    names = [line.split()[-1] for line in listing.stdout.decode().splitlines()]
    assert names == ["README.txt", "data", "docs", "texts", "uploads"]
    names_only = curl("--list-only", f"{base}/texts/")
    assert names_only.stdout.splitlines() == [b"sonnet-18.txt", b"the-road-not-taken.txt"]

    downloaded = tmp_path / "sonnet.txt"
    result = curl("-o", str(downloaded), f"{base}/texts/sonnet-18.txt")
    assert result.returncode == 0, result.stderr
    assert downloaded.read_bytes() == (library / "texts/sonnet-18.txt").read_bytes()

    upload = tmp_path / "report.bin"
    upload.write_bytes(os.urandom(1_500_000))
    result = curl("-T", str(upload), f"{base}/uploads/")
    assert result.returncode == 0, result.stderr
    assert (library / "uploads/report.bin").read_bytes() == upload.read_bytes()

    missing = curl("-o", str(tmp_path / "nothing"), f"{base}/no-such-file.txt")
    assert missing.returncode != 0  # curl reports the 550


def test_curl_resumes_downloads_and_uploads(ftp_port, library, tmp_path):
    base = f"ftp://127.0.0.1:{ftp_port}"
    content = os.urandom(2_000_000)
    (library / "uploads/big.bin").write_bytes(content)

    partial = tmp_path / "big.bin"
    partial.write_bytes(content[:700_000])
    result = curl("-C", "-", "-o", str(partial), f"{base}/uploads/big.bin")
    assert result.returncode == 0, result.stderr
    assert partial.read_bytes() == content  # REST 700000 + RETR

    source = tmp_path / "grow.bin"
    source.write_bytes(content)
    (library / "uploads/grow.bin").write_bytes(content[:1_200_000])
    result = curl("-C", "-", "-T", str(source), f"{base}/uploads/grow.bin")
    assert result.returncode == 0, result.stderr
    assert (library / "uploads/grow.bin").read_bytes() == content  # SIZE + APPE


def test_curl_active_mode_uses_eprt(ftp_port, library, tmp_path):
    target = tmp_path / "road.txt"
    result = curl(
        "--ftp-port",
        "127.0.0.1",
        "-o",
        str(target),
        f"ftp://127.0.0.1:{ftp_port}/texts/the-road-not-taken.txt",
    )
    assert result.returncode == 0, result.stderr
    assert target.read_bytes() == (library / "texts/the-road-not-taken.txt").read_bytes()


@pytest.mark.skipif(shutil.which("lftp") is None, reason="lftp is not installed")
def test_lftp_lists_gets_puts_and_mirrors(start_ftp, tmp_path, users_file, ftp_helpers):
    library = tmp_path / "lftp-library"
    shutil.copytree(BUNDLED_LIBRARY, library)
    port = start_ftp("threads", library, users=str(users_file))
    upload = tmp_path / "up.bin"
    upload.write_bytes(os.urandom(800_000))
    script = "; ".join(
        [
            "set net:max-retries 1",
            "set net:timeout 10",
            f"open -u alice,{ftp_helpers.ALICE_PASSWORD} -p {port} 127.0.0.1",
            "cls -l texts",
            f"get texts/sonnet-18.txt -o {tmp_path}/sonnet.txt",
            f"put {upload} -o uploads/up.bin",
            f"mirror texts {tmp_path}/mirror",
            "mkdir uploads/made-by-lftp",
            "mv uploads/up.bin uploads/moved.bin",
        ]
    )
    result = subprocess.run(["lftp", "-c", script], capture_output=True, timeout=40)
    assert result.returncode == 0, result.stderr
    listing = result.stdout.decode()
    assert "-rw-r--r--" in listing and "texts/sonnet-18.txt" in listing  # MLSD unix.mode parsed
    assert (tmp_path / "sonnet.txt").read_bytes() == (library / "texts/sonnet-18.txt").read_bytes()
    assert (library / "uploads/moved.bin").read_bytes() == upload.read_bytes()
    assert sorted(os.listdir(tmp_path / "mirror")) == ["sonnet-18.txt", "the-road-not-taken.txt"]
    assert (library / "uploads/made-by-lftp").is_dir()
