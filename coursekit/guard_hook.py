"""The grader's audit hook (PEP 578) INSIDE a grading kernel: `install` adds it before any student code runs.

Everything it relies on lives in `install`'s closure, which no object of the interpreter references: its vetoes
(what reading or rewiring the grader needs), its answer to the probes (`coursekit.check`: the guard's findings in a
report signed with HMAC), the test cell's marker (`coursekit.reach`), and the blanking of a running test cell's
hidden lines. These share the closure's state (the test cell being run, the course's trusted cells, the vetoes so
far), so they stay one function: split into modules, that state would need an object other code could reach.
See `coursekit.kernel_guard` for the whole picture and how this code reaches the kernel.

Runs INSIDE the grading kernel, compiled under GUARD_FILE: it imports only modules the kernel has already loaded,
never coursekit.
"""
import _hashlib
import _thread
import gc
import linecache
import os
import sys

GUARD_FILE = "coursekit-guard"  # the file name the guard's code (all its modules) runs under in the kernel
CHECK_EVENT, REACH_EVENT = "coursekit.check", "coursekit.reach"
# Vetoed whoever asks (the guard's own code excepted): nothing a notebook needs, everything a forger does.
ALWAYS_VETOED = frozenset({
    "sys.addaudithook", "sys._current_frames", "sys.settrace", "sys.setprofile",
    "ctypes.dlopen", "ctypes.dlsym", "ctypes.dlsym/handle", "ctypes.addressof", "ctypes.call_function",
    "ctypes.cdata", "ctypes.cdata/buffer", "ctypes.create_string_buffer", "ctypes.create_unicode_buffer",
    "ctypes.get_errno", "ctypes.set_errno", "ctypes.string_at", "ctypes.wstring_at", "ctypes.PyObj_FromPtr",
    "ctypes.get_last_error", "ctypes.set_last_error", "ctypes.seh_exception",
})
# Vetoed when student code asks (directly, or through a helper that hands frames back): libraries (typing, enum,
# pydantic, SQLAlchemy's warnings, logging) read their caller's frame themselves, and must keep working.
FRAME_ATTRIBUTES = frozenset({"tb_frame", "gi_frame", "cr_frame", "ag_frame"})
# Code objects of a test cell (their constants hold a hidden test's strings; a hidden test hands its functions to
# student code): read by student code, refused.
CODE_ATTRIBUTES = frozenset({"__code__", "gi_code", "cr_code", "ag_code"})
FROM_STUDENT_VETOED = frozenset({"gc.get_objects", "gc.get_referrers", "gc.get_referents", "marshal.loads"})
# New processes, when student code asks, directly or through the modules that start them: matplotlib's font
# manager runs `fc-list` the first time it is imported in a fresh sandbox (an honest plot was refused as tampering).
PROCESS_EVENTS = frozenset({"subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork",
                            "os.forkpty", "pty.spawn"})
PROCESS_HELPERS = ("/subprocess.py", "/os.py", "/pty.py", "/multiprocessing/", "/concurrent/", "/asyncio/",
                   "/IPython/utils/", "/IPython/core/interactiveshell.py", "/IPython/core/magics/")
EVENTS = ALWAYS_VETOED | FROM_STUDENT_VETOED | PROCESS_EVENTS | {"sys._getframe", "object.__getattr__", "object.__setattr__", "open",
                          "compile", "code.__new__", "exec", "os.symlink", CHECK_EVENT, REACH_EVENT}
# Code of the environment that hands frames (or what they hold) back to its caller: the frame walk goes through it
# to the code that called it.
HELPER_FILES = ("/inspect.py", "/traceback.py", "/cgitb.py", "/pdb.py", "/bdb.py", "/linecache.py", "/codeop.py",
                "/dis.py",
                "/IPython/core/compilerop.py", "/IPython/core/ultratb.py", "/IPython/core/tbtools.py",
                "/IPython/utils/frame.py", "/pydantic/_internal/_typing_extra.py")
HELPER_FOLDERS = ("/asyncio/", "/stack_data/", "/executing/", "/pure_eval/", "/_pytest/", "/rich/")
HELPER_FUNCTIONS = (("/logging/__init__.py", "<lambda>"),)  # logging.currentframe



def install(shell, key_hex: str, settings: dict, guard_class, cap_output) -> None:
    """Add the grader's audit hook (see the module's docstring). Runs once, first, in a fresh kernel.

    settings: "begin"/"end" (nbgrader's hidden-test delimiters), "roots" (folders of the read-only environment
    besides Python's own), "max_output" (characters a cell may print: cap_output).
    guard_class, cap_output: guard_state.Guard and guard_output.cap_output, handed over by the request that runs
    this (kernel_guard.install_request): the kernel does not import coursekit.
    """
    cap_output(shell, settings.get("max_output"))
    # Everything the hook uses is bound here, in its closure: a student can reach this module's globals (through any
    # of its functions' __globals__) and rebind builtins, not these.
    events, from_student_vetoed = EVENTS, FROM_STUDENT_VETOED
    frame_attributes, code_attributes = FRAME_ATTRIBUTES, CODE_ATTRIBUTES
    process_events, process_helpers = PROCESS_EVENTS, PROCESS_HELPERS
    helper_files, helper_folders, helper_functions = HELPER_FILES, HELPER_FOLDERS, HELPER_FUNCTIONS
    guard_file, check_event, reach_event = GUARD_FILE, CHECK_EVENT, REACH_EVENT
    _sys, _linecache, _RuntimeError, _OSError, _enumerate = sys, linecache, RuntimeError, OSError, enumerate
    guard = guard_class(shell)
    key = bytes.fromhex(key_hex)
    mac = _hashlib.hmac_digest
    getframe, get_ident, audit_hooks = _sys._getframe, _thread.get_ident, _sys.addaudithook
    _repr, _type, _str, _bytes, _len, _tuple, _isinstance, _list = repr, type, str, bytes, len, tuple, isinstance, list
    _open, _exception, _fspath, _int = open, Exception, os.fspath, int
    _all, _any, _zip, _vars, _getattr, _hasattr, _delattr = all, any, zip, vars, getattr, hasattr, delattr
    begin, end = settings["begin"], settings["end"]
    shell_class = type(shell)
    run_code, run_ast_nodes = shell_class.run_code.__code__, shell_class.run_ast_nodes.__code__
    run_cell_async = shell_class.run_cell_async.__code__
    kernel = _getattr(shell, "kernel", None)
    get_parent = kernel.get_parent if kernel is not None else (lambda: {})
    roots = {os.path.realpath(p) for p in (_sys.prefix, _sys.base_prefix, _sys.exec_prefix, _sys.base_exec_prefix)}
    roots |= {p for p in (_sys.prefix, _sys.base_prefix, _sys.exec_prefix, _sys.base_exec_prefix)}
    roots |= set(settings.get("roots", ()))
    env_roots = _tuple(r.rstrip("/") + "/" for r in roots if r and r != "/")
    ast_transformers, compiler = _list(shell.ast_transformers), shell.compile
    transform_ast = shell_class.transform_ast
    # The course's own cells (locked setup and test cells, by MAC of their source) and the file names IPython ran
    # them under: their code is the course's (Section 2's setup walks gc.get_objects), not the student's.
    trusted_sources = frozenset(settings.get("trusted", ()))
    trusted_files = set()
    test_files = set()  # the file names test cells ran under
    busy = set()  # threads inside the hook's own sys._getframe
    reading = set()  # threads inside the hook's own read of a code object
    vetoes: list = []  # (event, what), in order
    reported = [0]  # how many vetoes the last report covered
    hook_code = [None]  # the hook's own code: the frame above it raised the event
    test: dict = {}  # the test cell being run: armed by the check before it, closed by the check after it

    def is_env(filename) -> bool:
        return _type(filename) is _str and (filename.startswith(env_roots) or filename.startswith("<frozen "))

    def is_helper(code) -> bool:
        name = code.co_filename
        if not name.startswith(env_roots):
            return False
        if name.endswith(helper_files) or _any(folder in name for folder in helper_folders):
            return True
        return _any(name.endswith(file) and code.co_name == function for file, function in helper_functions)

    def caller():
        """The frame of the code that raised the event (None inside the hook's own frame lookup)."""
        ident = get_ident()
        if ident in busy:
            return None
        busy.add(ident)
        try:
            frame = getframe(1)
        finally:
            busy.discard(ident)
        while frame is not None and frame.f_code is not hook_code[0]:
            frame = frame.f_back
        return frame.f_back if frame is not None else None

    def from_student(frame, through_helpers: bool) -> bool:
        """Whether the code that asked is a notebook's (not the environment's, not the guard's)."""
        while through_helpers and frame is not None and is_helper(frame.f_code):
            frame = frame.f_back
        if frame is None:
            return False
        name = frame.f_code.co_filename
        return name != guard_file and not is_env(name) and name not in trusted_files

    def process_from_student(frame) -> bool:
        """Whether a new process is the notebook's: through the modules that start processes for their caller."""
        while frame is not None and frame.f_code.co_filename.startswith(env_roots) and \
                _any(helper in frame.f_code.co_filename for helper in process_helpers):
            frame = frame.f_back
        return from_student(frame, True)

    def veto(event: str, what: str = ""):
        vetoes.append((event, what))
        raise _RuntimeError(f"The grader forbids {event}{f' ({what})' if what else ''} while grading: "
                           "a notebook must not inspect or change how Python runs it.")

    def sign(report) -> str:
        text = _repr(report)
        return text + "|" + mac(key, text.encode(), "sha256").hex()

    def blank(raw: str) -> str:
        """The source with the lines between nbgrader's hidden-test delimiters blanked (same number of lines)."""
        lines, inside = raw.split("\n"), False
        for index, line in _enumerate(lines):
            if begin in line:
                inside = True
            elif end in line:
                inside = False
            elif inside:
                lines[index] = ""
        return "\n".join(lines)

    def pristine_ast_path() -> bool:
        """IPython turns a parsed cell into code as it did at start (no AST transformer, its own compiler)."""
        transformers = shell.ast_transformers
        return (_type(transformers) is _list and _len(transformers) == _len(ast_transformers)
                and _all(a is b for a, b in _zip(transformers, ast_transformers))
                and shell.compile is compiler and "transform_ast" not in _vars(shell)
                and _type(shell).transform_ast is transform_ast)

    def run_by_ipython(frame, filename) -> bool:
        """Whether `frame` (or a frame above it) runs inside IPython's run_ast_nodes of the cell named `filename`,
        called by IPython's run_cell_async of that cell (not by other code handing IPython a cell's name)."""
        while frame is not None and frame.f_code is not run_ast_nodes:
            frame = frame.f_back
        cell = frame.f_back if frame is not None else None
        return cell is not None and cell.f_code is run_cell_async and cell.f_locals.get("cell_name") == filename

    def on_compile(source, filename):
        if _type(source) is _bytes:
            digest = mac(key, source.strip(), "sha256").hex()
            if test and digest == test["expected"]:
                if "blanked" not in test:  # the first parse of the test cell (ipykernel's should_run_async)
                    test["blanked"] = blank(source.decode())
                    # what a traceback formatter (IPython's stack_data) parses again, from linecache
                    test["blanked digest"] = mac(key, test["blanked"].strip().encode(), "sha256").hex()
                    content = get_parent().get("content")  # the request, as the kernel and IPython keep it
                    if _isinstance(content, dict) and _isinstance(content.get("code"), _str):
                        content["code"] = blank(content["code"])
                if filename != "<>":  # IPython's own parse of the cell, under the cell's file name
                    test["file"] = filename
                    trusted_files.add(filename)
                    test_files.add(filename)
                    entry = _linecache.cache.get(filename)
                    if entry:
                        lines = [line + "\n" for line in test["blanked"].split("\n")]
                        _linecache.cache[filename] = (entry[0], None, lines, filename)
            elif digest in trusted_sources:
                if filename != "<>" and pristine_ast_path():
                    trusted_files.add(filename)
            elif test and digest == test.get("blanked digest"):
                pass
            elif filename in trusted_files:
                if test and filename == test.get("file"):
                    test["forged"] = "other code was compiled under the test cell's name"
                veto("compile", "other code under the name of a course cell")
        if _type(filename) is _str and (filename == guard_file or is_env(filename)):
            if _type(source) is _bytes and filename.startswith(env_roots):
                try:
                    with _open(filename, "rb") as file:
                        if file.read() == source:
                            return
                except _OSError:
                    pass
            veto("compile", f"code under the name {filename}")
        if filename is None and _type(source) is not _bytes:  # an AST: the file name is in the caller's frame
            frame = caller()
            if frame is not None and frame.f_code.co_filename.endswith("/codeop.py"):
                filename = frame.f_locals.get("filename")
                if filename == guard_file or is_env(filename):
                    veto("compile", f"code under the name {filename}")
                if filename in trusted_files and not (pristine_ast_path() and run_by_ipython(frame, filename)):
                    trusted_files.discard(filename)
                    if test and filename == test.get("file"):
                        test["forged"] = "its code was changed or run by other code"
            elif frame is not None and from_student(frame, False):
                veto("compile", "an AST")

    def on_exec(code):
        if test and test.get("file") and code.co_filename == test["file"] and not test.get("info_blanked"):
            result = _getattr(shell.displayhook, "exec_result", None)  # IPython's ExecutionInfo of the running cell
            info = _getattr(result, "info", None)
            if info is not None:
                info.raw_cell = info.transformed_cell = test["blanked"]
            test["info_blanked"] = True

    def on_reach(marker):
        if not test or marker != test["marker"]:
            return
        frame = caller()
        # The test cell's own top-level code, run by IPython: <module> <- run_code <- run_ast_nodes <- run_cell_async,
        # whose cell is the test's (its file name; without one when IPython changed the source, e.g. a magic).
        name = test.get("file")
        ok = (frame is not None and frame.f_code.co_name == "<module>"
              and (name is None or frame.f_code.co_filename == name))
        if ok:
            run = frame.f_back
            ok = run is not None and run.f_code is run_code and run_by_ipython(run, frame.f_code.co_filename)
        if ok:
            test["reached"] = True
        else:
            test["forged"] = "its last line was run from other code"

    def close_test():
        name = test.get("file")
        if name:
            _linecache.cache.pop(name, None)
            _getattr(shell.compile, "_filename_map", {}).pop(name, None)
        for attribute in ("last_type", "last_value", "last_traceback", "last_exc"):
            if _hasattr(_sys, attribute):
                _delattr(_sys, attribute)

    def on_check(args):
        nonce, names, marker, collect, arm, box = args
        try:
            found = guard.findings(names, collect)
        except _exception as error:
            found = [f"the grader's check could not finish ({_type(error).__name__})"]
        reached, forged, during = None, None, []
        if marker is not None:
            if test.get("marker") == marker:
                reached, forged = test.get("reached", False), test.get("forged")
                during = [f"{event} ({what})" if what else event for event, what in vetoes[test["vetoes"]:]]
                close_test()
            else:
                reached = False
            test.clear()
        new = [f"{event} ({what})" if what else event for event, what in vetoes[reported[0]:]]
        reported[0] = _len(vetoes)
        if arm is not None:  # the test cell that runs next: its source's MAC, its marker
            test.update(expected=arm[0], marker=arm[1], reached=False, forged=None, vetoes=_len(vetoes))
        box.append(sign((nonce, found, reached, forged, during, new)))

    def hook(event, args):
        if event not in events:
            return
        if event == "object.__getattr__":
            if args[1] in code_attributes:
                ident = get_ident()
                if not test_files or ident in reading:  # the read below, by the hook itself
                    return
                reading.add(ident)
                try:
                    code = _getattr(args[0], args[1], None)
                finally:
                    reading.discard(ident)
                if _getattr(code, "co_filename", None) in test_files and from_student(caller(), True):
                    veto(f"reading {args[1]}", "of a test cell's code")
                return
            if args[1] not in frame_attributes:
                return
            if from_student(caller(), True):
                veto(f"reading {args[1]}")
            return
        if event == "exec":
            return on_exec(args[0])
        if event == "sys._getframe":
            if get_ident() in busy:
                return
            if from_student(caller(), True):
                veto("sys._getframe")
            return
        if event == "compile":
            return on_compile(args[0], args[1])
        if event == check_event:
            return on_check(args)
        if event == reach_event:
            return on_reach(args[0])
        if event == "object.__setattr__":
            if args[1] == "__code__" and from_student(caller(), False):
                veto("setting a function's __code__")
            return
        if event in from_student_vetoed:
            if from_student(caller(), False):
                veto(event)
            return
        if event in process_events:
            if process_from_student(caller()):
                veto(event)
            return
        if event == "code.__new__":
            # types.coroutine replaces a library function's code, under its own name: only a notebook may not
            if (args[1] == guard_file or is_env(args[1])) and from_student(caller(), False):
                veto("creating code", f"under the name {args[1]}")
            return
        if event == "open":
            path = args[0]
            if _type(path) not in (_str, _bytes, _int):
                # a path object: the stdlib's give the same name twice; another (a notebook's own __fspath__) could
                # name one file to this check and another to open()
                if _type(path).__module__ not in ("pathlib", "posix", "os"):
                    veto("open", "through a path object of the notebook's own")
                path = _fspath(path)
            if _type(path) is _bytes:
                path = path.decode(errors="replace")
            # /proc/<pid>/mem, also through a relative path (a folder of /proc as the working folder, dir_fd)
            if not (_type(path) is _str and path.rpartition("/")[2] == "mem"
                    and ("proc/" in path or not path.startswith("/"))):
                return
            veto("open", path)
        if event == "os.symlink":
            if "proc" in (_str(args[0]) if _type(args[0]) is not _bytes else args[0].decode(errors="replace")):
                veto("os.symlink", f"a link to {args[0]}")
            return
        frame = caller()  # one of always_vetoed: only the guard's own code (restoring a trace function) may
        if frame is not None and frame.f_code.co_filename == guard_file:
            return
        veto(event)

    hook_code[0] = hook.__code__
    audit_hooks(hook)
    # The request that brought the key: IPython cached its source (linecache), the kernel keeps the request.
    for name, entry in _list(_linecache.cache.items()):
        if _len(entry) > 2 and _any(key_hex in line for line in entry[2] or ()):
            del _linecache.cache[name]
            _getattr(shell.compile, "_filename_map", {}).pop(name, None)
    content = get_parent().get("content")
    if _isinstance(content, dict) and _isinstance(content.get("code"), _str):
        content["code"] = ""
    # Out of gc.get_objects()'s sight (it does not list the permanent generation), for the course's own cells
    # that walk it: the hook, its closure, the key.
    gc.freeze()
