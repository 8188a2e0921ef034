"""`python -m services.generator ...`: see `--help`."""
import sys

from services.generator.cli import main

if __name__ == "__main__":
    sys.exit(main())
