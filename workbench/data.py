"""The workbench's data folder: a web site and an FTP library copied from the bundled samples on first run."""

from __future__ import annotations

import shutil
from importlib import resources
from pathlib import Path

import platformdirs

APP_NAME = "network-workbench"
#: Sub-folders of the data folder, each served by one protocol.
SITE_FOLDER = "site"
LIBRARY_FOLDER = "library"


def default_data_dir() -> Path:
    """Where the data folder lives unless ``--data`` says otherwise."""
    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def bundled_samples_dir() -> Path:
    """The sample site and library shipped inside the ``servers`` package."""
    return Path(str(resources.files("servers") / "data"))


def ensure_data_dir(path: Path | str | None = None) -> Path:
    """Create the data folder if needed and fill missing parts from the bundled samples.

    Existing files are never overwritten: what a user uploaded or edited stays.
    """
    data_dir = Path(path) if path is not None else default_data_dir()
    data_dir = data_dir.expanduser().resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    samples = bundled_samples_dir()
    for folder in (SITE_FOLDER, LIBRARY_FOLDER):
        target = data_dir / folder
        if target.exists():
            continue
        source = samples / folder
        if source.is_dir():
            shutil.copytree(source, target)
        else:  # samples not bundled (yet): still give the servers an empty folder
            target.mkdir(parents=True)
    return data_dir


def server_options(protocol: str, data_dir: Path | None) -> dict[str, str]:
    """Protocol options pointing each server at its part of the data folder."""
    if data_dir is None:
        return {}
    if protocol == "http":
        return {"root": str(data_dir / SITE_FOLDER)}
    if protocol == "ftp":
        return {"root": str(data_dir / LIBRARY_FOLDER)}
    return {}
