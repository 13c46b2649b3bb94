"""`python -m nngraph` runs the command line."""

from nngraph.cli import main

main()
