"""The broker's log as its configuration asks: level, destination, format.

``log_dest`` is ``stderr``, ``file`` (``log_file``, reopened when logrotate moves it)
or ``syslog`` (the local syslog socket, facility daemon); ``log_format`` is ``text``
(``TIME LEVEL MESSAGE``, syslog adds its own time) or ``json`` (one object per line:
``time``, ``level``, ``logger``, ``message``, and ``exception`` when there is one).

A busy broker logs a line per client connect and disconnect (``connection_messages``),
so a record must be cheap: the text format formats the date once a second, not once a
record; to stderr, the lines of one event-loop turn are written together at its end
(one system call, not a write and a flush each); and ``lean_records`` (for the
``roost broker`` process) stops ``logging`` looking up the caller, thread and process
of every record, which no format here prints.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import logging
import logging.handlers
import os
import sys
import time
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from roost.broker.config import BrokerConfig

TEXT_FORMAT = "%(asctime)s %(levelname)s %(message)s"
SYSLOG_IDENT = "roost"
_SYSLOG_SOCKETS = ("/dev/log", "/var/run/syslog")  # Linux, macOS
_SYSLOG_UDP = ("localhost", logging.handlers.SYSLOG_UDP_PORT)


class TextFormatter(logging.Formatter):
    """``TIME LEVEL MESSAGE``, with the date and time formatted once a second."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)
        self._second = -1
        self._stamp = ""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        if datefmt is not None:
            return super().formatTime(record, datefmt)
        second = int(record.created)
        if second != self._second:
            self._stamp = time.strftime(self.default_time_format, self.converter(second))
            self._second = second
        return f"{self._stamp},{int(record.msecs):03d}"


class TurnStreamHandler(logging.StreamHandler[TextIO]):
    """A stream handler that writes the records of one event-loop turn together, at
    its end; outside a running event loop (other threads, start-up, shutdown) at once."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        self._lines: list[str] = []
        self._loop: asyncio.AbstractEventLoop | None = None  # flush scheduled on this

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record) + self.terminator
        except Exception:  # noqa: BLE001  (logging's own contract: never raise)
            self.handleError(record)
            return
        self._lines.append(line)
        # The loop running in this thread, if any (without an exception when none).
        loop = asyncio._get_running_loop()
        if loop is None:
            self._write()
        elif self._loop is not loop:
            self._loop = loop
            loop.call_soon(self._end_of_turn)

    def _end_of_turn(self) -> None:
        self.acquire()
        try:
            self._loop = None
            self._write()
        finally:
            self.release()

    def _write(self) -> None:
        lines = self._lines
        if lines:
            self._lines = []
            try:
                self.stream.write("".join(lines))
                self.stream.flush()
            except Exception:  # noqa: BLE001
                # Nothing to attribute it to but the stream; say so as logging would.
                self.handleError(logging.makeLogRecord({"msg": "".join(lines)}))

    def flush(self) -> None:
        self.acquire()
        try:
            self._write()
        finally:
            self.release()

    def close(self) -> None:
        self.flush()
        super().close()


def lean_records() -> None:
    """Stop ``logging`` recording each record's caller, thread and process (none of our
    formats prints them): about a third of the cost of a record. For a process that is
    a broker, like ``roost broker``; it changes ``logging`` for the whole process."""
    # The logging documentation's own switches ("Optimization").
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False


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
        handler.setFormatter(TextFormatter())
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
    return TurnStreamHandler(sys.stderr)
