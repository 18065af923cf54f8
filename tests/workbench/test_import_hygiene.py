"""`servers`, `workbench.clients` and the server manager never import textual or rich (checked in a fresh interpreter)."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.timeout(60)

UI_FREE_MODULES = [
    "servers",
    "servers.launcher",
    "servers.runner",
    "servers.registry",
    "servers.stats",
    "servers.http",
    "servers.ftp",
    "servers.chat",
    "servers.echo",
    "workbench.clients",
    "workbench.clients.chat",
    "workbench.clients.ftp",
    "workbench.clients.files",
    "workbench.clients.local_files",
    "workbench.clients.http",
    "workbench.clients.http_wire",
    "workbench.clients.loadgen",
    "workbench.socket_probe",
    "workbench.connection_sequence",
    "workbench.network",
    "workbench.connected_clients",
    "workbench.server_records",
    "workbench.server_directory",
    "workbench.server_manager",
    "workbench.labs",
    "workbench.labs.runner",
    "workbench.labs.concepts",
]

PROBE = """
import importlib, sys
for name in sys.argv[1:]:
    importlib.import_module(name)
leaked = sorted(m for m in sys.modules if m.split(".")[0] in ("textual", "rich"))
print(",".join(leaked))
"""


@pytest.mark.parametrize("module", UI_FREE_MODULES)
def test_module_imports_no_ui_library(module):
    # A fresh interpreter: in this one, other tests have long since imported textual.
    result = subprocess.run(
        [sys.executable, "-c", PROBE, module],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", f"{module} imported {result.stdout.strip()}"


def test_every_server_model_imports_no_ui_library():
    from servers.registry import MODELS, PROTOCOLS

    modules = [path for path, *_ in MODELS.values()] + list(PROTOCOLS.values())
    result = subprocess.run(
        [sys.executable, "-c", PROBE, *modules],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""


def test_the_probe_would_notice_a_leak():
    """Guard against a probe that can never fail."""
    result = subprocess.run(
        [sys.executable, "-c", PROBE, "textual.app"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert "textual" in result.stdout
