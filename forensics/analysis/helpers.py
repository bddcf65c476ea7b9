"""Small facts analyzers share: address classes, writable locations, redaction, file types."""

from __future__ import annotations

import ipaddress
import posixpath

WRITABLE_DIRS = ("/tmp/", "/var/tmp/", "/dev/shm/", "/run/", "/var/run/", "/dev/mqueue/")
SHELLS = frozenset({"sh", "bash", "dash", "ash", "zsh", "ksh", "mksh", "fish", "tcsh", "csh"})
INTERPRETERS = {
    "python": ("-c",), "python2": ("-c",), "python3": ("-c",), "perl": ("-e", "-E"),
    "ruby": ("-e",), "node": ("-e", "--eval"), "php": ("-r",), "lua": ("-e",),
}


def basename(path: str | None) -> str:
    return posixpath.basename(path or "")


def is_writable_location(path: str) -> bool:
    """Temporary/writable directories, or any hidden directory on the way."""
    if path.startswith(WRITABLE_DIRS):
        return True
    return any(part.startswith(".") and part not in (".", "..")
               for part in path.split("/")[:-1])


def address_class(host: str) -> str:
    """loopback, private, link-local, unspecified, multicast or public."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return "unknown"
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    if ip.is_multicast:
        return "multicast"
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return address_class(str(ip.ipv4_mapped))
    if ip.is_private:
        return "private"
    return "public"


def file_type(head: bytes) -> str:
    """What a file is, from its first bytes."""
    if head.startswith(b"\x7fELF"):
        return "elf"
    if head.startswith(b"#!"):
        return "script"
    if head.startswith((b"\x1f\x8b", b"PK\x03\x04", b"\x28\xb5\x2f\xfd", b"BZh", b"\xfd7zXZ")):
        return "archive"
    if len(head) > 262 and head[257:262] == b"ustar":
        return "archive"
    if not head:
        return "empty"
    sample = head[:512]
    text = sum(32 <= b < 127 or b in (9, 10, 13) for b in sample)
    return "text" if text >= 0.95 * len(sample) else "data"
