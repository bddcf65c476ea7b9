"""Views of checkpoints and analyses: JSON of record, tree, and later HTML/Markdown."""
