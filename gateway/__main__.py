"""`python -m gateway` runs `ai-gateway serve`."""

import sys

from gateway.runtime.cli import main

sys.exit(main())
