"""The one error hierarchy of csi.

Every error a user can meet is a :class:`CsiError`: it says *what* went wrong,
*why* that is likely, and, where useful, *what to do*. The CLI turns it into
one readable line and an exit status; workflow steps use :attr:`CsiError.permanent`
to decide whether a retry can help.
"""

from __future__ import annotations

from forensics.status import ExitStatus


class CsiError(Exception):
    """Base class: a failure explained for a human."""

    exit_code: int = ExitStatus.FAILURE
    permanent = True

    def __init__(self, what: str, *, why: str = "", hint: str = "") -> None:
        super().__init__(what)
        self.what = what
        self.why = why
        self.hint = hint

    def __str__(self) -> str:
        parts = [self.what]
        if self.why:
            parts.append(self.why)
        text = ": ".join(parts)
        if self.hint:
            text += f" ({self.hint})"
        return text


class Terminated(BaseException):
    """SIGTERM or SIGHUP arrived while csi held temporary files; raised so they are removed.

    A BaseException, as KeyboardInterrupt: no ``except Exception`` swallows it.
    Raised by :mod:`forensics.archive.tempfiles`; the CLI exits 128 + the signal.
    """

    def __init__(self, signum: int) -> None:
        import signal

        self.signum = signum
        self.exit_code = 128 + signum
        super().__init__(f"stopped by {signal.Signals(signum).name}; temporary files removed")


class ArchiveError(CsiError):
    """A checkpoint archive cannot be read as a whole."""

    exit_code = ExitStatus.USAGE

    def __init__(
        self, archive: str, what: str, *, member: str = "", why: str = "", hint: str = ""
    ) -> None:
        where = f"{archive}: {member}" if member else archive
        super().__init__(f"{where}: {what}", why=why, hint=hint)
        self.archive = archive
        self.member = member


class CriuImageError(CsiError):
    """A CRIU image inside an archive is malformed (bad magic, truncated, absurd size)."""

    exit_code = ExitStatus.USAGE

    def __init__(self, image: str, what: str, *, offset: int | None = None) -> None:
        at = f" at byte {offset}" if offset is not None else ""
        super().__init__(f"{image}: {what}{at}")
        self.image = image
        self.offset = offset


class UsageError(CsiError):
    """The user asked for something that cannot be done as asked."""

    exit_code = ExitStatus.USAGE
