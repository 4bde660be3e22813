"""``python -m adain_core.worker``: run the engine worker (normally started by a client, not by hand)."""

import sys

from .server import main

sys.exit(main())
