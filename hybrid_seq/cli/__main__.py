"""`python -m hybrid_seq.cli` runs the `hybrid-seq` command."""

import sys

from hybrid_seq.cli import main

sys.exit(main())
