"""The ``struc2map`` command line: generate, molmap, compare, and the training steps."""
from __future__ import annotations

import argparse
import sys

from .errors import Struc2mapError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="struc2map", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    from .training.cli import add_subcommands

    add_subcommands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except Struc2mapError as e:
        print(f"struc2map: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("struc2map: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
