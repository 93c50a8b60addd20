"""`roost scram`: manage the SCRAM credentials file for MQTT 5 enhanced authentication."""

from __future__ import annotations

import argparse
import getpass
import os
import sys

from roost.broker.auth.password_file import PasswordFileError, check_username
from roost.broker.auth.scram_file import ScramFile
from roost.protocol.scram import DEFAULT_ITERATIONS, MECHANISMS

USAGE = """\
roost scram [-m MECHANISM] [-I ITERATIONS] [-c | -D] scramfile username
       roost scram [-m MECHANISM] [-I ITERATIONS] [-c] -b scramfile username password"""

DESCRIPTION = """\
Add, update or delete users in the SCRAM credentials file the broker's scram_file
setting names. Only salted keys are stored (StoredKey and ServerKey, RFC 5802), never the
password. Without -m the user gets both SCRAM-SHA-256 and SCRAM-SHA-512 entries. Without
-b the password is read from the terminal, without echo, and must be entered twice."""

EPILOG = """\
file format, one line per user and mechanism:
  USERNAME:MECHANISM$ITERATIONS:SALT$STOREDKEY:SERVERKEY   (base64 salt and keys)

exit status:
  0  success
  1  error: bad or conflicting arguments, a file that cannot be read, written or parsed,
     passwords that do not match, or (with -D) a user that is not in the file
  2  an unknown option, or an option value of the wrong type (from argparse)"""


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "scram",
        help="manage SCRAM credentials for MQTT 5 enhanced authentication",
        usage=USAGE,
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "-b",
        dest="batch",
        action="store_true",
        help="batch mode: take the password from the command line (visible to other "
        "users of this machine in the process list)",
    )
    parser.add_argument(
        "-c",
        dest="create",
        action="store_true",
        help="create a new file; an existing one is overwritten",
    )
    parser.add_argument(
        "-D", dest="delete", action="store_true", help="delete the user (all its mechanisms)"
    )
    parser.add_argument(
        "-m",
        dest="mechanisms",
        action="append",
        choices=list(MECHANISMS),
        metavar="MECHANISM",
        help=f"store only this mechanism ({' or '.join(MECHANISMS)}); may be repeated",
    )
    parser.add_argument(
        "-I",
        dest="iterations",
        type=int,
        default=DEFAULT_ITERATIONS,
        metavar="ITERATIONS",
        help=f"PBKDF2 iterations (default {DEFAULT_ITERATIONS}, RFC 7677's minimum)",
    )
    parser.add_argument("scramfile", help="the SCRAM credentials file")
    parser.add_argument("username", help="the user to add, update or delete")
    parser.add_argument("password", nargs="?", help="the password (with -b only)")
    parser.set_defaults(run=run)


class _Failure(Exception):
    """A problem to report on stderr, exiting with status 1."""


def run(args: argparse.Namespace) -> int:
    try:
        _run(args)
    except _Failure as exc:
        print(f"roost scram: error: {exc}", file=sys.stderr)
        return 1
    except PasswordFileError as exc:
        print(f"roost scram: {exc}", file=sys.stderr)
        return 1
    return 0


def _run(args: argparse.Namespace) -> None:
    if args.create and args.delete:
        raise _Failure("-c and -D cannot be used together")
    if args.batch and args.delete:
        raise _Failure("-b and -D cannot be used together")
    if args.batch != (args.password is not None):
        raise _Failure("the password is given on the command line with -b, and only then")
    if args.iterations < 1:
        raise _Failure("the iteration count (-I) must be at least 1")
    path: str = args.scramfile
    username: str = args.username
    try:
        check_username(username)
    except ValueError as exc:
        raise _Failure(str(exc)) from None
    if args.delete:
        credentials = ScramFile.load(path)
        if not credentials.delete(username):
            raise _Failure(f"user {username!r} is not in {path}")
        _save(credentials, path)
        return
    if args.create:
        credentials = ScramFile()
    elif os.path.exists(path):
        credentials = ScramFile.load(path)
    else:
        raise _Failure(f"{path} does not exist (use -c to create it)")
    password: str = args.password if args.batch else _prompt_password()
    if not password:
        raise _Failure("the password is empty")
    mechanisms = tuple(dict.fromkeys(args.mechanisms or MECHANISMS))
    try:
        credentials.set(username, password, mechanisms, iterations=args.iterations)
    except ValueError as exc:  # SASLprep refuses some characters
        raise _Failure(f"the password cannot be used: {exc}") from None
    _save(credentials, path)


def _prompt_password() -> str:
    try:
        first = getpass.getpass("Password: ")
        second = getpass.getpass("Reenter password: ")
    except (EOFError, KeyboardInterrupt):
        raise _Failure("no password entered") from None
    if first != second:
        raise _Failure("the passwords do not match")
    return first


def _save(credentials: ScramFile, path: str) -> None:
    try:
        credentials.save(path)
    except OSError as exc:
        raise _Failure(f"cannot write {path}: {exc.strerror or exc}") from exc
