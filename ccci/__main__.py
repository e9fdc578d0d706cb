"""Allow ``python -m ccci``."""

from ccci.cli import main

main()
