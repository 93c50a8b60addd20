import sys

from roost.cli.main import main

sys.exit(main())
