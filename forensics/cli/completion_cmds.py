"""``csi completion bash|zsh|fish``: print click's shell completion script.

Completion is click's own: the shell runs ``csi`` with ``_CSI_COMPLETE`` set and
gets the candidates back. This command only prints the script that wires it up::

    eval "$(csi completion bash)"          # ~/.bashrc
    eval "$(csi completion zsh)"           # ~/.zshrc
    csi completion fish > ~/.config/fish/completions/csi.fish
"""

from __future__ import annotations

import click

SHELLS = ("bash", "zsh", "fish")
COMPLETE_VAR = "_CSI_COMPLETE"


def completion_script(shell: str) -> str:
    """The completion script of ``shell`` for the ``csi`` command."""
    from click.shell_completion import get_completion_class

    from forensics.cli.main import cli

    cls = get_completion_class(shell)
    assert cls is not None, shell  # SHELLS are click's built-in ones
    return cls(cli, {}, "csi", COMPLETE_VAR).source()


@click.command("completion")
@click.argument("shell", type=click.Choice(SHELLS))
def completion(shell: str) -> None:
    """Print the shell completion script for SHELL (bash, zsh or fish).

    bash: eval "$(csi completion bash)" in ~/.bashrc; zsh: the same in ~/.zshrc;
    fish: csi completion fish > ~/.config/fish/completions/csi.fish
    """
    click.echo(completion_script(shell), nl=False)
