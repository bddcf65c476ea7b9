"""Reading container checkpoint archives: the tar, CRIU images, memory, file-system changes."""

from forensics.archive.checkpoint import Checkpoint

__all__ = ["Checkpoint"]
