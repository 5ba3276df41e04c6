import sys

from evstream.cli import main

sys.exit(main())
