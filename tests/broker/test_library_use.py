"""The broker as a library: what a BrokerConfig made in code writes, and where it listens."""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
from pathlib import Path

import pytest

from roost.broker import Broker, BrokerConfig, ConfigError, ListenerConfig, load_config
from roost.broker.config import DEFAULT_DATA_DIR
from roost.broker.listeners import ListenerError
from roost.broker.persistence.sqlite import DATABASE_NAME


def run_briefly(config: BrokerConfig) -> None:
    """Start a broker and stop it again: enough to open (and create) its store."""

    async def main() -> None:
        async with Broker(config):
            pass

    asyncio.run(main())


def test_the_readme_example_writes_nothing_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    run_briefly(BrokerConfig(listeners=[ListenerConfig(port=0)]))
    assert list(tmp_path.iterdir()) == []


def test_two_brokers_made_in_code_in_one_directory_do_not_share_state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)

    async def main() -> None:
        config = BrokerConfig(listeners=[ListenerConfig(port=0)])
        async with Broker(config), Broker(config):  # no "database is in use"
            pass

    asyncio.run(main())


def test_a_data_dir_given_in_code_means_sqlite_there(tmp_path: Path) -> None:
    data_dir = tmp_path / "state"
    run_briefly(BrokerConfig(listeners=[ListenerConfig(port=0)], data_dir=str(data_dir)))
    assert (data_dir / DATABASE_NAME).is_file()


def test_sqlite_asked_for_alone_uses_roost_data_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    run_briefly(BrokerConfig(listeners=[ListenerConfig(port=0)], persistence="sqlite"))
    assert (tmp_path / DEFAULT_DATA_DIR / DATABASE_NAME).is_file()


@pytest.mark.parametrize(
    ("persistence", "data_dir", "expected"),
    [
        (None, None, None),
        (None, "d", "d"),
        ("memory", None, None),
        ("memory", "d", None),
        ("sqlite", None, DEFAULT_DATA_DIR),
        ("sqlite", "d", "d"),
    ],
)
def test_state_dir(persistence: str | None, data_dir: str | None, expected: str | None) -> None:
    config = BrokerConfig(persistence=persistence, data_dir=data_dir)  # type: ignore[arg-type]
    assert config.state_dir() == expected


def test_a_file_without_persistence_keys_leaves_them_unset(tmp_path: Path) -> None:
    # `roost broker` fills in SQLite in ./roost-data (tests/persistence/test_process.py);
    # a program loading the same file decides for itself, as with a config made in code.
    path = tmp_path / "roost.toml"
    path.write_text("maximum_qos = 1\n", encoding="utf-8")
    config = load_config(path)
    assert (config.persistence, config.data_dir, config.state_dir()) == (None, None, None)


# --- where it listens -----------------------------------------------------------------


def test_ports_by_index_type_and_name(tmp_path: Path) -> None:
    config = BrokerConfig(
        listeners=[
            ListenerConfig(port=0),
            ListenerConfig(port=0, type="ws", name="browsers"),
            ListenerConfig(port=0, type="ws", name="dashboards", path="/dash"),
        ]
    )

    async def main() -> None:
        async with Broker(config) as broker:
            ports = broker.ports
            bound = [listener.port for listener in broker.listeners]
            assert list(ports) == bound
            assert len(set(bound)) == 3
            assert 0 not in bound
            assert ports[0] == broker.port
            assert ports[-1] == bound[2]
            assert ports[1:] == bound[1:]
            assert ports.by_type("tcp") == bound[0]
            assert ports.by_type("ws") == bound[1]  # the first of its type
            assert ports.by_name("dashboards") == bound[2]
            with pytest.raises(KeyError, match="no listener has type 'wss'"):
                ports.by_type("wss")
            with pytest.raises(KeyError, match="no listener is named 'nope'"):
                ports.by_name("nope")
            assert f"browsers=ws:{bound[1]}" in repr(ports)

    asyncio.run(main())


def test_a_named_listener_is_named_in_the_log(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="roost.broker")
    run_briefly(BrokerConfig(listeners=[ListenerConfig(port=0, name="devices")]))
    assert '"devices" (tcp 127.0.0.1:' in caplog.text


def test_listener_names_must_differ(tmp_path: Path) -> None:
    path = tmp_path / "roost.toml"
    path.write_text(
        '[[listeners]]\nname = "a"\nport = 1\n\n[[listeners]]\nname = "a"\nport = 2\n',
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as excinfo:
        load_config(path)
    assert str(excinfo.value) == f'{path}:6: listeners[1].name: same name as listeners[0] ("a")'


def test_a_port_in_use_names_the_listener() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = BrokerConfig(
            listeners=[ListenerConfig(port=0), ListenerConfig(port=port, name="devices")]
        )
        with pytest.raises(ListenerError) as excinfo:
            run_briefly(config)
    assert str(excinfo.value) == (
        f'listeners[1] ("devices" (tcp 127.0.0.1:{port})): cannot listen: address already'
        " in use (another process, perhaps another broker, has this port; stop it or"
        " choose another port)"
    )
    assert excinfo.value.errno == errno.EADDRINUSE


def test_a_host_that_is_not_ours_is_said_so() -> None:
    config = BrokerConfig(listeners=[ListenerConfig(host="192.0.2.1", port=0)])  # TEST-NET-1
    with pytest.raises(ListenerError, match=r"^listeners\[0\] \(tcp 192\.0\.2\.1:0\): cannot "):
        run_briefly(config)
