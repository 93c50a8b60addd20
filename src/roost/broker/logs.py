"""The broker's log as its configuration asks: level, destination, format.

``log_dest`` is ``stderr``, ``file`` (``log_file``, reopened when logrotate moves it)
or ``syslog`` (the local syslog socket, facility daemon); ``log_format`` is ``text``
(``TIME LEVEL MESSAGE``, syslog adds its own time) or ``json`` (one object per line:
``time``, ``level``, ``logger``, ``message``, and ``exception`` when there is one).
"""

from __future__ import annotations

import datetime
import json
import logging
import logging.handlers
import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from roost.broker.config import BrokerConfig

TEXT_FORMAT = "%(asctime)s %(levelname)s %(message)s"
SYSLOG_IDENT = "roost"
_SYSLOG_SOCKETS = ("/dev/log", "/var/run/syslog")  # Linux, macOS
_SYSLOG_UDP = ("localhost", logging.handlers.SYSLOG_UDP_PORT)


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line, for log collectors."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(
    config: BrokerConfig,
    *,
    verbose: bool = False,
    syslog_address: str | tuple[str, int] | None = None,
) -> logging.Handler:
    """Send the root logger's records where ``config`` says, at its level (``verbose``:
    debug); returns the handler. ``syslog_address`` overrides where syslog is (tests).

    Raises OSError when the log file cannot be opened, ValueError when none is named.
    """
    level = logging.DEBUG if verbose else getattr(logging, config.log_level.upper())
    handler = _handler(config, syslog_address)
    if config.log_format == "json":
        handler.setFormatter(JsonFormatter())
    elif config.log_dest == "syslog":
        # syslog stamps the time and the host itself; the tag lets it filter by program.
        handler.setFormatter(
            logging.Formatter(f"{SYSLOG_IDENT}[{os.getpid()}]: %(levelname)s %(message)s")
        )
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(level)
    return handler


def _handler(config: BrokerConfig, syslog_address: str | tuple[str, int] | None) -> logging.Handler:
    if config.log_dest == "file":
        if config.log_file is None:  # load_config refuses this; a config made in code may not
            raise ValueError('log_dest = "file" needs log_file (the file to write)')
        # Watched: when logrotate moves the file away, the next record opens a new one.
        return logging.handlers.WatchedFileHandler(config.log_file, encoding="utf-8")
    if config.log_dest == "syslog":
        address = syslog_address or next(
            (path for path in _SYSLOG_SOCKETS if os.path.exists(path)), _SYSLOG_UDP
        )
        return logging.handlers.SysLogHandler(
            address, facility=logging.handlers.SysLogHandler.LOG_DAEMON
        )
    return logging.StreamHandler(sys.stderr)
