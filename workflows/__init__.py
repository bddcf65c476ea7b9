"""Capture workflows: hera WorkflowTemplate definitions and the local executor."""
