"""Time the scan backends against the reference: `python benchmarks/scan.py --help`."""

import argparse
import sys

from hybrid_seq.bench import scan

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=scan.__doc__)
    scan.add_arguments(parser)
    sys.exit(scan.main(parser.parse_args()))
