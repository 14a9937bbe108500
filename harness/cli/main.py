"""`nova-harness`: the command line. The only place that exits the process; everything
below raises from records.errors / harness.errors / stack.errors."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from harness.cli.commands import (
    EXIT_FAILED,
    EXIT_INPUT,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_UNREACHABLE,
    Command,
    cmd_run,
    cmd_soak,
    cmd_worker,
)
from harness.cli.parser import build_parser
from harness.errors import TargetUnreachable
from records.errors import HarnessError, InputError
from stack.errors import ConfigError, StackError, StackNotRunning, StackStartError


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    func: Command = args.func
    if func in (cmd_run, cmd_soak, cmd_worker):
        from harness.runtime.allocator import choose_arrow_pool

        choose_arrow_pool()  # before anything imports pyarrow (harness/runtime/allocator.py)
    try:
        return func(args)
    except KeyboardInterrupt:
        print("nova-harness: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`nova-harness status … | head`): no traceback for that, and
        # Python's exit flush must not meet the closed pipe again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except InputError as exc:
        for problem in exc.problems:
            print(f"nova-harness: error: {problem}", file=sys.stderr)
        if exc.hint:
            print(f"nova-harness: hint: {exc.hint}", file=sys.stderr)
        return EXIT_INPUT
    except (ConfigError, ValueError) as exc:
        print(f"nova-harness: error: {exc}", file=sys.stderr)
        return EXIT_INPUT
    except (StackStartError, StackNotRunning, TargetUnreachable) as exc:
        print(f"nova-harness: {exc}", file=sys.stderr)
        hint = exc.hint if isinstance(exc, TargetUnreachable) else None
        if hint:
            print(f"nova-harness: hint: {hint}", file=sys.stderr)
        return EXIT_UNREACHABLE
    except (HarnessError, StackError) as exc:
        print(f"nova-harness: {exc}", file=sys.stderr)
        return getattr(exc, "exit_code", EXIT_FAILED)


if __name__ == "__main__":
    sys.exit(main())
