"""`python -m roost`: runs the `roost` command."""

import sys

from roost.cli.main import main

sys.exit(main())
