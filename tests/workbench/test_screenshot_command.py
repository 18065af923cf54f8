"""The command palette's Screenshot saves into the data folder and says where, even with no ~/Downloads."""

from __future__ import annotations

import asyncio
import time

import pytest

from workbench.app import WorkbenchApp
from workbench.data import ensure_data_dir
from workbench.server_manager import ServerManager

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def manager(tmp_path):
    server_manager = ServerManager(ensure_data_dir(tmp_path / "data"), publish_interval=0.2)
    yield server_manager
    server_manager.close()


def test_screenshot_goes_to_the_data_folder_when_downloads_is_missing(
    manager, tmp_path, monkeypatch
):
    home = tmp_path / "home"  # no Downloads folder in it
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_DOWNLOAD_DIR", raising=False)

    async def scenario() -> None:
        app = WorkbenchApp(server_manager=manager, start_servers=False)
        async with app.run_test(size=(120, 36)) as pilot:
            await pilot.pause()
            app.deliver_screenshot()  # what the palette's "Screenshot" command runs
            deadline = time.monotonic() + 10
            folder = tmp_path / "data" / "screenshots"
            while not any("screenshot" in str(n.message).lower() for n in app._notifications):
                assert time.monotonic() < deadline, "no screenshot notice"
                await pilot.pause(0.05)
            messages = [str(n.message) for n in app._notifications]
            assert not any("Failed" in message for message in messages), messages
            [saved] = list(folder.glob("*.svg"))
            assert saved.read_text().startswith("<svg")
            assert any(str(folder) in message for message in messages), messages

    asyncio.run(scenario())
