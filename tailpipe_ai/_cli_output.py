"""The command line's two consoles and its one way to fail: a single `error: ...` line on stderr, exit code 2."""

from __future__ import annotations

import typer
from rich.console import Console

out = Console()
err = Console(stderr=True)


def error(message: str) -> None:
    """Print `error: <message>` on stderr (the message is never read as rich markup)."""
    err.print("[bold red]error:[/] ", end="")
    err.print(message, markup=False, highlight=False, soft_wrap=True)


def fail(message: str) -> typer.Exit:
    """`raise fail(...)` from a command: the error line, then exit code 2 (no traceback)."""
    error(message)
    return typer.Exit(code=2)
