"""The kernel-side output cap: a cell stops, with an error, in its own print() once it printed too much.

Runs INSIDE the grading kernel: sent as source by `coursekit.kernel_guard`; `guard_hook.install` calls `cap_output`
before the guard notes the builtins. So it imports only modules the kernel has already loaded, never coursekit.
"""
import builtins
import sys


OUTPUT_LIMIT_ERROR = "OutputLimitExceeded"


def cap_output(shell, limit: int) -> None:
    """Stop a cell, with an error, once its print() calls have written `limit` characters.

    The grader also cuts what it receives (GuardedExecute.max_output_bytes), but ipykernel buffers a cell's output
    in the kernel and sends it every 0.2 s: `while True: print("x" * 1_000_000)` filled gigabytes there before the
    grader's interrupt arrived, and on a busy machine the kernel ran out of memory or stopped answering (a timeout
    instead of "too much output"). Counted here, the cell stops at once, in its own print(). print() is wrapped, not
    the stream's write(), which ipykernel's stream does not let an instance attribute replace; other writers are still
    cut by the grader. Installed before the guard notes the builtins, so the guard keeps it in place; a notebook that
    removes it only makes its own grading slower."""
    if limit is None or limit < 0:
        return
    used = [0]
    original_print, stdout, stderr = builtins.print, sys.stdout, sys.stderr

    class OutputLimitExceeded(Exception):
        pass

    def reset(*args):  # a new request: a cell, or the grader's probe
        used[0] = 0

    def print(*values, sep=" ", end="\n", file=None, flush=False):  # noqa: A001 (the builtin it stands for)
        if file is None or file is stdout or file is stderr:
            texts = [str(value) for value in values]
            used[0] += sum(len(text) for text in texts) + len(end or "") + len(sep or "") * max(0, len(texts) - 1)
            if used[0] > limit:
                raise OutputLimitExceeded(f"[grader] this cell printed more than {limit:,} characters; it was stopped "
                                          "here. Print less (a summary, the first rows) and run it again.")
            values = texts
        return original_print(*values, sep=sep, end=end, file=file, flush=flush)

    print.__doc__ = original_print.__doc__
    shell.events.register("pre_execute", reset)
    builtins.print = print
