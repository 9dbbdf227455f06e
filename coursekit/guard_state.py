"""The state of IPython a student's code could change to make a failing test cell look as if it passed: noted when
the grading kernel starts, put back (and named) before and after each test cell (`Guard`).

Runs INSIDE the grading kernel: sent as source by `coursekit.kernel_guard` and compiled under its GUARD_FILE (see
that module); `guard_hook.install` makes the one `Guard` and calls it from the grader's audit hook. So it imports
only modules the kernel has already loaded, never coursekit.
"""
import builtins
import gc
import json
import sys
import threading

# IPython's methods that run a cell, turn it into code, and show its errors; ipykernel's, that answer the grader.
SHELL_METHODS = ("run_cell", "run_cell_async", "_run_cell", "run_ast_nodes", "run_code", "transform_cell",
                 "transform_ast", "showtraceback", "_showtraceback", "showsyntaxerror", "should_run_async",
                 "set_custom_exc", "get_exception_only")
KERNEL_METHODS = ("do_execute", "execute_request", "send_response")
# Hooks of the sys module that decide how errors and results are shown or how code is traced.
SYS_HOOKS = ("excepthook", "displayhook", "breakpointhook", "stdout", "stderr")
# Output of this module's own check, and names IPython itself rebinds in builtins.
# input: ipykernel rebinds it for every request (to forward it to the front end, or to refuse it).
IGNORED_BUILTINS = {"_", "__", "___", "input"}
MISSING = object()


class Guard:
    def __init__(self, shell):
        self.shell = shell
        self.reached: set[str] = set()
        self.pristine = self._state()

    def _state(self) -> dict:
        """Everything a student's code could change to make a failing test cell look as if it passed."""
        shell = self.shell
        kernel = getattr(shell, "kernel", None)
        transformers = shell.input_transformer_manager
        state = {
            "shell class": type(shell),
            "custom exception handler (set_custom_exc)": (shell.custom_exceptions, shell.CustomTB),
            "input transformer manager": transformers,
            "input transformers": [list(shell.input_transformers_cleanup), list(shell.input_transformers_post),
                                   list(transformers.line_transforms), list(transformers.token_transformers)],
            "AST transformers": list(shell.ast_transformers),
            "event callbacks": {event: list(callbacks) for event, callbacks in shell.events.callbacks.items()},
            "trace function (sys.settrace)": sys.gettrace(),
            "profile function (sys.setprofile)": sys.getprofile(),
            "thread trace hooks (threading.settrace)": (getattr(threading, "_trace_hook", None),
                                                         getattr(threading, "_profile_hook", None)),
            "builtins": dict(vars(builtins)),
            "__builtins__ of the notebook": shell.user_ns.get("__builtins__"),
            "compiler": shell.compile,
        }
        for name in SYS_HOOKS:
            state[f"sys.{name}"] = getattr(sys, name)
        for name in SHELL_METHODS:
            state[f"IPython's {name}"] = _method_state(shell, name)
        if kernel is not None:
            state["kernel class"] = type(kernel)
            state["kernel's session.send"] = _method_state(kernel.session, "send")
            for name in KERNEL_METHODS:
                state[f"the kernel's {name}"] = _method_state(kernel, name)
        return state

    def reach(self, marker: str) -> None:
        """The last line of a test cell calls this: the cell ran to its end."""
        self.reached.add(marker)

    def check(self, nonce: str, names: tuple = (), marker: str | None = None, collect: bool = False) -> dict:
        """Put back every hook found changed; print one JSON line: what was found, and whether `marker` was reached.

        (In a grading kernel the audit hook of `install` runs `findings` and signs its report instead.)
        """
        found = self.findings(names, collect)
        answer = {"guard": nonce, "found": found, "reached": marker in self.reached if marker else None}
        print(json.dumps(answer))
        return answer

    def findings(self, names: tuple = (), collect: bool = False) -> list[str]:
        """Put back every hook found changed; what was put back.

        names: the built-in names the next test cell uses; a notebook variable that hides one is removed.
        collect: a cell failed since the last check: free what it left (see collect_garbage).
        """
        if collect:
            self.collect_garbage()
        found = self.restore()
        ns = self.shell.user_ns
        for name in names:
            if name in ns and name in self.pristine["builtins"] and ns[name] is not self.pristine["builtins"][name] \
                    and callable(ns[name]):
                del ns[name]
                found.append(f"the built-in {name}() the tests use, redefined")
        return found

    def collect_garbage(self) -> None:
        """Free now what failed cells left: their tracebacks hold objects in reference cycles, which Python frees
        whenever its garbage collector happens to run next. A coroutine a wrong answer never awaited then prints
        "RuntimeWarning: coroutine ... was never awaited" (or "Exception ignored in: <coroutine ...>") into whatever
        cell runs at that moment, often a later exercise's test cell, and a test cell that prints to stderr scores
        0. Here it prints into this check's output, which the grader does not keep."""
        for name in ("last_type", "last_value", "last_traceback", "last_exc"):  # the last error, kept for %debug
            if hasattr(sys, name):
                delattr(sys, name)
        self.shell.last_execution_result = None
        if hasattr(getattr(self.shell, "InteractiveTB", None), "tb"):
            self.shell.InteractiveTB.tb = None
        gc.collect()

    def restore(self) -> list[str]:
        """Put back what differs from the state noted at start; the names of what was put back."""
        shell, pristine, found = self.shell, self.pristine, []
        now = self._state()
        if now["shell class"] is not pristine["shell class"]:
            shell.__class__ = pristine["shell class"]
            found.append("IPython's shell class")
        for name in SHELL_METHODS:
            if now[f"IPython's {name}"] != pristine[f"IPython's {name}"]:
                _restore_method(shell, pristine["shell class"], name, pristine[f"IPython's {name}"])
                found.append(f"IPython's {name}()")
        found += self._restore_kernel(now)
        if now["custom exception handler (set_custom_exc)"] != pristine["custom exception handler (set_custom_exc)"]:
            shell.custom_exceptions, shell.CustomTB = pristine["custom exception handler (set_custom_exc)"]
            found.append("a custom exception handler (set_custom_exc)")
        if now["input transformer manager"] is not pristine["input transformer manager"] or \
                now["input transformers"] != pristine["input transformers"]:
            shell.input_transformer_manager = manager = pristine["input transformer manager"]
            cleanup, post, line, token = pristine["input transformers"]
            manager.cleanup_transforms[:], shell.input_transformers_post[:] = cleanup, post
            manager.line_transforms[:], manager.token_transformers[:] = line, token
            found.append("input transformers")
        if now["AST transformers"] != pristine["AST transformers"]:
            shell.ast_transformers[:] = pristine["AST transformers"]
            found.append("AST transformers")
        found += self._restore_events()
        if now["trace function (sys.settrace)"] is not None:
            sys.settrace(None)
            found.append("a trace function (sys.settrace)")
        if now["profile function (sys.setprofile)"] is not None:
            sys.setprofile(None)
            found.append("a profile function (sys.setprofile)")
        if now["thread trace hooks (threading.settrace)"] != (None, None):
            threading.settrace(None)
            threading.setprofile(None)
            found.append("a thread trace function (threading.settrace)")
        for name in SYS_HOOKS:
            if now[f"sys.{name}"] != pristine[f"sys.{name}"]:  # == : a bound method is a new object each time
                setattr(sys, name, pristine[f"sys.{name}"])
                found.append(f"sys.{name}")
        changed = [name for name, value in pristine["builtins"].items()
                   if name not in IGNORED_BUILTINS and vars(builtins).get(name, self) is not value]
        for name in changed:
            setattr(builtins, name, pristine["builtins"][name])
        found += [f"the built-in {name}" for name in changed]
        if shell.user_ns.get("__builtins__") is not pristine["__builtins__ of the notebook"]:
            shell.user_ns["__builtins__"] = pristine["__builtins__ of the notebook"]
            found.append("the notebook's __builtins__")
        if now["compiler"] is not pristine["compiler"]:
            shell.compile = pristine["compiler"]
            found.append("IPython's compiler")
        return found

    def _restore_kernel(self, now: dict) -> list[str]:
        if "kernel class" not in self.pristine:
            return []
        kernel, pristine, found = self.shell.kernel, self.pristine, []
        if type(kernel) is not pristine["kernel class"]:
            kernel.__class__ = pristine["kernel class"]
            found.append("the kernel's class")
        if now["kernel's session.send"] != pristine["kernel's session.send"]:
            _restore_method(kernel.session, type(kernel.session), "send", pristine["kernel's session.send"])
            found.append("the kernel's session.send()")
        for name in KERNEL_METHODS:
            if now[f"the kernel's {name}"] != pristine[f"the kernel's {name}"]:
                _restore_method(kernel, pristine["kernel class"], name, pristine[f"the kernel's {name}"])
                found.append(f"the kernel's {name}()")
        return found

    def _restore_events(self) -> list[str]:
        """Callbacks added to IPython's events are removed; those of matplotlib's inline backend are no tampering."""
        callbacks, pristine, added = self.shell.events.callbacks, self.pristine["event callbacks"], []
        for event, registered in callbacks.items():
            kept = pristine.get(event, [])
            for callback in registered:
                if callback not in kept and not _from_matplotlib(callback):
                    added.append(event)
            registered[:] = [c for c in registered if c in kept or _from_matplotlib(c)]
        return [f"an event callback ({', '.join(dict.fromkeys(added))})"] if added else []


def _method_state(owner, name: str) -> tuple:
    """How `owner.name` resolves: the class's function, an attribute set on the instance, the code that runs."""
    resolved = getattr(owner, name, None)
    code = getattr(getattr(resolved, "__func__", resolved), "__code__", None)
    return getattr(type(owner), name, None), vars(owner).get(name, MISSING), code


def _restore_method(owner, owner_class, name: str, pristine: tuple) -> None:
    function, on_instance, code = pristine
    setattr(owner_class, name, function)
    if on_instance is MISSING:
        vars(owner).pop(name, None)
    else:
        setattr(owner, name, on_instance)
    resolved = getattr(owner, name, None)
    target = getattr(resolved, "__func__", resolved)
    if code is not None and getattr(target, "__code__", None) is not code:
        target.__code__ = code


def _from_matplotlib(callback) -> bool:
    """A callback matplotlib registers when a notebook plots (matplotlib_inline's flush, pyplot's redraw): no
    tampering. Told by where its code is, not by its __module__ (which anyone can set); code compiled under a
    library's file name is refused by the grader's hook."""
    code = getattr(getattr(callback, "__func__", callback), "__code__", None)
    filename = getattr(code, "co_filename", "")
    return isinstance(filename, str) and ("/matplotlib_inline/" in filename or "/matplotlib/" in filename)
