"""Analyzers: one module each, registered through the ``csi.analyzers`` entry-point group."""
