"""`python -m harness.cli`: the `nova-harness` command."""

import sys

from harness.cli.main import main

sys.exit(main())
