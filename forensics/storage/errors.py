"""Registry errors: each says what failed, why, what to do, and whether a retry can help.

Every message that concerns a push also says where the archive is, because
it is evidence: a failed push never removes or changes it.
"""

from __future__ import annotations

from forensics.errors import CsiError
from forensics.status import ExitStatus


class RegistryError(CsiError):
    """A push or pull failed; the archive on disk is untouched."""

    exit_code = ExitStatus.EXTERNAL


class RegistryUnavailableError(RegistryError):
    """The registry cannot be reached or answered with a transient error (5xx, 429)."""

    permanent = False


class RegistryAuthError(RegistryError):
    """The registry refused our credentials (401) or our rights (403)."""


class RegistryTLSError(RegistryError):
    """The TLS handshake failed: an unknown CA, a wrong host name, or plain HTTP."""


class RegistryStorageFullError(RegistryError):
    """The registry's storage is full: retrying will not help until space is freed."""


class DigestMismatchError(RegistryError):
    """Bytes did not hash to the digest they were published under."""


class ImageNotFoundError(RegistryError):
    """The reference names no image (or not a checkpoint image)."""


class LocalStorageError(RegistryError):
    """Writing on this machine failed (disk full, permission denied)."""


class BadReferenceError(RegistryError):
    """An image reference cannot be parsed."""

    exit_code = ExitStatus.USAGE


# ToolError (an external tool failed) lives with the subprocess wrapper; re-exported here.
from forensics.run import ToolError  # noqa: E402

__all__ = ["BadReferenceError", "DigestMismatchError", "ImageNotFoundError",
           "LocalStorageError", "RegistryAuthError", "RegistryError", "RegistryStorageFullError",
           "RegistryTLSError", "RegistryUnavailableError", "ToolError"]
