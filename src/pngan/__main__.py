import sys

from pngan.cli import main

sys.exit(main())
