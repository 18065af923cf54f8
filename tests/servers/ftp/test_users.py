"""Accounts file and password hashes: salted, verifiable, rejected when wrong; the users command."""

from __future__ import annotations

import io
import os
import stat

import pytest

from servers.ftp import users
from servers.ftp.users import (
    Account,
    Authorizer,
    UsersFileError,
    hash_password,
    load_accounts,
    verify_password,
)

pytestmark = pytest.mark.timeout(30)


@pytest.fixture(autouse=True)
def quick_pbkdf2(monkeypatch):
    """Hashes here test the format, not the cost: fewer PBKDF2 rounds keep the suite fast."""
    monkeypatch.setattr(users, "_PBKDF2_ITERATIONS", 1000)


@pytest.mark.parametrize("scheme", ["scrypt", "pbkdf2_sha256"])
def test_hash_is_salted_and_verifies(scheme):
    first = hash_password("open sesame", scheme)
    second = hash_password("open sesame", scheme)
    assert first != second  # a fresh salt every time
    assert first.startswith(scheme + "$")
    assert verify_password("open sesame", first)
    assert not verify_password("open sesame!", first)


@pytest.mark.parametrize("bad", ["", "md5$x$y", "scrypt$1$2", "scrypt$16384$8$1$!!$!!", "plain"])
def test_malformed_hash_never_verifies(bad):
    assert not verify_password("anything", bad)


def test_users_command_writes_a_private_file_and_lists_it(tmp_path, monkeypatch, capsys):
    path = str(tmp_path / "users.txt")
    monkeypatch.setattr("sys.stdin", io.StringIO("pw-alice\n"))
    assert users.main(["add", path, "alice", "--write", "--password-stdin"]) == 0
    monkeypatch.setattr("sys.stdin", io.StringIO("pw-bob\n"))
    assert users.main(["add", path, "bob", "--password-stdin", "--scheme", "pbkdf2_sha256"]) == 0
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    text = (tmp_path / "users.txt").read_text()
    assert "pw-alice" not in text and "pw-bob" not in text
    accounts = load_accounts(path)
    assert accounts["alice"].permissions == "elradfmw"
    assert accounts["bob"].permissions == "elr"
    assert verify_password("pw-bob", accounts["bob"].password_hash)
    capsys.readouterr()
    assert users.main(["list", path]) == 0
    assert "alice\telradfmw\tscrypt" in capsys.readouterr().out
    assert users.main(["remove", path, "bob"]) == 0
    assert set(load_accounts(path)) == {"alice"}
    assert users.main(["remove", path, "bob"]) == 1


def test_users_command_rejects_bad_names_and_letters(tmp_path, monkeypatch):
    path = str(tmp_path / "users.txt")
    monkeypatch.setattr("sys.stdin", io.StringIO("pw\n"))
    assert users.main(["add", path, "a:b", "--password-stdin"]) == 1
    assert users.main(["add", path, "carol", "--permissions", "elrZ", "--password-stdin"]) == 1
    assert not os.path.exists(path)


@pytest.mark.parametrize(
    "content", ["alice\n", "alice:scrypt$x:elrQ\n", ":hash:elr\n", "a:b:c:d\n"]
)
def test_bad_users_file_names_the_line(tmp_path, content):
    path = tmp_path / "users.txt"
    path.write_text("# comment\n\n" + content)
    with pytest.raises(UsersFileError, match=r"users.txt:3"):
        load_accounts(str(path))


def test_missing_users_file_is_a_clear_error(tmp_path):
    with pytest.raises(UsersFileError, match="cannot read users file"):
        load_accounts(str(tmp_path / "nope.txt"))


def read_only_anonymous_in_uploads() -> str:
    return Authorizer({}, read_only=True).permissions_at("anonymous", "elr", "/uploads/x")


def test_authorizer_rules():
    alice = Account("alice", hash_password("pw"), "elradfmw")
    authorizer = Authorizer({"alice": alice})
    assert authorizer.authenticate("alice", "pw") == "elradfmw"
    assert authorizer.authenticate("alice", "wrong") is None
    assert authorizer.authenticate("mallory", "pw") is None
    assert authorizer.authenticate("anonymous", "me@example.org") == "elr"
    assert authorizer.authenticate("FTP", "") == "elr"
    # Anonymous writes inside /uploads only; a named account is the same everywhere.
    assert authorizer.permissions_at("anonymous", "elr", "/uploads/a.txt") == "elradfmw"
    assert authorizer.permissions_at("anonymous", "elr", "/uploads") == "elr"
    assert authorizer.permissions_at("anonymous", "elr", "/uploads-not/a.txt") == "elr"
    assert authorizer.permissions_at("alice", "elr", "/uploads/a.txt") == "elr"
    assert read_only_anonymous_in_uploads() == "elr"
    read_only = Authorizer({"alice": alice}, read_only=True)
    assert read_only.authenticate("alice", "pw") == "elr"
    assert read_only.authenticate("anonymous", "") == "elr"
    assert Authorizer({}, allow_anonymous=False).authenticate("anonymous", "x") is None
