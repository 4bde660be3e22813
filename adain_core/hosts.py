"""Host integrations behind ``adain install <host>``: each adapter owns its installer and declares it under the
``adain.installers`` entry-point group, so the engine finds installers without ever naming an adapter."""

from __future__ import annotations

import argparse
from importlib.metadata import entry_points
from typing import Protocol, runtime_checkable

__all__ = ["ENTRY_POINT_GROUP", "HostInstaller", "installers", "register_installer"]

ENTRY_POINT_GROUP = "adain.installers"


@runtime_checkable
class HostInstaller(Protocol):
    """What ``adain install <host>`` needs from an adapter.

    ``help`` is the one-line description shown by ``adain install --help``; ``add_arguments`` adds the host's
    options to its sub-command; ``install`` does the work and returns the lines to print (paths written, next steps).
    It raises ``FileNotFoundError`` / ``ValueError`` / ``AdaINError`` with a message naming the offending input.
    """

    help: str

    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def install(self, args: argparse.Namespace) -> list[str]: ...


_registered: dict[str, HostInstaller] = {}


def register_installer(name: str, installer: HostInstaller) -> None:
    """Add an installer without packaging metadata (a plug-in loaded at run time, or a test); it wins over an
    entry point of the same name."""
    if not isinstance(installer, HostInstaller):
        raise TypeError(f"installer {name!r} must have help, add_arguments and install, got {installer!r}")
    _registered[name] = installer


def installers() -> dict[str, HostInstaller]:
    """Every installer available in this environment, by host name, sorted by name.

    Entry points whose adapter does not import here (e.g. a partial install) are left out rather than breaking
    the command line.
    """
    found: dict[str, HostInstaller] = {}
    for point in entry_points(group=ENTRY_POINT_GROUP):
        try:
            found[point.name] = point.load()
        except ImportError:
            continue
    found.update(_registered)
    return dict(sorted(found.items()))
