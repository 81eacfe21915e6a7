"""`python -m tierscan.scanner` is the `tierscan` command."""

from tierscan.scanner.cli import main

main()
