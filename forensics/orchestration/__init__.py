"""Orchestration: the capture pipeline and its steps.

One package above capture, storage, analysis and report: ``pipeline`` runs a
capture end to end in-process (the local executor), ``steps`` are the same
functions as the Argo templates' ``csi step`` commands, ``argo`` submits and
watches workflows, ``analyze_job`` is the analysis half run in the worker
process, and ``request`` is the pipeline's contract (CaptureRequest/Result).
The hera template definitions live in the top-level ``workflows`` package.
"""
