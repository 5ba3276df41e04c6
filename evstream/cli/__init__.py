"""The ``evstream`` command line.

Each sub-command lives in its own module ``evstream/cli/<name>.py`` exposing

    HELP: str                              one-line description
    add_arguments(parser) -> None          argparse set-up
    run(args) -> int                       the work; returns the exit status

Sub-command modules are imported lazily, so ``evstream info`` never pays for torch or Qt.
Any :class:`~evstream.errors.EvstreamError` becomes one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# name -> module under evstream.cli (kept in pipeline order: data in, model, live, out)
COMMANDS = {
    "info": "info",
    "convert": "convert",
    "serve": "serve",
    "emulate": "emulate",
    "synth": "synth",
    "train": "train",
    "pretrain": "pretrain",
    "calibrate": "calibrate",
    "eval": "evaluate",
    "eval-stream": "eval_stream",
    "run": "run",
    "gui": "gui",
    "export": "export",
}


def _load(name: str):
    return importlib.import_module(f"evstream.cli.{COMMANDS[name]}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="evstream", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            mod = _load(name)
        except ModuleNotFoundError as exc:  # command not built yet in this checkout
            if exc.name and exc.name.startswith("evstream.cli."):
                continue
            raise
        p = sub.add_parser(name, help=mod.HELP.replace("%", "%%"), description=mod.HELP)  # help is %-formatted
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    from evstream.errors import EvstreamError
    from evstream.fileio import Terminated

    import logging

    # torch warns "Triton not available" when SpikingJelly's LIF first runs on a CPU-only install: not news
    logging.getLogger("torch._library.triton").setLevel(logging.ERROR)
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except EvstreamError as exc:
        print(f"evstream {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"evstream {args.command}: interrupted", file=sys.stderr)
        return 130
    except Terminated as exc:
        print(f"evstream {args.command}: terminated", file=sys.stderr)
        return int(exc.code)
    except BrokenPipeError:
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
