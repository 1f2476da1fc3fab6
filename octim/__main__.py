"""``python -m octim`` runs the ``octim`` command."""

import sys

from octim.cli import main

sys.exit(main())
