"""`python -m scanner` is the `tierscan` command."""

from .cli import main

main()
