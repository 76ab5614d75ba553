"""`python -m gossamer.local.supervisor`: the entry point `gossamer up` starts."""

import sys

from gossamer.local.supervisor.main import main

if __name__ == "__main__":
    sys.exit(main())
