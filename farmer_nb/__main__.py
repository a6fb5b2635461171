"""`python -m farmer_nb CMD ...` is the `farmer` command (`farmer_nb.cli.main`); written by hand,
not by nbdev."""
from farmer_nb.cli import main

if __name__ == '__main__':
    main()
