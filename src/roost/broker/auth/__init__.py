"""Authentication and authorization backends for the broker."""

from roost.broker.auth.password_file import (
    PasswordFile,
    PasswordFileError,
    PasswordHash,
    hash_password,
)

__all__ = ["PasswordFile", "PasswordFileError", "PasswordHash", "hash_password"]
