"""FTP accounts file: salted scrypt/pbkdf2 password hashes, and the command that writes it.

One account per line, ``name:hash:permissions``, ``#`` starts a comment::

    alice:scrypt$16384$8$1$<salt>$<hash>:elradfmw
    bob:pbkdf2_sha256$600000$<salt>$<hash>:elr

Permission letters are pyftpdlib's: e=CWD l=LIST r=RETR (read) and
a=APPE d=DELE/RMD f=RNFR/RNTO m=MKD w=STOR (write).

Usage::

    python -m servers.ftp.users add users.txt alice --write      # asks for the password
    python -m servers.ftp.users add users.txt bob --password-stdin < secret
    python -m servers.ftp.users remove users.txt bob
    python -m servers.ftp.users list users.txt
"""

from __future__ import annotations

import argparse
import base64
import getpass
import hashlib
import hmac
import os
import posixpath
import sys
from dataclasses import dataclass

READ_PERMISSIONS = "elr"
WRITE_PERMISSIONS = "elradfmw"
ALL_PERMISSIONS = set(WRITE_PERMISSIONS)

_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**14, 8, 1
_PBKDF2_ITERATIONS = 600_000


class UsersFileError(ValueError):
    """The users file cannot be read: the message names the line."""


@dataclass(frozen=True)
class Account:
    name: str
    password_hash: str
    permissions: str


def hash_password(password: str, scheme: str = "scrypt") -> str:
    """A self-describing salted hash: ``scheme$params$salt$digest`` (base64)."""
    salt = os.urandom(16)
    if scheme == "scrypt":
        digest = hashlib.scrypt(
            password.encode(), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P, dklen=32
        )
        return f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${_b64(salt)}${_b64(digest)}"
    if scheme == "pbkdf2_sha256":
        digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, _PBKDF2_ITERATIONS)
        return f"pbkdf2_sha256${_PBKDF2_ITERATIONS}${_b64(salt)}${_b64(digest)}"
    raise ValueError(f"unknown hash scheme {scheme!r} (use scrypt or pbkdf2_sha256)")


def verify_password(password: str, password_hash: str) -> bool:
    """True if ``password`` matches; constant-time comparison, False on a malformed hash."""
    try:
        scheme, *fields = password_hash.split("$")
        if scheme == "scrypt":
            n, r, p, salt, expected = fields
            digest = hashlib.scrypt(
                password.encode(),
                salt=_unb64(salt),
                n=int(n),
                r=int(r),
                p=int(p),
                dklen=len(_unb64(expected)),
                maxmem=256 * 1024 * 1024,
            )
        elif scheme == "pbkdf2_sha256":
            iterations, salt, expected = fields
            digest = hashlib.pbkdf2_hmac("sha256", password.encode(), _unb64(salt), int(iterations))
        else:
            return False
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(digest, _unb64(expected))


def load_accounts(path: str) -> dict[str, Account]:
    """Read a users file; raises UsersFileError naming the bad line."""
    accounts: dict[str, Account] = {}
    try:
        with open(path, encoding="utf-8") as file:
            lines = file.readlines()
    except OSError as error:
        raise UsersFileError(f"cannot read users file {path}: {error.strerror}") from error
    for number, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(":")
        if len(parts) != 3 or not parts[0] or not parts[1]:
            raise UsersFileError(f"{path}:{number}: expected name:hash:permissions")
        name, password_hash, permissions = parts
        unknown = set(permissions) - ALL_PERMISSIONS
        if unknown:
            raise UsersFileError(
                f"{path}:{number}: unknown permission letters {''.join(sorted(unknown))!r}"
            )
        accounts[name] = Account(name, password_hash, permissions)
    return accounts


def save_accounts(path: str, accounts: dict[str, Account]) -> None:
    """Write atomically (temp file + rename), readable by the owner only."""
    temporary = f"{path}.tmp{os.getpid()}"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        file.write("# FTP accounts: name:hash:permissions (see servers/ftp/users.py)\n")
        for account in accounts.values():
            file.write(f"{account.name}:{account.password_hash}:{account.permissions}\n")
    os.replace(temporary, path)


class Authorizer:
    """Who may log in and with which permission letters (pyftpdlib's authorizer role).

    Anonymous (``anonymous`` or ``ftp``, any password) is the classroom default:
    read everywhere, and write (upload, new folder, rename, delete) inside the
    drop box folder ``/uploads/`` only — what pyftpdlib's ``override_perm`` does
    for a folder. ``read_only`` takes every write letter away from everybody. An
    unknown name costs as much time as a wrong password, so the timing of a
    refusal does not tell which names exist.
    """

    ANONYMOUS_NAMES = frozenset({"anonymous", "ftp"})
    ANONYMOUS_PERMISSIONS = READ_PERMISSIONS
    #: The folder (virtual path) where anonymous may also write; what is in it, not the folder itself.
    ANONYMOUS_WRITE_FOLDER = "/uploads"

    def __init__(
        self,
        accounts: dict[str, Account] | None = None,
        *,
        allow_anonymous: bool = True,
        read_only: bool = False,
        anonymous_write_folder: str | None = ANONYMOUS_WRITE_FOLDER,
    ) -> None:
        self.accounts = accounts or {}
        self.allow_anonymous = allow_anonymous
        self.read_only = read_only
        self.anonymous_write_folder = (
            "/" + anonymous_write_folder.strip("/") if anonymous_write_folder else None
        )
        self._decoy_hash: str | None = None  # made on first use: logins stay cheap to set up

    def is_anonymous(self, name: str) -> bool:
        return name.lower() in self.ANONYMOUS_NAMES and name not in self.accounts

    def permissions_at(self, name: str, permissions: str, virtual_path: str) -> str:
        """The letters that apply to ``virtual_path`` (absolute, normalised) for login ``name``.

        An anonymous login gets the write letters for what lies inside the
        anonymous write folder; everywhere else (the folder itself included, so
        it cannot be renamed or removed) its login letters stand.
        """
        folder = self.anonymous_write_folder
        if folder is None or not self.is_anonymous(name):
            return permissions
        path = posixpath.normpath("/" + virtual_path.lstrip("/"))
        if path.startswith(folder.rstrip("/") + "/"):
            return self._restrict(WRITE_PERMISSIONS)
        return permissions

    def describe(self, name: str, permissions: str) -> str:
        """What a login may do, in words (the 230 reply says it, and the FTP tab shows it)."""
        may_write = bool(set(permissions) - set(READ_PERMISSIONS))
        if self.is_anonymous(name) and self.anonymous_write_folder and not self.read_only:
            return f"read everywhere, write in {self.anonymous_write_folder.lstrip('/')}/"
        return "read-write" if may_write else "read-only"

    def authenticate(self, name: str, password: str) -> str | None:
        """Permission letters for a good login, None for a refused one."""
        if self.is_anonymous(name):
            return self._restrict(self.ANONYMOUS_PERMISSIONS) if self.allow_anonymous else None
        account = self.accounts.get(name)
        if account is None:
            if self._decoy_hash is None:
                self._decoy_hash = hash_password("decoy")
            verify_password(password, self._decoy_hash)
            return None
        if not verify_password(password, account.password_hash):
            return None
        return self._restrict(account.permissions)

    def _restrict(self, permissions: str) -> str:
        if self.read_only:
            return "".join(letter for letter in permissions if letter in READ_PERMISSIONS)
        return permissions


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("Password: ")
    if first != getpass.getpass("Again: "):
        raise SystemExit("passwords differ; nothing written")
    return first


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m servers.ftp.users", description="Manage the FTP server's users file."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    add = commands.add_parser("add", help="add or replace an account")
    add.add_argument("file")
    add.add_argument("name")
    add.add_argument("--write", action="store_true", help="may upload, delete, rename, mkdir")
    add.add_argument("--permissions", help="explicit letters, e.g. elrw (overrides --write)")
    add.add_argument("--scheme", choices=("scrypt", "pbkdf2_sha256"), default="scrypt")
    add.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    remove = commands.add_parser("remove", help="remove an account")
    remove.add_argument("file")
    remove.add_argument("name")
    listing = commands.add_parser("list", help="show accounts and permissions")
    listing.add_argument("file")
    options = parser.parse_args(argv)

    try:
        exists = os.path.exists(options.file)
        accounts = load_accounts(options.file) if exists else {}
    except UsersFileError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1

    if options.command == "list":
        for account in accounts.values():
            print(f"{account.name}\t{account.permissions}\t{account.password_hash.split('$')[0]}")
        return 0
    if options.command == "remove":
        if accounts.pop(options.name, None) is None:
            print(f"error: no account {options.name!r}", file=sys.stderr)
            return 1
        save_accounts(options.file, accounts)
        return 0

    if ":" in options.name or not options.name.strip() or options.name != options.name.strip():
        print("error: account names cannot contain ':' or surrounding spaces", file=sys.stderr)
        return 1
    permissions = options.permissions or (WRITE_PERMISSIONS if options.write else READ_PERMISSIONS)
    unknown = set(permissions) - ALL_PERMISSIONS
    if unknown:
        print(f"error: unknown permission letters {''.join(sorted(unknown))!r}", file=sys.stderr)
        return 1
    password = _read_password(options.password_stdin)
    if not password:
        print("error: empty password", file=sys.stderr)
        return 1
    accounts[options.name] = Account(
        options.name, hash_password(password, options.scheme), permissions
    )
    save_accounts(options.file, accounts)
    print(f"saved {options.name} ({permissions}) to {options.file}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
