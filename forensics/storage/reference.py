"""Image references: ``[HOST[:PORT]/]REPO[:TAG][@sha256:HEX]`` and ``oci:DIR[:NAME]``.

Registry references follow the docker reference grammar: the first
component is a host when it contains ``.`` or ``:`` or is ``localhost``;
without a host the registry is Docker Hub (``docker.io``, single names under
``library/``). ``oci:DIR[:NAME]`` names an image in an OCI image layout
directory, as skopeo's ``oci:`` transport does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from forensics.storage.errors import BadReferenceError

DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"
_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_DIGEST = re.compile(r"^sha256:[a-f0-9]{64}$")
_HOST = re.compile(r"^(?:\[[0-9a-fA-F:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?)(?::\d+)?$")
_LAYOUT_NAME = re.compile(r"^[A-Za-z0-9._:@/+-]+$")


def _bad(text: str, why: str) -> BadReferenceError:
    return BadReferenceError(f"bad image reference {text!r}", why=why,
                             hint="write HOST[:PORT]/REPO[:TAG][@sha256:…] or oci:DIR[:NAME]")


@dataclass(frozen=True)
class ImageRef:
    """An image in a registry."""

    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @classmethod
    def parse(cls, text: str) -> ImageRef:
        """Parse a registry reference; raises :class:`BadReferenceError`."""
        rest = text.strip()
        if not rest or any(c.isspace() for c in rest):
            raise _bad(text, "empty or contains white space")
        digest = None
        if "@" in rest:
            rest, digest = rest.rsplit("@", 1)
            if not _DIGEST.match(digest):
                raise _bad(text, f"{digest!r} is not a sha256 digest")
        tag = None
        slash = rest.rfind("/")
        colon = rest.rfind(":")
        if colon > slash:
            rest, tag = rest[:colon], rest[colon + 1:]
            if not _TAG.match(tag):
                raise _bad(text, f"{tag!r} is not a valid tag")
        parts = rest.split("/")
        if len(parts) > 1 and ("." in parts[0] or ":" in parts[0] or parts[0] == "localhost"):
            registry, path = parts[0], parts[1:]
            if not _HOST.match(registry):
                raise _bad(text, f"{registry!r} is not a host name")
        else:
            registry, path = DOCKER_HUB, parts
            if len(path) == 1:
                path = ["library", *path]
        for component in path:
            if not _COMPONENT.match(component):
                raise _bad(text, f"repository component {component!r} must be lower-case "
                           "letters, digits and single separators")
        repository = "/".join(path)
        if len(repository) > 255:
            raise _bad(text, "repository name longer than 255 characters")
        return cls(registry=registry, repository=repository, tag=tag, digest=digest)

    @property
    def api_host(self) -> str:
        """The host:port the Distribution API is reached at."""
        return DOCKER_HUB_API if self.registry == DOCKER_HUB else self.registry

    @property
    def reference(self) -> str:
        """What goes after ``/manifests/``: the digest if pinned, else the tag (or latest)."""
        return self.digest or self.tag or "latest"

    @property
    def name(self) -> str:
        """``registry/repository`` without tag or digest."""
        return f"{self.registry}/{self.repository}"

    def with_tag(self, tag: str) -> ImageRef:
        if not _TAG.match(tag):
            raise _bad(tag, f"{tag!r} is not a valid tag")
        return replace(self, tag=tag, digest=None)

    def with_digest(self, digest: str) -> ImageRef:
        return replace(self, digest=digest)

    def __str__(self) -> str:
        text = self.name
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


@dataclass(frozen=True)
class LayoutRef:
    """An image in an OCI image layout directory (``oci:DIR[:NAME]``)."""

    path: str
    name: str | None = None

    @classmethod
    def parse(cls, text: str) -> LayoutRef:
        body = text.removeprefix("oci:")
        path, _, name = body.partition(":")
        if not path:
            raise _bad(text, "no directory after oci:")
        if name and not _LAYOUT_NAME.match(name):
            raise _bad(text, f"{name!r} is not a valid image name in a layout")
        return cls(path=path, name=name or None)

    def with_name(self, name: str) -> LayoutRef:
        return replace(self, name=name)

    def __str__(self) -> str:
        return f"oci:{self.path}" + (f":{self.name}" if self.name else "")


Target = ImageRef | LayoutRef


def parse_target(text: str) -> Target:
    """A registry reference, or a layout reference when it starts with ``oci:``."""
    if text.startswith("oci:"):
        return LayoutRef.parse(text)
    return ImageRef.parse(text)
