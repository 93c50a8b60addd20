"""Issue 17: with an ACL, messages for an offline persistent session keep being queued
across a restart of `roost broker` (SIGTERM or SIGKILL), as they are while it runs.

Each test plays the issue's sequence with real processes and Mosquitto's own clients:
alice (``topic read a/#``) subscribes with a persistent session and goes offline;
pubber (``topic write a/#``) publishes ``a/before``; the broker restarts; pubber
publishes ``a/after``; alice comes back and must get both.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from roost.broker.auth.password_file import PasswordFile
from tests.persistence.conftest import StartProcess
from tests.persistence.process import STARTUP_TIMEOUT, BrokerProcess
from tests.transports.pki import ClientCert, Pki

pytestmark = pytest.mark.skipif(
    shutil.which("mosquitto_sub") is None or shutil.which("mosquitto_pub") is None,
    reason="mosquitto_sub and mosquitto_pub (mosquitto-clients) are not installed",
)

ACL = "user alice\ntopic read a/#\n\nuser pubber\ntopic write a/#\n"


def auth_config(tmp_path: Path, acl: str = ACL) -> Path:
    """A configuration with a password file (alice, pubber) and an ACL file."""
    passwords = PasswordFile()
    passwords.set("alice", "alice-pw")
    passwords.set("pubber", "pubber-pw")
    passwords.save(tmp_path / "passwords")
    (tmp_path / "acl").write_text(acl)
    config = tmp_path / "roost.toml"
    config.write_text(
        f'password_file = "{tmp_path / "passwords"}"\n'
        f'acl_file = "{tmp_path / "acl"}"\n'
        "allow_anonymous = false\n"
        '\n[[listeners]]\nhost = "127.0.0.1"\nport = 1883\n'
    )
    return config


def mosquitto(tool: str, *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [tool, *args], capture_output=True, text=True, timeout=STARTUP_TIMEOUT, check=False
    )
    assert result.returncode == 0, (result.returncode, result.stdout, result.stderr)
    return result


def alice_subscribes(broker: BrokerProcess, *credentials: str) -> None:
    """``mosquitto_sub -c -i alice1 -q 1 -t 'a/#'``, leaving once subscribed."""
    mosquitto("mosquitto_sub", *where(broker), *credentials, "-c", "-i", "alice1", "-q", "1", "-E")
    broker.wait_for(r"Client alice1 disconnected")


def alice_receives(broker: BrokerProcess, count: int, *credentials: str) -> list[str]:
    """alice comes back with the same client id; the topics of what she gets."""
    result = mosquitto(
        "mosquitto_sub",
        *where(broker),
        *credentials,
        *("-c", "-i", "alice1", "-q", "1", "-v", "-C", str(count), "-W", "10"),
    )
    return [line.split(" ", 1)[0] for line in result.stdout.splitlines()]


def where(broker: BrokerProcess) -> tuple[str, ...]:
    return ("-h", "127.0.0.1", "-p", str(broker.port), "-t", "a/#")


def pubber_publishes(broker: BrokerProcess, topic: str, *credentials: str) -> None:
    """QoS 1: mosquitto_pub exits 0 only once it has its PUBACK."""
    mosquitto(
        "mosquitto_pub",
        *("-h", "127.0.0.1", "-p", str(broker.port)),
        *(credentials or ("-u", "pubber", "-P", "pubber-pw")),
        *("-i", "pubber", "-q", "1", "-t", topic, "-m", topic),
    )


ALICE = ("-u", "alice", "-P", "alice-pw")
# The ACL after the change: alice may no longer read a/closed/#.
NARROWED_ACL = "user alice\ntopic read a/open/#\n\nuser pubber\ntopic write a/#\n"


@pytest.mark.parametrize("stop", ["sigterm", "sigkill"])
def test_a_message_published_after_a_restart_reaches_the_offline_session(
    start_process: StartProcess, tmp_path: Path, stop: str
) -> None:
    config = auth_config(tmp_path)
    broker = start_process("-c", str(config))
    alice_subscribes(broker, *ALICE)
    pubber_publishes(broker, "a/before")
    if stop == "sigterm":
        assert broker.stop() == 0
    else:
        broker.kill()

    broker = start_process("-c", str(config))
    broker.wait_for(r"Restored 1 sessions, 1 queued or in-flight messages")
    pubber_publishes(broker, "a/after")
    assert alice_receives(broker, 2, *ALICE) == ["a/before", "a/after"]
    assert broker.stop() == 0


def test_a_restart_with_a_new_acl_judges_the_restored_session_by_it(
    start_process: StartProcess, tmp_path: Path
) -> None:
    config = auth_config(tmp_path)
    broker = start_process("-c", str(config))
    alice_subscribes(broker, *ALICE)
    assert broker.stop() == 0

    # While the broker is down, alice loses a/closed/#.
    (tmp_path / "acl").write_text(NARROWED_ACL)
    broker = start_process("-c", str(config))
    pubber_publishes(broker, "a/closed/x")
    pubber_publishes(broker, "a/open/x")
    assert alice_receives(broker, 1, *ALICE) == ["a/open/x"]
    assert broker.stop() == 0


def test_a_sighup_with_a_new_acl_stops_queueing_what_it_now_denies(
    start_process: StartProcess, tmp_path: Path
) -> None:
    config = auth_config(tmp_path)
    broker = start_process("-c", str(config))
    alice_subscribes(broker, *ALICE)
    assert broker.stop() == 0

    broker = start_process("-c", str(config))  # alice's session is a restored one
    (tmp_path / "acl").write_text(NARROWED_ACL)
    broker.reload()
    broker.wait_for(r"Reloaded ACL file")
    pubber_publishes(broker, "a/closed/x")
    pubber_publishes(broker, "a/open/x")
    assert alice_receives(broker, 1, *ALICE) == ["a/open/x"]
    assert broker.stop() == 0


def remove_alice(tmp_path: Path) -> None:
    passwords = PasswordFile.load(tmp_path / "passwords")
    assert passwords.delete("alice")
    passwords.save(tmp_path / "passwords")


ENDED = r"Session of client alice1 ended: user 'alice' is no longer in the password file"


def test_a_user_removed_from_the_password_file_before_a_restart_loses_the_session(
    start_process: StartProcess, tmp_path: Path
) -> None:
    config = auth_config(tmp_path)
    broker = start_process("-c", str(config))
    alice_subscribes(broker, *ALICE)
    pubber_publishes(broker, "a/before")
    assert broker.stop() == 0

    remove_alice(tmp_path)
    broker = start_process("-c", str(config))
    broker.wait_for(ENDED)
    pubber_publishes(broker, "a/after")
    assert broker.stop() == 0
    # Ended for good: the database no longer has it, nor what was queued for it.
    broker = start_process("-c", str(config))
    broker.wait_for(r"Restored 0 sessions, 0 queued or in-flight messages")
    assert broker.stop() == 0


def test_a_user_removed_from_the_password_file_and_sighup_loses_the_session(
    start_process: StartProcess, tmp_path: Path
) -> None:
    config = auth_config(tmp_path)
    broker = start_process("-c", str(config))
    alice_subscribes(broker, *ALICE)
    pubber_publishes(broker, "a/before")
    remove_alice(tmp_path)
    broker.reload()
    broker.wait_for(ENDED)
    assert broker.stop() == 0
    broker = start_process("-c", str(config))
    broker.wait_for(r"Restored 0 sessions, 0 queued or in-flight messages")
    assert broker.stop() == 0


def tls_config(tmp_path: Path, pki: Pki) -> Path:
    """One TLS listener that takes the username from the client certificate's CN."""
    (tmp_path / "acl").write_text(ACL)
    config = tmp_path / "roost.toml"
    config.write_text(
        f'acl_file = "{tmp_path / "acl"}"\n'
        "allow_anonymous = false\n"
        '\n[[listeners]]\nhost = "127.0.0.1"\nport = 8883\ntype = "tls"\n'
        f'certfile = "{pki.certfile}"\nkeyfile = "{pki.keyfile}"\ncafile = "{pki.cafile}"\n'
        'require_certificate = true\nuse_identity_as_username = "cn"\n'
    )
    return config


def test_a_certificate_identity_keeps_its_session_entitled_across_a_restart(
    start_process: StartProcess, tmp_path: Path
) -> None:
    pki = Pki(tmp_path)
    alice = pki.client("alice")
    pubber = pki.client("pubber")
    config = tls_config(tmp_path, pki)

    def tls(cert: ClientCert) -> tuple[str, ...]:
        return (
            *("--cafile", str(pki.cafile)),
            *("--cert", str(cert.certfile), "--key", str(cert.keyfile)),
        )

    broker = start_process("-c", str(config))
    alice_subscribes(broker, *tls(alice))
    pubber_publishes(broker, "a/before", *tls(pubber))
    assert broker.stop() == 0

    broker = start_process("-c", str(config))
    broker.wait_for(r"Restored 1 sessions, 1 queued or in-flight messages")
    pubber_publishes(broker, "a/after", *tls(pubber))
    assert alice_receives(broker, 2, *tls(alice)) == ["a/before", "a/after"]
    assert broker.stop() == 0
