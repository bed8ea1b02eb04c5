"""``python -m devenv demo|ui``."""

import sys

from devenv.cli import main

sys.exit(main())
