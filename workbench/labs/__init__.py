"""The Labs: short real experiments of the course (sockets, processes, threads, multiplexing), found by module.

Each module of this package exports ``LABS``, a tuple of :class:`~workbench.labs.base.Lab`
instances; :func:`all_labs` gathers them in course order. UI-free: runs headless with
``python -m workbench.labs`` and, in a child process, behind the app's Labs tab.
"""

from __future__ import annotations

import importlib
import pkgutil

from workbench.labs.base import Lab, LabContext, LabReport, Param

__all__ = ["Lab", "LabContext", "LabReport", "Param", "all_labs", "find_lab"]

#: Modules of this package that hold no labs.
_NOT_LABS = frozenset({"base", "cli", "__main__", "stream", "runner", "concepts"})


def all_labs() -> list[Lab]:
    """Every lab of every module in this package, in course order."""
    labs: list[Lab] = []
    for module_info in pkgutil.iter_modules(__path__):
        if module_info.name in _NOT_LABS or module_info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{module_info.name}")
        labs.extend(getattr(module, "LABS", ()))
    return sorted(labs, key=lambda lab: (lab.order, lab.name))


def find_lab(name: str) -> Lab:
    """The lab called ``name``; KeyError lists the names there are."""
    labs = all_labs()
    for lab in labs:
        if lab.name == name:
            return lab
    raise KeyError(f"no lab called {name!r}; choose from {', '.join(lab.name for lab in labs)}")
