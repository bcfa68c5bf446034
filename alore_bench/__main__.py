"""`python -m alore_bench ...`: the command line, as `alore-bench ...`."""

from .cli import main

if __name__ == "__main__":
    main()
