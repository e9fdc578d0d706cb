"""Allow ``python -m ccci``."""

from ccci.cli.main import main

main()
