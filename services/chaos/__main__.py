"""`python -m services.chaos --images N --seed S --duration S --out DIR`: see services.chaos.cli."""
import sys

from services.chaos.cli import main

sys.exit(main())
