"""`python -m gateway` runs `ai-gateway serve`."""

import sys

from gateway.cli import main

sys.exit(main())
