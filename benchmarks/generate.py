"""Generation benchmark (ours vs the reference Sampler); same as `hybrid-seq bench generate`."""

import argparse
import sys

from hybrid_seq.bench import generate

if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="benchmarks/generate.py")
    generate.register(parser.add_subparsers(dest="target", required=True))
    args = parser.parse_args(["generate", *sys.argv[1:]])
    sys.exit(args.func(args))
