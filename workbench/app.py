"""WorkbenchApp: the Textual app with the Chat, FTP, HTTP and Servers tabs over servers it runs in child processes."""

from __future__ import annotations

import gc
import importlib
from collections.abc import Callable, Iterable
from functools import partial
from pathlib import Path
from typing import Any

from textual import events, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.css.query import NoMatches
from textual.message import Message
from textual.screen import Screen
from textual.widget import AwaitMount, Widget
from textual.widgets import Footer, Header, Static, TabbedContent, TabPane

from workbench.help import HelpScreen, build_help
from workbench.messages import (
    EndpointChanged,
    ServerCrashed,
    ServerNotice,
    ServersUpdated,
    message_for,
)
from workbench.network import (
    LOCAL_ONLY_TEXT,
    RemoteServers,
    host_port,
    is_wildcard,
    lan_addresses,
    student_hosts,
)
from workbench.server_manager import DEFAULT_MODELS, DEFAULT_PROTOCOLS, ServerManager
from workbench.server_records import ManagerNews, ServerRow
from workbench.tabs.servers import ServersTab
from workbench.themes import WORKBENCH_THEMES, resolve_theme_name
from workbench.widgets.classroom_bar import ClassroomBar

#: (pane id, title, module, class, protocol whose server the tab talks to).
TABS: tuple[tuple[str, str, str, str, str | None], ...] = (
    ("chat", "Chat", "workbench.tabs.chat", "ChatTab", "chat"),
    ("ftp", "FTP", "workbench.tabs.ftp", "FtpTab", "ftp"),
    ("http", "HTTP", "workbench.tabs.http", "HttpTab", "http"),
    ("servers", "Servers", "workbench.tabs.servers", "ServersTab", None),
    ("labs", "Labs", "workbench.tabs.labs", "LabsTab", None),
)

#: Allocations between young-generation collections while the app runs (Python's default: 700).
GC_YOUNG_THRESHOLD = 10_000


class WorkbenchFooter(Footer):
    """A Footer that rebuilds its keys once per refresh, however many binding changes came in.

    Textual's Footer recomposes on every bindings signal, and a tab switch sends
    several (focus leaves, focus arrives, panes refresh their bindings): each
    rebuild re-lays-out the screen. Coalescing them keeps a tab switch quick.
    A signal that changes nothing it shows (a focus change sends two, the second
    after the first rebuild) rebuilds nothing.
    """

    _rebuild_pending = False
    #: What the keys on show were built from; None before the first build.
    _built_from: tuple[object, ...] | None = None

    def _shown_from(self) -> tuple[object, ...]:
        """Everything Footer.compose reads: the same value composes the same keys."""
        return (
            self.compact,
            self.show_command_palette,
            self.combine_groups,
            tuple(
                (key, binding, enabled, tooltip)
                for key, (_, binding, enabled, tooltip) in self.screen.active_bindings.items()
            ),
        )

    def bindings_changed(self, screen: Screen) -> None:
        self._bindings_ready = True
        if not screen.app.app_focus or not self.is_attached or screen is not self.screen:
            return
        if not self._rebuild_pending:
            self._rebuild_pending = True
            self.call_after_refresh(self._rebuild)

    async def _rebuild(self) -> None:
        self._rebuild_pending = False
        shown_from = self._shown_from()
        if shown_from == self._built_from:
            return
        self._built_from = shown_from
        await self.recompose()


class UnavailableTab(Static):
    """Stands in for a tab whose module failed to import, so the app always starts."""

    HELP = "This tab is not available in this build."

    def __init__(self, title: str, reason: str) -> None:
        super().__init__(
            f"The {title} tab is not available.\n\n{reason}",
            classes="unavailable-tab",
            markup=False,
        )


class WorkbenchTabs(TabbedContent):
    """The app's tabs, where only the user switches: a tab focusing one of its widgets
    while hidden (reacting to its server moving, say) does not drag the view to it."""

    def __init__(self, *, initial: str, id: str) -> None:
        super().__init__(initial=initial, id=id)
        self._last_focus: dict[str, Widget] = {}

    def _pane_of(self, widget: Widget) -> TabPane | None:
        for node in widget.ancestors:
            if isinstance(node, TabPane) and node.parent is not None and node.parent.parent is self:
                return node
        return None

    def on_descendant_focus(self, event: events.DescendantFocus) -> None:
        pane = self._pane_of(event.widget)
        if pane is not None and pane.id == self.active:
            self._last_focus[pane.id] = event.widget

    def _on_tab_pane_focused(self, event: TabPane.Focused) -> None:
        if event.tab_pane.id == self.active:
            return  # let TabbedContent's own handler run: nothing to switch
        event.stop()
        event.prevent_default()
        self.call_after_refresh(self.restore_focus)

    def restore_focus(self) -> None:
        """Put focus back where it was in the visible tab (or on its first focusable widget)."""
        pane = self.get_pane(self.active) if self.active else None
        if pane is None:
            return
        last = self._last_focus.get(pane.id or "")
        if last is not None and last.is_attached and last.focusable:
            last.focus()
            return
        for widget in pane.query("*"):
            if widget.focusable:
                widget.focus()
                return


class MainScreen(Screen):
    """The app's default screen: its widgets are styled as they mount, and only then.

    Textual announces a new default screen with a ScreenResume that restyles every widget
    on it, as it must for a screen coming back after a theme or CSS change; on the first
    appearance the widgets have just been styled with the same theme and classes, so
    that pass is a second full restyle (a fifth of startup). Later resumes are untouched.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._shown_once = False

    def post_message(self, message: Message) -> bool:
        if isinstance(message, events.ScreenResume) and not self._shown_once:
            self._shown_once = True
            message = events.ScreenResume(refresh_styles=False)
        return super().post_message(message)


def breakpoint_classes(size: int, breakpoints: list[tuple[int, str]]) -> list[str]:
    """The class Textual gives the screen at ``size`` cells: the widest breakpoint it reaches."""
    for limit, name in sorted(breakpoints, reverse=True):
        if size >= limit:
            return [name]
    return []


def load_tab(title: str, module_name: str, class_name: str) -> Widget:
    """Import a tab lazily; a broken or missing tab becomes a clear 'not available' notice."""
    try:
        module = importlib.import_module(module_name)
        tab_class = getattr(module, class_name)
        return tab_class()
    except Exception as error:  # any import/constructor failure must not stop the app
        return UnavailableTab(title, f"{type(error).__name__}: {error}")


class WorkbenchApp(App[None]):
    """Network Workbench: chat, FTP and HTTP clients plus the live Servers panel."""

    CSS_PATH = "workbench.tcss"
    #: Screen classes workbench.tcss keys its compact layouts on (80x24 must stay usable).
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (100, "-medium"), (130, "-wide")]
    VERTICAL_BREAKPOINTS = [(0, "-short"), (30, "-tall")]
    TITLE = "Network Workbench"
    SUB_TITLE = "concurrent network programming"

    BINDINGS = [
        Binding("f1", "help", "Help"),
        Binding("f2", "show_tab('chat')", "Chat", show=False),
        Binding("f3", "show_tab('ftp')", "FTP", show=False),
        Binding("f4", "show_tab('http')", "HTTP", show=False),
        Binding("f5", "show_tab('servers')", "Servers", show=False),
        Binding("f6", "show_tab('labs')", "Labs", show=False),
    ]

    def __init__(
        self,
        *,
        server_manager: ServerManager | None = None,
        start_servers: bool = True,
        models: dict[str, str] | None = None,
        theme_name: str | None = None,
        initial_tab: str = "chat",
        ports: dict[str, int] | None = None,
    ) -> None:
        super().__init__()
        #: The servers this workbench runs (or the teacher's it points at): tabs reach it as
        #: a ServerDirectory through workbench.tabs.endpoint.server_directory.
        self.server_manager: ServerManager = (
            server_manager if server_manager is not None else ServerManager()
        )
        #: The widget in each tab pane, told of app-wide news (see _tell_tabs).
        self._tabs: list[Widget] = []
        self.start_servers = start_servers
        self.models = dict(models or {})
        #: Port of each default server (0 or missing: any free one).
        self.ports = dict(ports or {})
        #: This machine's LAN addresses, read once when listening on every interface.
        self._interface_addresses: list[str] | None = None
        self.initial_theme = resolve_theme_name(theme_name)
        self._unknown_theme = False
        self.initial_tab = initial_tab
        #: The tab the user asked for last; focus only ever moves into that one.
        self._wanted_tab = initial_tab
        #: The garbage collector's thresholds before the app changed them (see on_mount).
        self._gc_threshold: tuple[int, ...] | None = None

    # -- layout ---------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Header()
        yield ClassroomBar(id="classroom")
        with WorkbenchTabs(initial=self.initial_tab, id="tabs"):
            for pane_id, title, module_name, class_name, _ in TABS:
                with TabPane(title, id=pane_id):
                    # The Servers tab runs the panel the app reports to; any other tab is
                    # built when first shown (see _ensure_tab), so startup builds two, not five.
                    if pane_id == "servers":
                        tab: Widget = ServersTab(id="servers-tab")
                    elif pane_id == self.initial_tab:
                        tab = load_tab(title, module_name, class_name)
                    else:
                        continue
                    self._tabs.append(tab)
                    yield tab
        yield WorkbenchFooter()

    def _ensure_tab(self, pane_id: str) -> AwaitMount | None:
        """Build and mount the tab of pane ``pane_id`` if this is its first showing.

        Returns what to await for it to have composed, or None when it was built already.
        A tab reads where its server is (and anything else it needs) when it mounts, so
        building it late misses nothing; once built it stays, with its connections.
        """
        pane = self.query_one(f"#{pane_id}", TabPane)
        if pane.children:
            return None
        title, module_name, class_name = next(
            (title, module, name) for tab_id, title, module, name, _ in TABS if tab_id == pane_id
        )
        tab = load_tab(title, module_name, class_name)
        self._tabs.append(tab)
        return pane.mount(tab)

    def get_default_screen(self) -> Screen:
        """The main screen, born with the breakpoint classes of the size the app starts at.

        Textual adds them on the first Resize, after the tabs have mounted, and that
        restyles every widget once more (a fifth of startup). A later resize still
        moves them as before.
        """
        screen = MainScreen(id="_default")
        width, height = self.size
        screen.add_class(
            *breakpoint_classes(width, self.HORIZONTAL_BREAKPOINTS),
            *breakpoint_classes(height, self.VERTICAL_BREAKPOINTS),
        )
        return screen

    def on_load(self) -> None:
        # Before the first mount: a theme set later restyles every widget (about 1 s).
        for theme in WORKBENCH_THEMES:
            self.register_theme(theme)
        self._unknown_theme = self.initial_theme not in self.available_themes
        self.theme = resolve_theme_name(None) if self._unknown_theme else self.initial_theme

    def on_mount(self) -> None:
        if self._unknown_theme:
            self.notify(
                f"Unknown theme {self.initial_theme!r}: using the default.", severity="warning"
            )
        self.server_manager.open(self._take_news)
        self._show_classroom(())
        # Into the active tab's content, not the tab bar, so the footer shows its bindings.
        self.call_after_refresh(self._focus_pane, self.query_one(f"#{self.initial_tab}", TabPane))
        # A student's workbench (--connect) uses the teacher's servers and runs none.
        if self.start_servers and self.server_manager.remote is None:
            self.start_default_servers()
        self.call_after_refresh(self._freeze_startup_objects)

    def _freeze_startup_objects(self) -> None:
        """Keep the garbage collector off the objects the app lives with, and run it less often.

        Drawing a tab makes and drops tens of thousands of objects (strips, their caches),
        so collections ran several times per tab switch, and each full one walked every
        object the app has (~200k: widgets, styles, modules), 170 ms a time. Frozen after
        the first frame, and with a larger young generation, a full collection is rarer
        and walks only what came later. Both are undone on unmount.

        Only the young generations are collected before freezing (about 1 ms): the
        startup's garbage is young, and the collections startup itself triggered swept
        the old generation. A full collection here found about 2,000 more objects in
        40-90 ms, a one-off few hundred kB not worth delaying the first keypress for.
        """
        if self._gc_threshold is not None or not self.is_running:
            return
        gc.collect(1)
        gc.freeze()
        self._gc_threshold = gc.get_threshold()
        gc.set_threshold(GC_YOUNG_THRESHOLD, *self._gc_threshold[1:])

    @work(thread=True, group="server-actions", name="start default servers")
    def start_default_servers(self) -> None:
        """Start chat, FTP and HTTP on free ports, each under its chosen model."""
        for protocol in DEFAULT_PROTOCOLS:
            model = self.models.get(protocol, DEFAULT_MODELS[protocol])
            port = self.ports.get(protocol, 0)
            try:
                try:
                    self.server_manager.start(protocol, model, port=port)
                except Exception as error:
                    if not port:
                        raise
                    # A class port someone else holds: any free one still lets the class in,
                    # and the header shows the command with the port students must type.
                    server_id = self.server_manager.start(protocol, model)
                    row = self.server_manager.row(server_id)
                    self.post_message(
                        ServerNotice(
                            f"Port {port} is taken ({error}): the {protocol} server listens on "
                            f"{row.port if row else 'another port'} instead.",
                            "warning",
                        )
                    )
            except Exception as error:
                self.post_message(
                    ServerNotice(
                        f"Could not start the {protocol} server ({model}): {error}", "error"
                    )
                )

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        """Focus into the new tab so the footer shows that tab's bindings."""
        if event.tabbed_content.id != "tabs":
            return  # a tab's own inner TabbedContent (the HTTP tab has some): not ours
        if event.pane.id != event.tabbed_content.active:
            return  # stale: the user has switched again since
        self._wanted_tab = event.pane.id or ""
        building = self._ensure_tab(self._wanted_tab)  # clicked in the tab bar: build it if new
        if building is not None:
            self.call_later(self._focus_when_built, event.pane, building)
        else:
            self.call_after_refresh(self._focus_pane, event.pane)

    async def _focus_when_built(self, pane: TabPane, building: AwaitMount) -> None:
        await building
        self.call_after_refresh(self._focus_pane, pane)

    def _focus_pane(self, pane: TabPane) -> None:
        # Focusing inside a pane makes TabbedContent show that pane: a stale call
        # (the user switched again meanwhile) would drag them back, so check first.
        if pane.id != self._wanted_tab:
            return
        if self.focused is not None and pane in self.focused.ancestors:
            return
        # Back where the user left off in that tab (or its first focusable widget).
        self.query_one("#tabs", WorkbenchTabs).restore_focus()

    def deliver_screenshot(
        self, filename: str | None = None, path: str | None = None, time_format: str | None = None
    ) -> str | None:
        """Textual saves into ~/Downloads, which may not exist: use the data folder's screenshots/."""
        from workbench.data import default_data_dir

        data_dir = self.server_manager.data_dir or default_data_dir()
        folder = Path(path) if path else Path(data_dir) / "screenshots"
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            self.notify(f"Cannot save in {folder}: {error.strerror}", severity="error")
            return None
        return super().deliver_screenshot(filename, str(folder), time_format)

    def on_unmount(self) -> None:
        if self._gc_threshold is not None:
            gc.unfreeze()
            gc.set_threshold(*self._gc_threshold)
            self._gc_threshold = None
        # Quitting stops every server: blocks a few seconds at most, servers stop in parallel.
        self.server_manager.close()

    # -- messages from the ServerManager and workers ---------------------------------------

    def _take_news(self, news: ManagerNews) -> None:
        """The ServerManager's news, as this app's messages (called from the manager's threads)."""
        self.post_message(message_for(news))

    def _tell_tabs(self, make_message: Callable[[], Message]) -> None:
        """Post a fresh copy of an app-wide message to every tab: messages bubble up, not down."""
        for tab in self._tabs:
            if tab.is_attached:
                tab.post_message(make_message())

    def on_servers_updated(self, message: ServersUpdated) -> None:
        try:
            self._show_classroom(message.rows)
            self.servers_tab.show_update(message)
        except NoMatches:  # a last batch racing the shutdown: nothing left to show it in
            return
        self._tell_tabs(
            partial(ServersUpdated, message.rows, message.events, message.events_dropped)
        )

    def on_endpoint_changed(self, message: EndpointChanged) -> None:
        self._tell_tabs(partial(EndpointChanged, message.protocol, message.address))

    def on_server_crashed(self, message: ServerCrashed) -> None:
        self.notify(
            f"{message.server_id} crashed: {message.description}. Select it in Servers and press r.",
            title="Server crashed",
            severity="error",
            timeout=8,
        )

    def on_server_notice(self, message: ServerNotice) -> None:
        self.notify(message.text, severity=message.severity)  # type: ignore[arg-type]

    def _show_classroom(self, rows: Iterable[ServerRow]) -> None:
        """Header and the bar under it: local only, where students reach us, or whose servers we use."""
        manager = self.server_manager
        bar = self.query_one(ClassroomBar)
        if manager.remote is not None:
            self.sub_title = f"connected to the class at {manager.remote.host}"
            bar.show_lines([manager.remote.describe()])
            return
        bind_host = manager.bind_host
        if not is_wildcard(bind_host) and not student_hosts(bind_host):
            self.sub_title = LOCAL_ONLY_TEXT
            bar.show_lines([])
            return
        if is_wildcard(bind_host) and self._interface_addresses is None:
            self._interface_addresses = lan_addresses(bind_host)
        self.sub_title = f"listening for a class on {bind_host}"
        ports = {
            row.protocol: row.port
            for row in rows
            # A default server bound elsewhere (the form's Bind field) is not the class's.
            if row.is_default and row.state == "running" and row.port and row.host == bind_host
        }
        bar.show_listening(bind_host, ports, self._interface_addresses)

    @property
    def servers_tab(self) -> ServersTab:
        return self.query_one(ServersTab)

    # -- actions ----------------------------------------------------------------------------

    def action_show_tab(self, pane_id: str) -> None:
        self._wanted_tab = pane_id
        tabs = self.query_one("#tabs", TabbedContent)
        if tabs.active == pane_id:
            return
        building = self._ensure_tab(pane_id)
        if building is not None:
            # Switch once it has composed, so focus can go straight into it.
            self.call_later(self._show_built_tab, pane_id, building)
            return
        tabs.active = pane_id  # shows the pane at once (display), drawn on the next refresh
        # Focus straight into it: otherwise hiding the old pane first moves focus to the
        # tab bar, and each focus change restyles, repaints and rebuilds the footer.
        self._focus_pane(self.query_one(f"#{pane_id}", TabPane))

    async def _show_built_tab(self, pane_id: str, building: AwaitMount) -> None:
        await building
        if self._wanted_tab == pane_id:  # unless the user has asked for another tab since
            self.action_show_tab(pane_id)

    def current_tab_id(self) -> str:
        return self.query_one("#tabs", TabbedContent).active or "servers"

    def action_help(self) -> None:
        self.push_screen(HelpScreen(self.help_markdown()))

    def help_markdown(self) -> str:
        """Help for the current tab and the model(s) of the servers it uses."""
        pane_id = self.current_tab_id()
        title, protocol = next(
            ((title, protocol) for pid, title, _, _, protocol in TABS if pid == pane_id),
            ("Servers", None),
        )
        pane = self.query_one(f"#{pane_id}", TabPane)
        tab_help = next(
            (getattr(child, "HELP", "") for child in pane.children if getattr(child, "HELP", "")),
            "",
        )
        running: list[tuple[str, str]] = []
        if pane_id == "servers":
            row = self.servers_tab.selected_row
            if row is not None:
                running.append((row.server_id, row.model))
        elif protocol is not None:
            server_id = self.server_manager.default_server_id(protocol)
            row = self.server_manager.row(server_id) if server_id else None
            if row is not None:
                running.append((row.server_id, row.model))
        remote = self.server_manager.remote
        remote_endpoint = remote.endpoint(protocol) if remote is not None and protocol else None
        elsewhere = host_port(*remote_endpoint) if remote_endpoint else None
        uses_a_server = protocol is not None or pane_id == "servers"
        return build_help(
            title,
            tab_help or "No help for this tab.",
            running if uses_a_server else None,
            elsewhere,
        )

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand(
            "Help", "Explain the current tab and its server's model (F1)", self.action_help
        )
        for pane_id, title, _, _, _ in TABS:
            yield SystemCommand(
                f"Go to {title}", f"Show the {title} tab", partial(self.action_show_tab, pane_id)
            )
        for pane_id, *_ in TABS:  # a tab's own commands, e.g. the Labs tab's "Open lab …"
            for child in self.query_one(f"#{pane_id}", TabPane).children:
                yield from getattr(child, "system_commands", tuple)()
        if not self.query_one("#labs", TabPane).children:  # not built yet: open it on demand
            from workbench.tabs.labs import open_lab_commands

            yield from open_lab_commands(self._open_lab)
        for theme, words in (
            ("workbench-light", "light theme"),
            ("workbench-dark", "dark theme"),
            ("workbench-contrast", "high-contrast theme"),
        ):
            yield SystemCommand(
                f"Use the {words}",
                "Readable on a projector",
                partial(setattr, self, "theme", theme),
            )
        tab = self.servers_tab
        yield SystemCommand(
            "Start a server…", "Any protocol under any model", tab.action_new_server
        )
        yield SystemCommand(
            "Stop all servers", "Stop every server this workbench started", self.action_stop_all
        )
        for server_id in self.server_manager.server_ids():
            yield SystemCommand(
                f"Restart {server_id}",
                "Stop it and start it again on the same port",
                partial(tab.restart_server, server_id),
            )
            yield SystemCommand(
                f"Change model of {server_id}…",
                "Pick another concurrency model, port or worker count",
                partial(self._change_server, server_id),
            )
            yield SystemCommand(
                f"Show {server_id} in the Servers panel",
                "Select it: sparklines, process tree, event log",
                partial(self._show_server, server_id),
            )

    def _open_lab(self, name: str) -> None:
        """Show the Labs tab, built for the purpose if need be, with lab ``name`` selected."""
        self.call_later(self._open_lab_once_built, name)

    async def _open_lab_once_built(self, name: str) -> None:
        from workbench.tabs.labs import LabsTab

        building = self._ensure_tab("labs")
        if building is not None:
            await building  # composed, so the lab list is there to select in
        self.query_one(LabsTab).open_lab(name)

    def _show_server(self, server_id: str) -> None:
        self.action_show_tab("servers")
        self.servers_tab.select_server(server_id)

    def _change_server(self, server_id: str) -> None:
        self._show_server(server_id)
        self.servers_tab.action_change_server()

    @work(thread=True, group="server-actions", name="stop all servers")
    def action_stop_all(self) -> None:
        self.server_manager.stop_all()
        self.post_message(ServerNotice("All servers stopped."))


def run_app(
    *,
    data_dir: Path | None,
    start_servers: bool,
    models: dict[str, str],
    theme_name: str | None,
    bind_host: str = "127.0.0.1",
    ports: dict[str, int] | None = None,
    remote: RemoteServers | None = None,
) -> None:
    """Run the TUI; whatever happens, stop every server before returning.

    ``remote`` (a student's ``--connect``) starts no servers and points every tab there;
    ``bind_host`` and ``ports`` are where the default servers listen.
    """
    manager = ServerManager(data_dir, bind_host=bind_host, remote=remote)
    app = WorkbenchApp(
        server_manager=manager,
        start_servers=start_servers,
        models=models,
        theme_name=theme_name,
        ports=ports,
    )
    try:
        app.run()
    finally:
        manager.close()
