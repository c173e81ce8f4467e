"""`python -m tailpipe_ai` runs the command line."""

from tailpipe_ai.cli import main

main()
