"""Labs tab: labs listed and explained, parameters checked, real runs in a child process shown, cancelled and cleaned up."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import psutil
import pytest
from textual.widgets import Input, ListView, Switch

from tests.helpers.pilot import notices, run_async, wait_until
from tests.helpers.workbench import QuietServerManager
from workbench.app import WorkbenchApp
from workbench.help import HelpScreen, build_help
from workbench.labs import all_labs
from workbench.labs.concepts import LABS_BY_MODEL, labs_showing, related_labs_markdown
from workbench.labs.runner import LabProcess, lab_command
from workbench.messages import ServersUpdated
from workbench.server_manager import ServerRow
from workbench.tabs import labs as labs_tab_module
from workbench.tabs.labs import LabsTab, short_term
from workbench.widgets.lab_output import LabOutput
from workbench.widgets.lab_params import LabParamsForm

pytestmark = pytest.mark.timeout(60)

SIZE = (120, 32)
TEST_LABS_SCRIPT = Path(__file__).with_name("labs_for_tab_tests.py")


def _load_test_labs():
    spec = importlib.util.spec_from_file_location("labs_for_tab_tests", TEST_LABS_SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


test_labs = _load_test_labs()


def test_lab_command(name: str, params) -> list[str]:
    """The real command line, with the test labs' script in place of ``-m workbench.labs``."""
    return [sys.executable, str(TEST_LABS_SCRIPT), *lab_command(name, params)[3:]]


test_lab_command.__test__ = False  # type: ignore[attr-defined]  # a helper, not a test


@pytest.fixture
def with_test_labs(monkeypatch):
    """The Labs tab lists the test labs and runs them through their script."""
    monkeypatch.setattr(labs_tab_module, "all_labs", lambda: list(test_labs.TEST_LABS))
    monkeypatch.setattr(labs_tab_module, "lab_command", test_lab_command)


def labs_app(theme: str = "dark") -> WorkbenchApp:
    return WorkbenchApp(
        server_manager=QuietServerManager(),
        start_servers=False,
        initial_tab="labs",
        theme_name=theme,
    )


async def run_finished(pilot, tab: LabsTab, lab: str) -> None:
    await wait_until(
        pilot, lambda: lab in tab.runs and tab.runs[lab].state != "running" and not tab.running
    )


# -- selecting and parameters ------------------------------------------------------------


@run_async
async def test_selecting_a_lab_shows_its_explanation_and_parameters(with_test_labs):
    app = labs_app()
    async with app.run_test(size=SIZE) as pilot:
        tab = app.query_one(LabsTab)
        await wait_until(pilot, lambda: isinstance(app.focused, ListView))
        assert str(tab.query_one("#lab-title").render()) == test_labs.LoopbackChunksLab.title
        assert "粘包 · course section 1.3.4" in str(tab.query_one("#lab-course").render())
        assert tab.form.field("messages").value == "4"
        assert isinstance(tab.form.field("announce"), Switch)
        assert tab.form.field("announce").value is True
        await pilot.press("down")
        await wait_until(
            pilot, lambda: tab.selected is not None and tab.selected.name == "slow-fork"
        )
        await pilot.pause()
        assert "Forks a sleeping child" in str(tab.query_one("#lab-explanation").render())
        assert tab.form.field("seconds").value == "30.0"
        assert len(tab.query(LabParamsForm)) == 1
        # The list reads with the course's term first.
        labels = [str(label.render()) for label in tab.query("#lab-list Label")]
        assert labels[:2] == ["粘包 loopback-chunks", "fork slow-fork"]


@run_async
async def test_typed_values_stay_when_looking_at_another_lab_and_back(with_test_labs):
    app = labs_app()
    async with app.run_test(size=SIZE) as pilot:
        tab = app.query_one(LabsTab)
        await pilot.pause()
        tab.form.field("messages").value = "7"
        await pilot.press("down")
        await wait_until(pilot, lambda: tab.selected.name == "slow-fork")
        await pilot.press("up")
        await wait_until(pilot, lambda: tab.selected.name == "loopback-chunks")
        await pilot.pause()
        assert tab.form.field("messages").value == "7"


@run_async
async def test_a_bad_value_is_explained_and_the_lab_does_not_run(with_test_labs):
    app = labs_app()
    async with app.run_test(size=SIZE) as pilot:
        tab = app.query_one(LabsTab)
        await pilot.pause()
        field = tab.form.field("messages")
        assert isinstance(field, Input)
        field.focus()
        field.value = ""
        await pilot.press("9", "9")
        await pilot.pause()
        error = tab.form.query_one("#param-error")
        assert "messages must be at most 50, not 99" in str(error.render())
        assert error.display and field.has_class("-invalid")
        await pilot.press("enter")  # Enter in a field runs, if every value is good
        await pilot.pause()
        assert not tab.runs and tab.running is None
        assert any("at most 50" in notice for notice in notices(app))
        assert app.focused is field
        field.value = "three"
        await pilot.pause()
        assert "whole number" in str(error.render())
        field.value = "3"
        await pilot.pause()
        assert not error.display and not field.has_class("-invalid")


@run_async
async def test_a_click_in_the_list_shows_a_lab_without_running_it(with_test_labs):
    app = labs_app()
    async with app.run_test(size=SIZE) as pilot:
        tab = app.query_one(LabsTab)
        await pilot.pause()
        items = tab.query("#lab-list ListItem")
        await pilot.click(items[2])
        await wait_until(pilot, lambda: tab.selected.name == "broken")
        await pilot.pause()
        assert not tab.runs and tab.running is None


# -- running ----------------------------------------------------------------------------


@run_async
async def test_a_run_shows_the_childs_lines_table_figures_and_verdict(with_test_labs):
    app = labs_app()
    async with app.run_test(size=SIZE) as pilot:
        tab = app.query_one(LabsTab)
        output = tab.query_one(LabOutput)
        await pilot.pause()
        tab.form.field("messages").value = "3"
        await pilot.press("r")
        await run_finished(pilot, tab, "loopback-chunks")
        await pilot.pause()
        run = tab.runs["loopback-chunks"]
        assert run.state == "done", run.events
        assert run.params == {"messages": 3}
        assert output.lines == ["sent message 0", "sent message 1", "sent message 2"]
        total = len(b"".join(f"message {n};".encode() for n in range(3)))
        assert output.figures == {"messages": "3", "bytes": str(total)}
        assert output.verdict.startswith("3 messages arrived as ")
        assert output.query(".lab-table") and output.query(".lab-verdict")
        status = str(tab.query_one("#lab-status").render())
        assert status.startswith("✓ loopback-chunks done in") and "messages=3" in status

        # The switch reaches the child too: no line per message this time.
        await pilot.click(tab.form.field("announce"))
        await pilot.pause()
        assert tab.form.field("announce").value is False
        assert app.focused is tab.form.field("announce")
        await pilot.press("ctrl+r")  # r would be text in a field: Ctrl+R runs from anywhere
        await wait_until(pilot, lambda: tab.runs["loopback-chunks"] is not run)
        await run_finished(pilot, tab, "loopback-chunks")
        await pilot.pause()
        assert tab.runs["loopback-chunks"].params == {"messages": 3, "announce": False}
        assert output.lines == []
        assert output.figures["messages"] == "3"


@run_async
async def test_a_failing_lab_shows_its_error(with_test_labs):
    app = labs_app()
    async with app.run_test(size=SIZE) as pilot:
        tab = app.query_one(LabsTab)
        await pilot.pause()
        tab.select_lab("broken")
        await pilot.pause()
        assert isinstance(app.focused, ListView)
        await pilot.press("enter")  # Enter on a lab in the list runs it
        await run_finished(pilot, tab, "broken")
        await pilot.pause()
        output = tab.query_one(LabOutput)
        assert tab.runs["broken"].state == "failed"
        assert output.lines == ["about to fail"]
        assert output.errors == ["RuntimeError: the socket went away"]
        assert str(tab.query_one("#lab-status").render()).startswith("✗ broken failed")
        assert any("broken failed" in notice for notice in notices(app))


@run_async
async def test_cancel_kills_the_child_and_the_process_it_forked(with_test_labs):
    app = labs_app()
    async with app.run_test(size=SIZE) as pilot:
        tab = app.query_one(LabsTab)
        await pilot.pause()
        tab.select_lab("slow-fork")
        await pilot.press("r")
        await wait_until(pilot, lambda: tab.query_one(LabOutput).lines)
        run = tab.runs["slow-fork"]
        assert run.process is not None
        child = psutil.Process(run.process.pid)
        forked = int(tab.query_one(LabOutput).lines[0].removeprefix("forked child "))
        assert psutil.pid_exists(forked)
        assert str(tab.query_one("#lab-status").render()).startswith("▶ slow-fork running for")

        await pilot.press("r")  # a second run while one runs is refused
        assert any("still running" in notice for notice in notices(app))

        await pilot.press("x")
        await run_finished(pilot, tab, "slow-fork")
        assert run.state == "cancelled" and run.process is None
        assert not child.is_running()
        # The forked grandchild was in the child's session, so the kill reached it too
        # (if no init reaps it in this container, it is at least dead: a zombie).
        await wait_until(
            pilot,
            lambda: (
                not psutil.pid_exists(forked)
                or psutil.Process(forked).status() == psutil.STATUS_ZOMBIE
            ),
        )
        assert str(tab.query_one("#lab-status").render()).startswith("■ slow-fork cancelled")
        assert "waited to the end" not in tab.query_one(LabOutput).verdict


@run_async
async def test_quitting_the_app_kills_a_running_lab(with_test_labs):
    app = labs_app()
    async with app.run_test(size=SIZE) as pilot:
        tab = app.query_one(LabsTab)
        await pilot.pause()
        tab.select_lab("slow-fork")
        await pilot.press("r")
        await wait_until(pilot, lambda: tab.query_one(LabOutput).lines)
        child = psutil.Process(tab.runs["slow-fork"].process.pid)
    assert not child.is_running()


CHATTY_CHILD = """
import json
for number in range(20000):
    print(json.dumps({"type": "line", "text": f"line {number}"}))
print(json.dumps({"type": "verdict", "text": "said a lot"}))
"""


@run_async
async def test_a_chatty_lab_comes_in_batches_and_shows_its_last_lines(with_test_labs, monkeypatch):
    monkeypatch.setattr(
        labs_tab_module, "lab_command", lambda name, params: [sys.executable, "-c", CHATTY_CHILD]
    )
    batches = []
    original = LabsTab.on_labs_tab_run_output

    def counting(self, message):
        batches.append(len(message.events))
        original(self, message)

    monkeypatch.setattr(LabsTab, "on_labs_tab_run_output", counting)
    app = labs_app()
    async with app.run_test(size=SIZE) as pilot:
        tab = app.query_one(LabsTab)
        await pilot.pause()
        await pilot.press("r")
        await run_finished(pilot, tab, "loopback-chunks")
        await pilot.pause()
        output = tab.query_one(LabOutput)
        assert len(output.lines) == 20000 and output.verdict == "said a lot"
        assert sum(batches) == 20001 and len(batches) < 200  # batched, not a message per line
        shown = str(output.query_one(".lab-lines").render())
        assert shown.startswith("… 18,000 earlier lines not shown\nline 18000")
        assert shown.endswith("line 19999")
        detail = tab.query_one("#lab-detail")
        assert detail.max_scroll_y > 0 and detail.scroll_y == detail.max_scroll_y  # followed


def test_a_lab_process_batches_events_and_explains_a_crash():
    process = LabProcess(
        [
            sys.executable,
            "-c",
            'print(\'{"type": "line", "text": "hi"}\'); '
            "print('not json'); import sys; sys.stderr.write('boom'); sys.exit(3)",
        ]
    )
    try:
        events = [event for batch in process.batches() for event in batch]
    finally:
        process.close()
    assert events[0] == {"type": "line", "text": "hi"}
    assert events[1] == {"type": "line", "text": "not json"}
    assert events[2]["type"] == "error"
    assert "exit code 3" in events[2]["text"] and "boom" in events[2]["text"]


# -- the real labs ------------------------------------------------------------------------


@run_async
async def test_the_real_framing_lab_runs_from_the_tab():
    app = labs_app()
    async with app.run_test(size=SIZE) as pilot:
        tab = app.query_one(LabsTab)
        await pilot.pause()
        assert [lab.name for lab in tab.labs] == [lab.name for lab in all_labs()]
        tab.select_lab("framing")
        await pilot.pause()
        await pilot.press("r")
        await run_finished(pilot, tab, "framing")
        await pilot.pause()
        output = tab.query_one(LabOutput)
        assert tab.runs["framing"].state == "done", output.errors
        assert output.figures["tcp_sends"] == "3"
        assert output.figures["udp_datagrams"] == "3"
        assert "粘包" in output.verdict


# -- F1 and the palette -------------------------------------------------------------------


def test_every_lab_is_reachable_from_some_models_help():
    names = {lab.name for lab in all_labs()}
    linked = {name for names_of_model in LABS_BY_MODEL.values() for name in names_of_model}
    assert names - linked == set(), "a lab no model's F1 help points to"
    # A linked name this build lacks is skipped, not shown as a dead link.
    shown = [lab.name for lab in labs_showing("processes")]
    assert shown == [name for name in LABS_BY_MODEL["processes"] if name in names]


def test_a_models_help_lists_the_labs_that_show_it():
    text = build_help("Servers", "x", [("chat", "datagram")])
    assert "Try it in the Labs tab" in text and "**F6**" in text
    assert "| `framing` | 粘包" in text
    threads = related_labs_markdown("threads")
    assert "`lock`" in threads and "`deadlock`" in threads
    assert related_labs_markdown("no-such-model") == ""


@run_async
async def test_f1_on_the_processes_model_lists_fork_zombie_and_orphan():
    app = WorkbenchApp(
        server_manager=QuietServerManager(), start_servers=False, initial_tab="servers"
    )
    async with app.run_test(size=SIZE) as pilot:
        row = ServerRow("ftp", "ftp", "processes", port=40002, pid=5000, state="running")
        app.post_message(ServersUpdated((row,), ()))
        await wait_until(pilot, lambda: app.servers_tab.selected_row is not None)
        await pilot.press("f1")
        await wait_until(pilot, lambda: isinstance(app.screen, HelpScreen))
        markdown = app.screen.markdown
        for name in ("fork", "zombie", "orphan"):
            assert f"| `{name}` |" in markdown
        assert markdown.index("Model: Process per connection") < markdown.index("`zombie`")


@run_async
async def test_open_lab_from_the_palette_shows_that_lab(with_test_labs):
    app = WorkbenchApp(server_manager=QuietServerManager(), start_servers=False, initial_tab="chat")
    async with app.run_test(size=SIZE) as pilot:
        commands = {command.title: command for command in app.get_system_commands(app.screen)}
        assert "Open lab slow-fork (fork)" in commands
        commands["Open lab slow-fork (fork)"].callback()
        await wait_until(pilot, lambda: app.current_tab_id() == "labs")
        tab = app.query_one(LabsTab)
        assert tab.selected.name == "slow-fork"
        await pilot.pause()
        assert app.focused is tab.query_one("#lab-list")


@run_async
async def test_f1_on_the_labs_tab_explains_its_keys(with_test_labs):
    app = labs_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("f1")
        await wait_until(pilot, lambda: isinstance(app.screen, HelpScreen))
        markdown = app.screen.markdown
        assert markdown.startswith("# Labs tab")
        assert "No server is running" not in markdown  # labs use no server
        for key in ("**r**", "**x**", "**Esc**", "child process"):
            assert key in markdown
        keys = {binding.key for binding in LabsTab.BINDINGS}
        assert {"r", "x", "escape"} <= keys


def test_the_list_shows_the_head_of_a_long_course_term():
    assert short_term("粘包 (tcp粘包问题)") == "粘包"
    assert short_term("阻塞IO / 非阻塞IO / 超时检测") == "阻塞IO"
    assert short_term("TCP套接字细节: recv返回空字串") == "TCP套接字细节"
    assert short_term("僵尸进程") == "僵尸进程"


# -- snapshots ----------------------------------------------------------------------------


async def _fixed_run(pilot) -> None:
    """A finished run of the loopback lab with a fixed timing, so the picture is stable."""
    tab = pilot.app.query_one(LabsTab)
    await pilot.pause()
    run = labs_tab_module.LabRun("loopback-chunks", {"messages": 3}, seconds=0.42, state="done")
    tab.runs[run.lab] = run
    tab._following = True  # as a run started with r does: the view follows the output
    tab.post_message(
        LabsTab.RunOutput(
            run,
            [{"type": "line", "text": f"sent message {n}"} for n in range(3)]
            + [
                {
                    "type": "table",
                    "title": "recv() chunks",
                    "headers": ["#", "bytes"],
                    "rows": [["0", "30"]],
                },
                {
                    "type": "figure",
                    "key": "messages",
                    "label": "messages sent",
                    "value": 3,
                    "unit": "",
                },
                {
                    "type": "figure",
                    "key": "bytes",
                    "label": "bytes received",
                    "value": 30,
                    "unit": "B",
                },
                {"type": "verdict", "text": "3 messages arrived as 1 recv() chunk(s)"},
            ],
        )
    )
    await pilot.pause()
    tab._show_status()
    tab.query_one("#lab-list").focus()
    detail = tab.query_one("#lab-detail")
    # The cards compose and the view follows them a refresh or two later: wait for the end.
    await wait_until(
        pilot,
        lambda: (
            tab.query(".lab-verdict")
            and tab.query_one(LabOutput).figures
            and detail.scroll_y == detail.max_scroll_y
            and tab.query_one(".lab-verdict").region.bottom <= detail.content_region.bottom
        ),
    )
    await pilot.pause()


@pytest.mark.parametrize(
    ("theme", "size"),
    [("dark", (120, 32)), ("workbench-light", (120, 32)), ("dark", (80, 24))],
)
def test_labs_tab_snapshot(snap_compare, with_test_labs, theme, size):
    assert snap_compare(labs_app(theme), terminal_size=size, run_before=_fixed_run)
