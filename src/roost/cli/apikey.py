"""`roost apikey`: manage the HTTP API's keys file (create, list, delete)."""

from __future__ import annotations

import argparse
import sys

from roost.http.apikeys import ApiKeyError, create_key, delete_key, read_keys

DESCRIPTION = """\
Manage the API keys of the broker's HTTP API (the [http] table's api_keys_file;
docs/operations.md). A key is made at random and printed once: the file keeps only its
SHA-256 hash. Clients send it as "Authorization: Bearer <key>". A running broker reads
the file again when it changes: no restart is needed."""

EPILOG = """\
exit status:
  0  success
  1  error: a file that cannot be read or written, a bad or taken name, or (delete) a
     name that is not in the file
  2  an unknown option (from argparse)"""


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "apikey",
        help="manage the HTTP API's keys (create, list, delete)",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    create = actions.add_parser(
        "create", help="make a key called NAME and print it (the only time it is shown)"
    )
    create.add_argument("file", metavar="KEYSFILE", help="the keys file (created if missing)")
    create.add_argument("name", metavar="NAME", help="1 to 64 of A-Z a-z 0-9 _ . -")
    listing = actions.add_parser("list", help="list the keys' names and when they were made")
    listing.add_argument("file", metavar="KEYSFILE")
    delete = actions.add_parser("delete", help="delete the key called NAME")
    delete.add_argument("file", metavar="KEYSFILE")
    delete.add_argument("name", metavar="NAME")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        if args.action == "create":
            key = create_key(args.file, args.name)
            print(key)
            print(
                f"Key {args.name!r} added to {args.file}. It is shown only now: keep it.",
                file=sys.stderr,
            )
        elif args.action == "list":
            for stored in read_keys(args.file):
                print(f"{stored.name}\t{stored.created}")
        elif not delete_key(args.file, args.name):
            print(f"roost apikey: {args.file} has no key named {args.name!r}", file=sys.stderr)
            return 1
    except ApiKeyError as exc:
        print(f"roost apikey: {exc}", file=sys.stderr)
        return 1
    return 0
