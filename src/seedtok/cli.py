"""The ``seedtok`` command. Each subcommand is an importable function taking plain arguments;
this module only parses arguments, configures logging and maps errors to exit codes."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Callable, Sequence

log = logging.getLogger("seedtok")

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2


def _subcommand_adders() -> list[Callable[[argparse._SubParsersAction], None]]:
    """Each entry adds one or more subcommands. Imports stay local so ``seedtok --help``
    and light commands do not import heavy optional dependencies."""
    from seedtok.commands import ablate, core, data, decode, llm, model, scale, train, web

    adders = [core.add_parsers, data.add_parsers, train.add_parsers, scale.add_parsers,
              decode.add_parsers, llm.add_parsers, web.add_parsers, ablate.add_parsers, model.add_parsers]
    return adders


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="seedtok", description="SEED image tokenizer toolkit")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only, no progress bars")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for add in _subcommand_adders():
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        return int(args.func(args) or EXIT_OK)
    except KeyboardInterrupt:
        print("seedtok: interrupted", file=sys.stderr)
        return 130
    except RuntimeError as exc:
        code = getattr(exc, "exit_code", None)
        if code is None:
            if args.verbose:
                raise
            print(f"seedtok {args.command}: error: {exc}", file=sys.stderr)
            return EXIT_ERROR
        print(f"seedtok {args.command}: {exc}", file=sys.stderr)
        return code
    except (ValueError, OSError, RuntimeError, KeyError) as exc:
        if args.verbose:
            raise
        print(f"seedtok {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
