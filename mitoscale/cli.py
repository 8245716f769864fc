"""The ``mitoscale`` command: one tool, one subcommand per task.

Each stage's thin command-line layer lives in ``mitoscale/<stage>/cli.py`` and
exposes ``register(subparsers)``; heavy imports (torch, dask) happen inside
the handlers so ``mitoscale --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from mitoscale import __version__
from mitoscale.errors import MitoscaleError

#: modules whose ``register(subparsers)`` adds subcommands, in help order
STAGE_CLIS = [
    "mitoscale.pipeline.cli",    # run, status
    "mitoscale.simulate.cli",    # simulate
    "mitoscale.train.cli",       # train
    "mitoscale.segment.cli",     # segment
    "mitoscale.evaluate.cli",    # evaluate, baseline
    "mitoscale.analyse.cli",     # analyze
    "mitoscale.track.cli",       # track
]


#: the module of each subcommand: a command line naming one imports only that module
#: (``mitoscale status`` must answer fast; some stages import heavy libraries at import time)
COMMAND_MODULES = {"run": "mitoscale.pipeline.cli", "status": "mitoscale.pipeline.cli",
                   "simulate": "mitoscale.simulate.cli", "train": "mitoscale.train.cli",
                   "segment": "mitoscale.segment.cli", "evaluate": "mitoscale.evaluate.cli",
                   "baseline": "mitoscale.evaluate.cli", "analyze": "mitoscale.analyse.cli",
                   "track": "mitoscale.track.cli"}


def _command_of(argv: list[str]) -> str | None:
    first = next((a for a in argv if not a.startswith("-")), None)
    return first if first in COMMAND_MODULES and "--help" not in argv[:argv.index(first)] else None


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mitoscale",
        description="Find every mitochondrion in fluorescence images and measure morphology, "
                    "from a laptop to an HPC cluster.",
    )
    parser.add_argument("--version", action="version", version=f"mitoscale {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging and tracebacks")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for modname in ([COMMAND_MODULES[command]] if command in COMMAND_MODULES else STAGE_CLIS):
        try:
            mod = importlib.import_module(modname)
        except ModuleNotFoundError as exc:
            if exc.name == modname:  # stage not built yet
                continue
            raise
        mod.register(sub)
    return parser


def _quiet_libraries(record: logging.LogRecord) -> bool:
    """Pass mitoscale's records and everyone's warnings and errors."""
    return record.levelno >= logging.WARNING or record.name.split(".")[0] == "mitoscale"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser(_command_of(sys.argv[1:] if argv is None else list(argv)))
    args = parser.parse_args(argv)
    # our own progress at INFO; other libraries' INFO chatter (Dask's scheduler and nannies)
    # only with --verbose.  A handler filter, because distributed sets its loggers' levels itself.
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:
        for handler in logging.getLogger().handlers:
            handler.addFilter(_quiet_libraries)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from mitoscale.cluster.signals import install, restore

    previous = install()  # SIGINT/SIGTERM -> one line, exit 130/143, the run recorded as interrupted
    try:
        rc = args.func(args)
    except MitoscaleError as exc:
        if args.verbose:
            raise
        print(f"mitoscale {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt as exc:
        code = getattr(exc, "exit_code", 130)
        what = {130: "interrupted (SIGINT)", 143: "stopped by SIGTERM"}.get(code, "interrupted")
        print(f"mitoscale {args.command}: {what}; rerun the same command to resume",
              file=sys.stderr, flush=True)
        return code
    finally:
        restore(previous)
    return int(rc or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
