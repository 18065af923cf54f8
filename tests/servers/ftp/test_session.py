"""The FTP protocol core without sockets: reply codes, login rules, paths, transfer actions."""

from __future__ import annotations

import os

import pytest

from servers.ftp.filesystem import JailedFilesystem
from servers.ftp.session import (
    TRANSFER_ABORTED,
    TRANSFER_BROKEN,
    TRANSFER_COMPLETE,
    TRANSFER_NO_CONNECTION,
    CloseDataChannel,
    FTPSession,
    FTPSettings,
    OpenPassive,
    ReceiveFile,
    SendFile,
    SendListing,
    TransferResult,
    UseActive,
    format_reply,
)
from servers.ftp.users import Account, Authorizer, hash_password

pytestmark = pytest.mark.timeout(20)


class RecordingStats:
    def __init__(self) -> None:
        self.requests: list[str] = []
        self.errors: list[str] = []

    def count_request(self, detail: str | None = None) -> None:
        self.requests.append(detail or "")

    def count_error(self, detail: str) -> None:
        self.errors.append(detail)


@pytest.fixture
def root(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.txt").write_bytes(b"line one\nline two\n")
    (tmp_path / "empty").mkdir()
    (tmp_path / "big.bin").write_bytes(bytes(range(256)) * 4)
    return tmp_path


@pytest.fixture(scope="module")
def alice_hash():
    return hash_password("wonderland")


def make_session(
    root,
    *,
    accounts=None,
    read_only=False,
    anonymous=True,
    client="127.0.0.1",
    anonymous_write_folder="/",
):
    # Most tests here are about transfers, so anonymous may write anywhere in their root;
    # the classroom default (writes in uploads/ only) has its own tests below.
    authorizer = Authorizer(
        accounts or {},
        allow_anonymous=anonymous,
        read_only=read_only,
        anonymous_write_folder=anonymous_write_folder,
    )
    stats = RecordingStats()
    session = FTPSession(
        JailedFilesystem(str(root)),
        authorizer,
        (client, 40000),
        FTPSettings(login_delay=0.25, max_login_attempts=3),
        stats,
    )
    return session, stats


def codes(outcome):
    return [int(reply[:3]) for reply in outcome.replies]


def logged_in(root, **kwargs):
    session, stats = make_session(root, **kwargs)
    session.handle_line("USER anonymous")
    assert codes(session.handle_line("PASS guest@")) == [230]
    return session, stats


def test_greeting_is_220(root):
    session, _ = make_session(root)
    assert codes(session.greeting()) == [220]


def test_format_reply_single_and_multiline():
    assert format_reply(200, "ok") == "200 ok\r\n"
    assert (
        format_reply(211, ["Features:", "EPSV", "End"]) == "211-Features:\r\n EPSV\r\n211 End\r\n"
    )


def test_user_is_always_331_whoever_it_is(root, alice_hash):
    session, _ = make_session(root, accounts={"alice": Account("alice", alice_hash, "elr")})
    for name in ("alice", "nobody", "anonymous", "root"):
        outcome = session.handle_line(f"USER {name}")
        assert outcome.replies == ["331 Password required.\r\n"]


def test_anonymous_reads_everywhere_and_writes_in_uploads_only(root):
    (root / "uploads").mkdir()
    (root / "uploads" / "old.txt").write_bytes(b"old")
    session, _ = make_session(root, anonymous_write_folder="/uploads")
    session.handle_line("USER anonymous")
    login = session.handle_line("PASS guest@")
    assert login.replies == [
        "230 User anonymous logged in (read everywhere, write in uploads/).\r\n"
    ]
    assert session.permissions == "elr"
    # Outside uploads/: read-only, and uploads/ itself cannot be renamed or removed.
    for line in ("MKD new", "DELE big.bin", "RNFR big.bin", "RMD uploads", "RNFR uploads"):
        assert codes(session.handle_line(line)) == [550], line
    # Inside: new folder, rename, delete, even from a relative path after CWD.
    assert codes(session.handle_line("MKD uploads/mine")) == [257]
    assert codes(session.handle_line("CWD uploads")) == [250]
    assert codes(session.handle_line("RNFR old.txt")) == [350]
    assert codes(session.handle_line("RNTO mine/renamed.txt")) == [250]
    assert codes(session.handle_line("RNFR mine/renamed.txt")) == [350]
    assert codes(session.handle_line("RNTO ../escaped.txt")) == [550]  # out of uploads/
    assert codes(session.handle_line("DELE mine/renamed.txt")) == [250]
    assert codes(session.handle_line("RMD mine")) == [250]
    assert codes(session.handle_line("RMD ../uploads")) == [550]
    assert sorted(p.name for p in root.iterdir()) == ["big.bin", "docs", "empty", "uploads"]


def test_mlst_perm_facts_follow_the_write_folder(root):
    (root / "uploads").mkdir()
    (root / "uploads" / "a.txt").write_bytes(b"a")
    session, _ = make_session(root, anonymous_write_folder="/uploads")
    session.handle_line("USER anonymous")
    session.handle_line("PASS guest@")
    facts = {
        path: session.handle_line(f"MLST {path}").replies[0].split("\r\n")[1]
        for path in ("big.bin", "uploads", "uploads/a.txt")
    }
    assert "perm=r;" in facts["big.bin"]
    # The folder: create files and folders in it, but not rename or delete it.
    assert "perm=elmcp;" in facts["uploads"]
    assert "perm=radfw;" in facts["uploads/a.txt"]


def test_named_user_login_and_wrong_password_is_delayed(root, alice_hash):
    accounts = {"alice": Account("alice", alice_hash, "elradfmw")}
    session, stats = make_session(root, accounts=accounts)
    session.handle_line("USER alice")
    refused = session.handle_line("PASS nope")
    assert codes(refused) == [530]
    assert refused.delay == 0.25 and not refused.close
    assert any(error.startswith("530") for error in stats.errors)
    session.handle_line("USER alice")
    assert codes(session.handle_line("PASS wonderland")) == [230]
    assert session.permissions == "elradfmw"


def test_three_failed_logins_close_the_connection(root):
    session, _ = make_session(root, anonymous=False)
    for attempt in range(3):
        session.handle_line("USER anonymous")
        outcome = session.handle_line("PASS x")
        assert codes(outcome) == [530]
        assert outcome.close == (attempt == 2)


def test_password_is_never_in_the_stats(root):
    session, stats = make_session(root)
    session.handle_line("USER anonymous")
    session.handle_line("PASS s3cret-value")
    assert "PASS ****" in stats.requests
    assert not any("s3cret" in text for text in stats.requests + stats.errors)


def test_pass_without_user_is_bad_sequence(root):
    session, _ = make_session(root)
    assert codes(session.handle_line("PASS x")) == [503]


@pytest.mark.parametrize("line", ["PWD", "CWD docs", "LIST", "RETR big.bin", "PASV", "MKD x"])
def test_commands_need_login(root, line):
    session, _ = make_session(root)
    assert codes(session.handle_line(line)) == [530]


@pytest.mark.parametrize("line", ["NOOP", "SYST", "FEAT", "HELP", "QUIT", "STAT", "OPTS UTF8 ON"])
def test_commands_allowed_before_login(root, line):
    session, _ = make_session(root)
    assert 200 <= codes(session.handle_line(line))[0] < 300


def test_unknown_not_implemented_and_syntax_errors(root):
    session, stats = logged_in(root)
    assert codes(session.handle_line("FOO bar")) == [500]
    assert codes(session.handle_line("")) == [500]
    assert codes(session.handle_line("SITE CHMOD 777 x")) == [502]
    assert codes(session.handle_line("RETR")) == [501]
    assert codes(session.handle_line("PWD extra")) == [501]
    assert codes(session.handle_line("PASS again")) == [503]
    assert len(stats.errors) == 6


def test_commands_are_case_insensitive_and_counted(root):
    session, stats = logged_in(root)
    assert codes(session.handle_line("pwd")) == [257]
    assert stats.requests[-1] == "PWD"


def test_pwd_cwd_cdup(root):
    session, _ = logged_in(root)
    assert session.handle_line("PWD").replies == ['257 "/" is the current directory.\r\n']
    assert codes(session.handle_line("CWD docs")) == [250]
    assert session.filesystem.cwd == "/docs"
    assert codes(session.handle_line("CWD missing")) == [550]
    assert codes(session.handle_line("CWD a.txt")) == [550]
    assert codes(session.handle_line("CDUP")) == [250]
    assert session.filesystem.cwd == "/"
    assert codes(session.handle_line("CDUP")) == [250]  # .. above / stays at /
    assert session.filesystem.cwd == "/"


def test_pwd_quotes_double_quotes(root):
    (root / 'say "hi"').mkdir()
    session, _ = logged_in(root)
    session.handle_line('CWD say "hi"')
    assert session.handle_line("PWD").replies[0].startswith('257 "/say ""hi""" ')


def test_type_mode_stru(root):
    session, _ = logged_in(root)
    assert codes(session.handle_line("TYPE I")) == [200]
    assert session.transfer_type == "I"
    assert codes(session.handle_line("TYPE A")) == [200]
    assert codes(session.handle_line("TYPE E")) == [504]
    assert codes(session.handle_line("MODE S")) == [200]
    assert codes(session.handle_line("MODE B")) == [504]
    assert codes(session.handle_line("MODE Z")) == [501]
    assert codes(session.handle_line("STRU F")) == [200]
    assert codes(session.handle_line("STRU R")) == [504]


def test_feat_help_opts(root):
    session, _ = make_session(root)
    feat = "".join(session.handle_line("FEAT").replies)
    for feature in ("EPSV", "EPRT", "MLST", "REST STREAM", "SIZE", "MDTM", "UTF8"):
        assert feature in feat
    assert codes(session.handle_line("HELP RETR")) == [214]
    assert codes(session.handle_line("HELP BOGUS")) == [501]
    assert codes(session.handle_line("OPTS UTF8 OFF")) == [504]
    assert codes(session.handle_line("OPTS FOO")) == [501]
    reply = session.handle_line("OPTS MLST size;type;bogus;").replies[0]
    assert reply == "200 MLST OPTS type;size;\r\n"


def test_pasv_and_epsv_ask_the_shell_to_listen(root):
    session, _ = logged_in(root)
    outcome = session.handle_line("PASV")
    assert outcome.replies == [] and outcome.action == OpenPassive(extended=False)
    assert session.passive_opened("127.0.0.1", 50000, False).replies == [
        "227 Entering passive mode (127,0,0,1,195,80).\r\n"
    ]
    assert session.handle_line("EPSV").action == OpenPassive(extended=True)
    assert "(|||50001|)" in session.passive_opened("127.0.0.1", 50001, True).replies[0]
    assert codes(session.handle_line("EPSV 2")) == [522]
    assert codes(session.handle_line("EPSV 7")) == [501]


def test_epsv_all_locks_out_the_other_setups(root):
    session, _ = logged_in(root)
    assert codes(session.handle_line("EPSV ALL")) == [200]
    for line in ("PASV", "PORT 127,0,0,1,200,0", "EPRT |1|127.0.0.1|51200|"):
        assert codes(session.handle_line(line)) == [503]
    assert isinstance(session.handle_line("EPSV").action, OpenPassive)


def test_port_and_eprt_to_the_client_are_accepted(root):
    session, _ = logged_in(root)
    outcome = session.handle_line("PORT 127,0,0,1,200,10")
    assert codes(outcome) == [200] and outcome.action == UseActive("127.0.0.1", 200 * 256 + 10)
    outcome = session.handle_line("EPRT |1|127.0.0.1|51200|")
    assert codes(outcome) == [200] and outcome.action == UseActive("127.0.0.1", 51200)


@pytest.mark.parametrize(
    ("line", "code"),
    [
        ("PORT 10,0,0,7,200,10", 504),  # bounce: another host
        ("PORT 127,0,0,1,0,21", 504),  # bounce: a privileged port
        ("EPRT |1|192.168.1.9|5000|", 504),
        ("EPRT |1|127.0.0.1|25|", 504),
        ("PORT 127,0,0,1,300,1", 501),
        ("PORT 127,0,0,1,2", 501),
        ("PORT a,b,c,d,e,f", 501),
        ("EPRT |2|::1|5000|", 522),
        ("EPRT |1|::1|5000|", 501),
        ("EPRT |1|127.0.0.1|", 501),
        ("EPRT |3|127.0.0.1|5000|", 501),
    ],
)
def test_bounce_and_bad_active_addresses_are_refused(root, line, code):
    session, _ = logged_in(root)
    outcome = session.handle_line(line)
    assert codes(outcome) == [code] and outcome.action is None
    assert not session.data_channel_ready


def test_ipv4_mapped_client_may_use_port(root):
    session, _ = logged_in(root, client="::ffff:127.0.0.1")
    assert codes(session.handle_line("PORT 127,0,0,1,200,10")) == [200]


def test_transfers_need_a_data_channel(root):
    session, _ = logged_in(root)
    for line in ("RETR big.bin", "STOR new.bin", "LIST", "NLST", "MLSD"):
        assert codes(session.handle_line(line)) == [425]


def ready(session):
    session.handle_line("PASV")
    session.passive_opened("127.0.0.1", 50000, False)


def test_retr_asks_for_sendfile_and_226_on_completion(root):
    session, stats = logged_in(root)
    session.handle_line("TYPE I")
    ready(session)
    outcome = session.handle_line("RETR big.bin")
    assert codes(outcome) == [150]
    assert outcome.action == SendFile(str(root / "big.bin"), 0, ascii=False)
    done = session.transfer_done(TransferResult(TRANSFER_COMPLETE, 1024))
    assert done.replies == ["226 Transfer complete (1024 bytes).\r\n"]
    assert not session.data_channel_ready
    assert "RETR big.bin" in stats.requests


def test_rest_resumes_retr_and_stor_in_binary_only(root):
    session, _ = logged_in(root)
    assert codes(session.handle_line("REST 10")) == [501]  # ASCII mode
    session.handle_line("TYPE I")
    assert codes(session.handle_line("REST x")) == [501]
    assert codes(session.handle_line("REST -1")) == [501]
    assert codes(session.handle_line("REST 100")) == [350]
    ready(session)
    assert session.handle_line("RETR big.bin").action.offset == 100
    session.transfer_done(TransferResult(TRANSFER_COMPLETE, 924))
    ready(session)
    assert session.handle_line("RETR big.bin").action.offset == 0  # REST is used once
    session.transfer_done(TransferResult(TRANSFER_COMPLETE, 1024))
    session.handle_line("REST 512")
    ready(session)
    assert session.handle_line("STOR big.bin").action == ReceiveFile(
        str(root / "big.bin"), 512, ascii=False
    )


def test_rest_beyond_the_end_is_554(root):
    session, _ = logged_in(root)
    session.handle_line("TYPE I")
    session.handle_line("REST 5000")
    ready(session)
    assert codes(session.handle_line("RETR big.bin")) == [554]
    session.handle_line("REST 5000")
    assert codes(session.handle_line("STOR big.bin")) == [554]
    assert session.restart_offset == 0


def test_appe_keeps_the_existing_content(root):
    session, _ = logged_in(root)
    session.handle_line("TYPE I")
    ready(session)
    outcome = session.handle_line("APPE big.bin")
    assert outcome.action == ReceiveFile(str(root / "big.bin"), 1024, ascii=False)


def test_stor_refusals(root):
    session, _ = logged_in(root)
    ready(session)
    assert codes(session.handle_line("STOR missing-dir/x")) == [553]
    assert codes(session.handle_line("STOR docs")) == [550]
    # ".." above "/" is clamped: this names <root>/etc/passwd, whose folder does not exist.
    assert codes(session.handle_line("STOR ../../etc/passwd")) == [553]
    outcome = session.handle_line("STOR ../outside.txt")
    assert outcome.action.path == str(root / "outside.txt")
    failed = session.transfer_done(TransferResult(TRANSFER_NO_CONNECTION, 0, "timed out"))
    assert codes(failed) == [425]


def test_read_only_refuses_writes(root):
    session, _ = logged_in(root, read_only=True)
    ready(session)
    for line in ("STOR x", "APPE x", "DELE big.bin", "MKD d", "RMD empty", "RNFR big.bin"):
        assert codes(session.handle_line(line)) == [550], line
    assert codes(session.handle_line("RETR big.bin")) == [150]


def test_listings_are_sent_as_data(root):
    session, _ = logged_in(root)
    ready(session)
    listing = session.handle_line("LIST -la docs").action
    assert isinstance(listing, SendListing)
    line = listing.payload.decode()
    assert line.startswith("-rw") and line.endswith(" a.txt\r\n")
    session.transfer_done(TransferResult(TRANSFER_COMPLETE, len(listing.payload)))
    ready(session)
    assert session.handle_line("NLST").action.payload == b"big.bin\r\ndocs\r\nempty\r\n"
    session.transfer_done(TransferResult(TRANSFER_COMPLETE, 1))
    ready(session)
    mlsd = session.handle_line("MLSD").action.payload.decode().splitlines()
    assert any(entry.startswith("type=dir;") and entry.endswith(" docs") for entry in mlsd)
    assert any("size=1024;" in entry and entry.endswith(" big.bin") for entry in mlsd)
    session.transfer_done(TransferResult(TRANSFER_COMPLETE, 1))
    ready(session)
    assert codes(session.handle_line("LIST nothing-here")) == [550]
    assert codes(session.handle_line("MLSD big.bin")) == [501]


def test_mlst_size_mdtm(root):
    session, _ = logged_in(root)
    mlst = session.handle_line("MLST docs/a.txt")
    assert codes(mlst) == [250]
    assert "type=file;size=18;" in mlst.replies[0] and "/docs/a.txt" in mlst.replies[0]
    assert session.handle_line("SIZE big.bin").replies == ["213 1024\r\n"]
    assert codes(session.handle_line("SIZE docs")) == [550]
    mdtm = session.handle_line("MDTM big.bin").replies[0]
    assert mdtm.startswith("213 ") and len(mdtm.strip()) == 18


def test_stat_with_a_path_lists_on_the_control_connection(root):
    session, _ = logged_in(root)
    reply = session.handle_line("STAT docs").replies[0]
    assert (
        reply.startswith("213-")
        and " a.txt\r\n" in reply
        and reply.endswith("213 End of status.\r\n")
    )


def test_dele_mkd_rmd_rename(root):
    session, _ = logged_in(root, read_only=False)
    session.permissions = "elradfmw"  # as a named user with write permission
    assert codes(session.handle_line("MKD new")) == [257]
    assert codes(session.handle_line("MKD new")) == [550]
    assert codes(session.handle_line("RMD docs")) == [550]  # not empty
    assert codes(session.handle_line("RMD new")) == [250]
    assert codes(session.handle_line("RMD /")) == [550]
    assert codes(session.handle_line("DELE docs")) == [550]
    assert codes(session.handle_line("RNFR big.bin")) == [350]
    assert codes(session.handle_line("RNTO renamed.bin")) == [250]
    assert (root / "renamed.bin").exists() and not (root / "big.bin").exists()
    assert codes(session.handle_line("RNFR renamed.bin")) == [350]
    session.handle_line("NOOP")
    assert codes(session.handle_line("RNTO again.bin")) == [503]  # RNFR must come right before
    assert codes(session.handle_line("DELE renamed.bin")) == [250]
    assert codes(session.handle_line("DELE renamed.bin")) == [550]


@pytest.mark.parametrize(
    "path", ["../../../etc/passwd", "/../etc/passwd", "docs/../../x", "outside-link/secret"]
)
def test_paths_never_leave_the_root(root, tmp_path_factory, path):
    outside = tmp_path_factory.mktemp("outside")
    (outside / "secret").write_text("secret")
    os.symlink(outside, root / "outside-link")
    session, _ = logged_in(root)
    ready(session)
    outcome = session.handle_line(f"RETR {path}")
    assert codes(outcome) == [550]


def test_symlink_out_is_refused_for_cwd_and_listing(root, tmp_path_factory):
    outside = tmp_path_factory.mktemp("outside")
    os.symlink(outside, root / "escape")
    session, _ = logged_in(root)
    assert codes(session.handle_line("CWD escape")) == [550]
    assert codes(session.handle_line("SIZE escape/anything")) == [550]
    ready(session)
    payload = session.handle_line("MLSD").action.payload.decode()
    assert "escape" not in payload  # facts of what lies outside are never shown


def test_abort_results(root):
    session, _ = logged_in(root)
    assert session.handle_line("ABOR").replies == ["225 No transfer to abort.\r\n"]
    ready(session)
    outcome = session.handle_line("ABOR")
    assert codes(outcome) == [225] and outcome.action == CloseDataChannel()
    ready(session)
    session.handle_line("RETR big.bin")
    assert session.interrupts_transfer("ABOR") and not session.interrupts_transfer("NOOP")
    aborted = session.transfer_done(TransferResult(TRANSFER_ABORTED, 10))
    assert codes(aborted) == [426, 226]
    ready(session)
    session.handle_line("RETR big.bin")
    assert codes(session.transfer_done(TransferResult(TRANSFER_BROKEN, 10, "reset"))) == [426]


def test_idle_timeout_and_long_lines(root):
    session, _ = make_session(root)
    timeout = session.idle_timeout()
    assert codes(timeout) == [421] and timeout.close
    assert codes(session.line_too_long()) == [500]


def test_quit_closes(root):
    session, _ = make_session(root)
    outcome = session.handle_line("QUIT")
    assert codes(outcome) == [221] and outcome.close
