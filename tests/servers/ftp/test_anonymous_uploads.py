"""The bundled server's classroom default, seen through ftplib: anonymous reads everywhere, writes in uploads/."""

from __future__ import annotations

import ftplib
import io

import pytest

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize("model", ["threads", "epoll"])
def test_anonymous_may_upload_mkdir_rename_and_delete_in_uploads_only(
    model, start_ftp, library, ftp_helpers
):
    port = start_ftp(model, library)
    ftp = ftp_helpers.connect(port, user="")
    try:
        assert ftp.login("anonymous", "guest@") == (
            "230 User anonymous logged in (read everywhere, write in uploads/)."
        )
        ftp.storbinary("STOR uploads/hello.txt", io.BytesIO(b"hi"))
        ftp.mkd("uploads/class")
        ftp.rename("uploads/hello.txt", "uploads/class/hello.txt")
        assert (library / "uploads" / "class" / "hello.txt").read_bytes() == b"hi"
        ftp.delete("uploads/class/hello.txt")
        ftp.rmd("uploads/class")
        assert sorted(p.name for p in (library / "uploads").iterdir()) == ["README.txt"]

        before = sorted(p.name for p in library.iterdir())
        refusals = (
            lambda: ftp.storbinary("STOR planted.txt", io.BytesIO(b"x")),
            lambda: ftp.mkd("texts/new"),
            lambda: ftp.rename("texts/sonnet-18.txt", "texts/renamed.txt"),
            lambda: ftp.rename("uploads/README.txt", "README-moved.txt"),
            lambda: ftp.delete("README.txt"),
            lambda: ftp.rmd("uploads"),
            lambda: ftp.rename("uploads", "drop"),
        )
        for attempt in refusals:
            with pytest.raises(ftplib.error_perm, match="^550"):
                attempt()
        assert sorted(p.name for p in library.iterdir()) == before
        assert (library / "texts" / "sonnet-18.txt").exists()
    finally:
        ftp_helpers.close(ftp)


def test_an_account_with_write_permission_writes_everywhere(
    start_ftp, library, users_file, ftp_helpers
):
    port = start_ftp("threads", library, users=str(users_file))
    ftp = ftp_helpers.connect(port, "alice", ftp_helpers.ALICE_PASSWORD)
    try:
        ftp.mkd("texts/new")
        ftp.rmd("texts/new")
    finally:
        ftp_helpers.close(ftp)
