"""``lstmkit`` on the command line: ``train``, ``gradflow``, ``explain``, ``sweep`` and ``demo`` (the memory lab),
``explore`` (the gate explorer), ``bench``, and ``info`` and ``build`` (the fused engine).

Each subcommand is one function that adds its parser and names the function that runs it (the lab's in
:mod:`lstmkit.cli.lab_commands`); a new subcommand is a new function in ``SUBCOMMANDS``. Building the parser
imports neither the lab nor the benchmark.

Mistakes in the command line (unknown task, model or option, impossible values, an output path that cannot be
written, a run too large for this machine's memory) and files that cannot be read or written (a corrupt
checkpoint, a full or read-only disk) print one line and exit with status 2; a run that diverges prints one line
and exits with status 1. Ctrl-C exits with 130, SIGTERM with 143 and SIGHUP with 129, keeping the last checkpoint
(:mod:`lstmkit.cli.signals`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from .engine_commands import ENGINE_SUBCOMMANDS
from .explore_command import explore_parser
from .lab_commands import LAB_SUBCOMMANDS
from .signals import Terminated, signals_raise
from .types import MODEL_NAMES, TASK_NAMES
from .usage import Parser, UsageError


def _bench_parser(sub) -> Callable:
    from .. import bench

    p = sub.add_parser("bench", help="lstmkit against torch.nn.LSTM and a naive Python cell: ms and ratios",
                       description=bench.__doc__.split("\n\n")[0])
    bench.add_arguments(p)
    return bench.run


SUBCOMMANDS: list[Callable] = [*LAB_SUBCOMMANDS, explore_parser, _bench_parser, *ENGINE_SUBCOMMANDS]


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, Callable]]:
    """The parser and, per subcommand name, the function that runs it."""
    parser = Parser(prog="lstmkit", description="lstmkit's memory lab (LSTM vs GRU vs RNN, measured) and "
                                                "its benchmark against torch.nn.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=Parser)
    runners = {}
    for register in SUBCOMMANDS:
        runner = register(sub)
        runners[list(sub.choices)[-1]] = runner  # the name the registrar just added
    return parser, runners


def main(argv: list[str] | None = None) -> int:
    parser, runners = build_parser()
    try:
        with signals_raise():
            args = parser.parse_args(argv)
            return runners[args.command](args)
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except ValueError as err:  # lstmkit's and the lab's checks (CheckpointError too) name the argument
        print(f"lstmkit {_command(argv)}: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # a full or read-only disk, a path that became a file: the error names the path
        print(f"lstmkit {_command(argv)}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Terminated as stop:
        kept = "; the last checkpoint is kept, --resume continues from it" if _command(argv) == "train" else ""
        print(f"lstmkit {_command(argv)}: stopped by {stop}{kept}", file=sys.stderr)
        return stop.exit_status
    except RuntimeError as err:
        from ..errors import InputTypeError
        from ..lab.trainer import TrainingDiverged

        if isinstance(err, TrainingDiverged):
            print(f"lstmkit {_command(argv)}: {err}", file=sys.stderr)
            return 1
        if isinstance(err, InputTypeError):
            print(f"lstmkit {_command(argv)}: error: {err}", file=sys.stderr)
            return 2
        raise


def _command(argv) -> str:
    argv = sys.argv[1:] if argv is None else argv
    return next((a for a in argv if not a.startswith("-")), "")


__all__ = ["MODEL_NAMES", "SUBCOMMANDS", "TASK_NAMES", "UsageError", "build_parser", "main"]
