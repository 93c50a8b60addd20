"""`roost passwd`: manage Mosquitto-compatible password files, like ``mosquitto_passwd``."""

from __future__ import annotations

import argparse
import getpass
import os
import sys

from roost.broker.auth.password_file import (
    DEFAULT_ITERATIONS,
    PasswordFile,
    PasswordFileError,
    check_username,
)

USAGE = """\
roost passwd [-I ITERATIONS] [-c | -D] passwordfile username
       roost passwd [-I ITERATIONS] [-c] -b passwordfile username password
       roost passwd [-I ITERATIONS] -U passwordfile"""

DESCRIPTION = """\
Add, update or delete users in a password file that both Roost and Mosquitto read.
Passwords are stored as Mosquitto's $7$ PBKDF2-SHA512 hashes. Without -b the password
is read from the terminal, without echo, and must be entered twice."""

EPILOG = """\
exit status:
  0  success
  1  error: bad or conflicting arguments, a file that cannot be read, written or parsed,
     passwords that do not match, or (with -D) a user that is not in the file
  2  an unknown option, or an option value of the wrong type (from argparse)"""


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "passwd",
        help="manage a Mosquitto-compatible password file",
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
        help="create a new password file; an existing file is overwritten",
    )
    parser.add_argument(
        "-D", dest="delete", action="store_true", help="delete the user instead of setting it"
    )
    parser.add_argument(
        "-U",
        dest="update",
        action="store_true",
        help="hash a plain-text 'username:password' file in place",
    )
    parser.add_argument(
        "-I",
        dest="iterations",
        type=int,
        default=DEFAULT_ITERATIONS,
        metavar="ITERATIONS",
        help=f"PBKDF2 iterations for new hashes (default {DEFAULT_ITERATIONS}, "
        "as mosquitto_passwd)",
    )
    parser.add_argument("passwordfile", nargs="?", help="the password file")
    parser.add_argument("username", nargs="?", help="the user to add, update or delete")
    parser.add_argument("password", nargs="?", help="the password (with -b only)")
    parser.set_defaults(run=run)


class _Failure(Exception):
    """A problem to report on stderr, exiting with status 1."""


def run(args: argparse.Namespace) -> int:
    try:
        _run(args)
    except _Failure as exc:
        print(f"roost passwd: error: {exc}", file=sys.stderr)
        return 1
    except PasswordFileError as exc:
        print(f"roost passwd: {exc}", file=sys.stderr)
        return 1
    return 0


def _run(args: argparse.Namespace) -> None:
    _check_arguments(args)
    path: str = args.passwordfile
    if args.update:
        _save(PasswordFile.hash_plaintext(path, iterations=args.iterations), path)
        return
    username: str = args.username
    try:
        check_username(username)
    except ValueError as exc:
        raise _Failure(str(exc)) from None
    if args.delete:
        passwords = PasswordFile.load(path)
        if not passwords.delete(username):
            raise _Failure(f"user {username!r} is not in {path}")
        _save(passwords, path)
        return
    if args.create:
        passwords = PasswordFile()
    elif os.path.exists(path):
        # Read (and so check) the file before asking for a password that cannot be stored.
        passwords = PasswordFile.load(path)
    else:
        raise _Failure(f"{path} does not exist (use -c to create it)")
    password: str = args.password if args.batch else _prompt_password()
    if not password:
        raise _Failure("the password is empty")
    passwords.set(username, password, iterations=args.iterations)
    _save(passwords, path)


def _check_arguments(args: argparse.Namespace) -> None:
    modes = [
        flag for flag, on in (("-c", args.create), ("-D", args.delete), ("-U", args.update)) if on
    ]
    if len(modes) > 1:
        raise _Failure(f"{modes[0]} and {modes[1]} cannot be used together")
    if args.batch and (args.delete or args.update):
        raise _Failure(f"-b and {'-D' if args.delete else '-U'} cannot be used together")
    if args.iterations < 1:
        raise _Failure("the iteration count (-I) must be at least 1")
    given = [a for a in (args.passwordfile, args.username, args.password) if a is not None]
    if args.update:
        wanted, names = 1, "passwordfile"
    elif args.batch:
        wanted, names = 3, "passwordfile, username and password"
    else:
        wanted, names = 2, "passwordfile and username"
    if len(given) != wanted:
        raise _Failure(f"expected {names} (see roost passwd --help)")


def _prompt_password() -> str:
    try:
        first = getpass.getpass("Password: ")
        second = getpass.getpass("Reenter password: ")
    except (EOFError, KeyboardInterrupt):
        raise _Failure("no password entered") from None
    if first != second:
        raise _Failure("the passwords do not match")
    return first


def _save(passwords: PasswordFile, path: str) -> None:
    try:
        passwords.save(path)
    except OSError as exc:
        raise _Failure(f"cannot write {path}: {exc.strerror or exc}") from exc
