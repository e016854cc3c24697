"""Errors specific to mtaio.monitoring (subclasses of :class:`mtaio.exceptions.MonitoringError`)."""

from __future__ import annotations

from mtaio.exceptions import MonitoringError


class MissingDependencyError(MonitoringError, ImportError):
    """An optional dependency is not installed; the message says which extra to install."""


class ProcessGoneError(MonitoringError):
    """The process a reader watches has exited."""
