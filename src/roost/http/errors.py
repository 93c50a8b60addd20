"""What the HTTP API raises when it cannot start."""

from __future__ import annotations


class HttpSetupError(Exception):
    """The HTTP server cannot start: its extra is missing, or its address is refused."""
