"""`roost passwd`: mosquitto_passwd's usage, and files real Mosquitto accepts."""

from __future__ import annotations

import os
import pty
import select
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from roost.broker.auth.password_file import PasswordFile, hash_password
from roost.cli.main import main
from tests.auth.real_mosquitto import Mosquitto, needs_mosquitto

StartMosquitto = Callable[[Path], Mosquitto]


def roost_passwd(*args: str | Path) -> int:
    return main(["passwd", *map(str, args)])


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "passwords"


# -- interop with the real broker ---------------------------------------------------


@needs_mosquitto
def test_mosquitto_accepts_users_written_by_roost_passwd(
    path: Path, start_mosquitto: StartMosquitto
) -> None:
    assert roost_passwd("-c", "-b", path, "alice", "alice pw") == 0
    assert roost_passwd("-b", path, "bob", "b:o:b") == 0
    assert roost_passwd("-b", path, "carol", "carol-pw") == 0
    assert roost_passwd("-b", path, "alice", "alice new") == 0
    assert roost_passwd("-D", path, "carol") == 0

    broker = start_mosquitto(path)
    assert broker.publish("alice", "alice new").returncode == 0, broker.log()
    assert broker.publish("bob", "b:o:b").returncode == 0, broker.log()
    assert broker.publish("alice", "alice pw").returncode != 0
    assert broker.publish("alice", "b:o:b").returncode != 0
    assert broker.publish("carol", "carol-pw").returncode != 0
    assert broker.publish("nobody", "alice new").returncode != 0


@needs_mosquitto
def test_mosquitto_accepts_a_file_hashed_by_roost_passwd_update(
    path: Path, start_mosquitto: StartMosquitto
) -> None:
    path.write_text("# staff\nalice:first\nbob:second\n")
    assert roost_passwd("-U", path) == 0

    broker = start_mosquitto(path)
    assert broker.publish("alice", "first").returncode == 0, broker.log()
    assert broker.publish("bob", "second").returncode == 0, broker.log()
    assert broker.publish("bob", "first").returncode != 0


# -- -c, -b, -D, -U -----------------------------------------------------------------


def test_create_overwrites_an_existing_file(path: Path) -> None:
    assert roost_passwd("-c", "-b", path, "alice", "a") == 0
    assert roost_passwd("-c", "-b", path, "bob", "b") == 0
    passwords = PasswordFile.load(path)
    assert passwords.usernames() == ["bob"]
    assert passwords.verify("bob", b"b")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_batch_updates_one_user_and_keeps_the_others_lines(path: Path) -> None:
    kept = f"bob:{hash_password('b')}"
    path.write_text(f"alice:{hash_password('a')}\n{kept}\n")
    assert roost_passwd("-b", path, "alice", "changed") == 0
    lines = path.read_text().splitlines()
    assert lines[1] == kept
    passwords = PasswordFile.load(path)
    assert passwords.verify("alice", b"changed")
    assert passwords.verify("bob", b"b")


def test_iterations_option_sets_the_cost(path: Path) -> None:
    assert roost_passwd("-I", "2000", "-c", "-b", path, "alice", "a") == 0
    assert path.read_text().startswith("alice:$7$2000$")


def test_batch_without_create_needs_an_existing_file(
    path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert roost_passwd("-b", path, "alice", "a") == 1
    assert "does not exist (use -c to create it)" in capsys.readouterr().err
    assert not path.exists()


def test_delete_removes_the_user(path: Path) -> None:
    assert roost_passwd("-c", "-b", path, "alice", "a") == 0
    assert roost_passwd("-b", path, "bob", "b") == 0
    assert roost_passwd("-D", path, "alice") == 0
    assert PasswordFile.load(path).usernames() == ["bob"]


def test_deleting_an_absent_user_is_an_error_and_changes_nothing(
    path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert roost_passwd("-c", "-b", path, "alice", "a") == 0
    before = path.read_text()
    assert roost_passwd("-D", path, "nobody") == 1
    assert "user 'nobody' is not in" in capsys.readouterr().err
    assert path.read_text() == before


def test_update_hashes_a_plain_file_in_place(path: Path) -> None:
    path.write_text("alice:a\nbob:b b\n")
    path.chmod(0o644)
    assert roost_passwd("-U", path) == 0
    assert "a\n" not in path.read_text()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    passwords = PasswordFile.load(path)
    assert passwords.verify("alice", b"a")
    assert passwords.verify("bob", b"b b")


def test_update_refuses_an_already_hashed_file(
    path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert roost_passwd("-c", "-b", path, "alice", "a") == 0
    before = path.read_text()
    assert roost_passwd("-U", path) == 1
    assert f"{path}:1: the password is already hashed" in capsys.readouterr().err
    assert path.read_text() == before


def test_a_malformed_file_is_reported_by_line_and_left_alone(
    path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path.write_text(f"alice:{hash_password('a')}\nbroken line\n")
    assert roost_passwd("-b", path, "bob", "b") == 1
    assert f"{path}:2: ill-formed entry" in capsys.readouterr().err
    assert "bob" not in path.read_text()


@pytest.mark.parametrize("username", ["al:ice", "tab\tuser"])
def test_unusable_usernames_are_refused(
    path: Path, capsys: pytest.CaptureFixture[str], username: str
) -> None:
    assert roost_passwd("-c", "-b", path, username, "pw") == 1
    assert "username must not contain" in capsys.readouterr().err
    assert not path.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-c", "-D", "f", "u"], "-c and -D cannot be used together"),
        (["-c", "-U", "f"], "-c and -U cannot be used together"),
        (["-D", "-U", "f"], "-D and -U cannot be used together"),
        (["-b", "-D", "f", "u", "p"], "-b and -D cannot be used together"),
        (["-b", "f", "u"], "expected passwordfile, username and password"),
        (["f"], "expected passwordfile and username"),
        (["f", "u", "extra"], "expected passwordfile and username"),
        (["-U", "f", "u"], "expected passwordfile"),
        (["-I", "0", "-c", "-b", "f", "u", "p"], "must be at least 1"),
    ],
)
def test_bad_argument_combinations_exit_1(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["passwd", *args]) == 1
    assert message in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_help_documents_the_exit_status(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["passwd", "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert "roost passwd [-I ITERATIONS] [-c | -D] passwordfile username" in out
    assert "exit status:" in out
    assert "0  success" in out
    assert "1  error" in out


# -- the password prompt ------------------------------------------------------------


def fake_getpass(monkeypatch: pytest.MonkeyPatch, *answers: str) -> list[str]:
    """Answer getpass prompts from ``answers``; return the prompts that were shown."""
    prompts: list[str] = []
    replies: Iterator[str] = iter(answers)

    def getpass(prompt: str = "Password: ", stream: object = None) -> str:
        prompts.append(prompt)
        return next(replies)

    monkeypatch.setattr("roost.cli.passwd.getpass.getpass", getpass)
    return prompts


def test_prompt_asks_twice_and_stores_the_password(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    prompts = fake_getpass(monkeypatch, "typed pw", "typed pw")
    assert roost_passwd("-c", path, "alice") == 0
    assert prompts == ["Password: ", "Reenter password: "]
    assert PasswordFile.load(path).verify("alice", b"typed pw")


def test_prompt_refuses_a_mismatch(
    path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_getpass(monkeypatch, "one", "two")
    assert roost_passwd("-c", path, "alice") == 1
    assert "the passwords do not match" in capsys.readouterr().err
    assert not path.exists()


def test_prompt_refuses_an_empty_password(
    path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_getpass(monkeypatch, "", "")
    assert roost_passwd("-c", path, "alice") == 1
    assert "the password is empty" in capsys.readouterr().err


def test_prompt_updates_an_existing_file(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert roost_passwd("-c", "-b", path, "alice", "a") == 0
    fake_getpass(monkeypatch, "b", "b")
    assert roost_passwd(path, "bob") == 0
    passwords = PasswordFile.load(path)
    assert passwords.verify("alice", b"a")
    assert passwords.verify("bob", b"b")


# A child that makes its stdin (a pseudo-terminal) its controlling terminal, as a login
# shell would, then runs `roost`: getpass reads /dev/tty, which needs one.
_WITH_CONTROLLING_TTY = (
    "import fcntl, runpy, sys, termios; "
    "fcntl.ioctl(0, termios.TIOCSCTTY, 0); "
    "sys.argv = ['roost', *sys.argv[1:]]; "
    "runpy.run_module('roost', run_name='__main__')"
)


class Terminal:
    """A `roost` process on a pseudo-terminal, driven like a person at a keyboard."""

    def __init__(self, *args: str) -> None:
        self.master, slave = pty.openpty()
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-c", _WITH_CONTROLLING_TTY, *args],
                stdin=slave,
                stdout=slave,
                stderr=slave,
                start_new_session=True,
            )
        finally:
            os.close(slave)
        self.output = b""

    def expect(self, text: bytes, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.output:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self._read(remaining):
                raise AssertionError(f"never saw {text!r}; output so far: {self.output!r}")

    def type(self, line: str) -> None:
        os.write(self.master, line.encode() + b"\n")

    def finish(self, timeout: float = 10.0) -> int:
        code = self.process.wait(timeout=timeout)
        while self._read(0):
            pass
        os.close(self.master)
        return code

    def _read(self, timeout: float) -> bool:
        ready, _, _ = select.select([self.master], [], [], timeout)
        if not ready:
            return False
        try:
            chunk = os.read(self.master, 4096)
        except OSError:  # EIO: the child closed the terminal
            return False
        self.output += chunk
        return bool(chunk)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=5)


@pytest.fixture
def terminals() -> Iterator[Callable[..., Terminal]]:
    opened: list[Terminal] = []

    def open_terminal(*args: str) -> Terminal:
        terminal = Terminal(*args)
        opened.append(terminal)
        return terminal

    yield open_terminal
    for terminal in opened:
        terminal.kill()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses Linux pseudo-terminals")
@pytest.mark.parametrize(
    ("second", "expected_code"), [("s3cret pw", 0), ("other pw", 1)], ids=["match", "mismatch"]
)
def test_prompt_on_a_real_terminal_does_not_echo(
    path: Path, terminals: Callable[..., Terminal], second: str, expected_code: int
) -> None:
    terminal = terminals("passwd", "-c", str(path), "alice")
    terminal.expect(b"Password: ")
    terminal.type("s3cret pw")
    terminal.expect(b"Reenter password: ")
    terminal.type(second)
    assert terminal.finish() == expected_code, terminal.output
    assert b"s3cret" not in terminal.output
    assert b"other" not in terminal.output
    if expected_code == 0:
        assert PasswordFile.load(path).verify("alice", b"s3cret pw")
    else:
        assert b"the passwords do not match" in terminal.output
        assert not path.exists()
