"""Analysis: analyzers turn a checkpoint into findings and records.

The contract lives in :mod:`forensics.analysis.base`, the typed results in
:mod:`forensics.analysis.findings`, discovery in :mod:`forensics.analysis.registry`
and the run itself in :mod:`forensics.analysis.runner`.
"""
