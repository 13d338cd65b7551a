"""`python -m infra render [-o FILE]` and `python -m infra package OUT_DIR [--no-deps]`."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m infra",
        description="Render the CloudFormation template; build the artifacts.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    render = commands.add_parser("render", help="print the CloudFormation template (JSON)")
    render.add_argument("-o", "--output", type=Path, help="write to FILE instead of stdout")
    package = commands.add_parser("package", help="build layer.zip and <app>.zip")
    package.add_argument("out_dir", type=Path, metavar="OUT_DIR")
    package.add_argument(
        "--no-deps", action="store_true", help="leave the runtime dependencies out of the layer"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit status."""
    args = _parser().parse_args(argv)
    if args.command == "render":
        from infra.cloudformation import render

        text = json.dumps(render(), sort_keys=True, indent=2) + "\n"
        if args.output is None:
            sys.stdout.write(text)
        else:
            args.output.write_text(text)
    else:
        from infra.package import build

        for path in build(args.out_dir, install_deps=not args.no_deps):
            sys.stdout.write(f"{path}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
