"""Exceptions raised by the reference stack (service settings and the local launcher)."""

from __future__ import annotations


class StackError(Exception):
    """Base of every error the stack package raises."""


class ConfigError(StackError):
    """A setting is missing or malformed; the message lists every problem."""


class StackStartError(StackError):
    """A part of the local stack could not start; the message names the part and its log."""


class StackNotRunning(StackError):
    """No running stack was found in the run folder."""
