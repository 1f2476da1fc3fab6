import sys

from octim.bench.cli import main

sys.exit(main())
