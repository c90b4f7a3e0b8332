"""Training-throughput benchmark (ours vs the reference Flax Griffin); same as `hybrid-seq bench train`."""

import argparse
import sys

from hybrid_seq.bench import train

if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="benchmarks/train.py")
    train.register(parser.add_subparsers(dest="target", required=True))
    args = parser.parse_args(["train", *sys.argv[1:]])
    sys.exit(args.func(args))
