"""Views: checkpoints and analyses rendered for people and scripts, named by output.

``checkpoint_json`` (the ``csi inspect`` dict, checkpointctl-compatible keys),
``checkpoint_terminal`` (rich tables and the inspect tree), ``report_terminal``
(``csi report show/list``), ``findings_text`` (an analysis as a tree or Markdown).
The signed report and its HTML/Markdown renderers stay in ``forensics.report``.
"""
