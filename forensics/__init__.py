"""csi: forensic checkpoints of Kubernetes containers.

The package is a library first: ``forensics.archive`` opens checkpoint
archives and decodes CRIU images; the CLI in ``forensics.cli`` is a thin
shell over it.
"""

__version__ = "0.1.0"  # the one copy: pyproject reads it, the image tags follow it
