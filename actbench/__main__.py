"""`python -m actbench` runs the command line."""

from actbench.cli import main

main()
