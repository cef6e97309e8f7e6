"""The one wrapper of every command line's `main`: flags, logging and exit statuses.

  @cli.command
  def main(argv): ...

  def run():                  # the console script (setup.py) and `python -m`
    cli.run(main, required=("config",))

`run` parses the flags with absl (`--help`; an `app.UsageError` prints the usage, status
1) and calls `main`. `command` sets absl logging to WARNING (Orbax logs every save at
INFO; an explicit --verbosity wins) and turns what `main` raises into the status a shell
or a scheduler reads:
  ValueError (the project's `ConfigError` and `InputError` among them: a bad config,
  flag, prompt or input), FileNotFoundError, FileExistsError: an error the user caused
      -> "error: <message>" on stderr, status 2; the traceback is logged at INFO
         (--verbosity=0 shows it)
  preemption.Preempted (SIGTERM reached a trainer, which wrote its checkpoint)
      -> the message on stdout, status 143 (`preemption.PREEMPTED_EXIT_CODE`); the same
         command resumes
  return -> status 0 (`main` may `sys.exit(n)` for another status, e.g. tpu.aot's 3).
SIGTERM outside a trainer keeps its default action: the process ends by the signal,
which a shell also reports as status 143.

This module imports no JAX (`preemption` imports it when a trainer polls), so `--help`
stays fast.
"""

import functools
import sys
from typing import Any, Callable, NoReturn, Sequence

from absl import app
from absl import flags
from absl import logging

from synergen_jax import preemption

USER_ERROR_EXIT_CODE = 2
USER_ERRORS = (ValueError, FileNotFoundError, FileExistsError)

Main = Callable[[list[str]], Any]


def command(main: Main) -> Main:
  """`main` with the logging and the exit statuses of the module doc (a decorator)."""

  @functools.wraps(main)
  def wrapped(argv):
    if not flags.FLAGS["verbosity"].present:
      logging.set_verbosity(logging.WARNING)
    try:
      return main(argv)
    except preemption.Preempted as e:
      print(str(e), flush=True)
      sys.exit(preemption.PREEMPTED_EXIT_CODE)
    except USER_ERRORS as e:
      logging.info("%s", type(e).__name__, exc_info=True)
      print(f"error: {e}", file=sys.stderr, flush=True)
      sys.exit(USER_ERROR_EXIT_CODE)

  return wrapped


def run(main: Main, required: Sequence[str] = ()) -> NoReturn:
  """Parses the flags (`required` must be given) and runs `main` (a `command`)."""
  if required:
    flags.mark_flags_as_required(list(required))
  app.run(main)
