"""Allow ``python -m ccci``: the same command as the console script."""

from ccci.cli.console import console

console()
