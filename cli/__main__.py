"""`python -m cli` is `extctl`."""

from cli.main import main

main()
