"""`coursekit grade ASSIGNMENT`: a traitlets application in nbgrader's manner (nbgrader/apps/autogradeapp.py).

Every option is an alias of the trait it sets, and that trait is declared once, in the class that uses it:
`--jobs` is `Grading.jobs`, `--timeout` nbgrader's `Execute.timeout`, `--db` `CourseDirectory.db_url`,
`--course` `CourseDirectory.root`, `--unsafe-no-sandbox` and `--cold-kernels` set `GuardedExecute.unsafe_no_sandbox`
and `SandboxProvisioner.warm`. So `c.Grading.jobs = 2` in nbgrader_config.py and `--jobs 2` are the same
setting, and any other trait can be given as `--Class.trait=value`, as with nbgrader's own commands. The
configuration is the course's as coursekit.config loads it (nbgrader's own way), the command line on top.
"""
import sys
import time
from pathlib import Path

from traitlets import Bool, List, Unicode
from traitlets.config import Application, Config

from .grading import Grading

aliases = {
    ("j", "jobs"): "Grading.jobs",
    "timeout": "Execute.timeout",
    "db": "CourseDirectory.db_url",
    "course": "CourseDirectory.root",
    "student": "GradeApp.students",
    "plot": "GradeApp.plot",
    "dask": "GradeApp.dask",
    "log-file": "GradeApp.log_file",
}
flags = {
    "unsafe-no-sandbox": (
        {"GuardedExecute": {"unsafe_no_sandbox": True}},
        "DANGER: run students' code without the bubblewrap sandbox, with your rights (it can then change grades and "
        "other students' files). Only where no sandbox can run, for work you trust."),
    "cold-kernels": (
        {"SandboxProvisioner": {"warm": False}},
        "Start every kernel as a new Python process instead of a fork of one that has already imported the course's "
        "modules (slower; for comparison)."),
    "no-progress": ({"GradeApp": {"progress": False}}, "No progress bar."),
    "verbose": ({"GradeApp": {"verbose": True}},
                "After the summary, print the log, traceback and output of each submission that needs attention."),
}


class GradeApp(Application):
    name = "coursekit-grade"
    description = (
        "Autograde submitted/*/ASSIGNMENT/ with nbgrader in parallel worker processes, into the course's gradebook, "
        "then print per-exercise means and failures, plot the score distribution and list the submissions that "
        "timed out, crashed or were malformed. Exit code 1 when any submission needs attention, 2 when nothing "
        "could be graded. Settings come from the course's nbgrader_config.py (and the Jupyter config paths, as "
        "nbgrader reads them); the options below override them.")
    examples = """
        python -m coursekit grade 01-async-database --jobs 2
        python -m coursekit grade 01-async-database --student ada --student grace --timeout 30
        python -m coursekit grade 01-async-database --dask tcp://scheduler:8786 --db postgresql+psycopg://u@h/db
    """
    aliases = aliases
    flags = flags

    students = List(Unicode(), help="Grade only these students (default: everyone in submitted/).").tag(config=True)
    plot = Unicode("", help="Where to save the score distribution (default: <course>/reports/<assignment>-scores.png)."
                   ).tag(config=True)
    dask = Unicode("", help="Grade on a Dask cluster: its scheduler's address (tcp://host:8786), or local:N to start "
                            "N local workers; a remote cluster needs a PostgreSQL gradebook (--db postgresql+psycopg://...)."
                   ).tag(config=True)
    progress = Bool(True, help="Show a progress bar.").tag(config=True)
    verbose = Bool(False, help="After the summary, print the log, traceback and output (the grading process's and "
                               "its kernels' stderr) of each submission that needs attention.").tag(config=True)
    log_file = Unicode("", help="Write every submission's log, traceback and output to this file.").tag(config=True)

    exit_code = 0

    @property
    def classes(self):  # for --help-all; imported only then
        from nbgrader.coursedir import CourseDirectory
        from nbgrader.preprocessors import Execute

        from .preprocessors import GuardedExecute
        from .sandbox import SandboxProvisioner
        return [GradeApp, Grading, Execute, GuardedExecute, SandboxProvisioner, CourseDirectory]

    def initialize(self, argv=None):
        from nbgrader.coursedir import CourseDirectory

        from .config import course_config

        self.parse_command_line(argv)
        if len(self.extra_args) != 1:
            self.log.error("coursekit grade: give one assignment (see --help)")
            self.exit(2)
        self.assignment = self.extra_args[0]
        self.course = Path(CourseDirectory(config=self.cli_config).root).resolve()
        # The command line on top of the course's configuration: each trait has one value, wherever it was set.
        self.overrides = Config(self.cli_config)
        self.update_config(course_config(self.course, self.overrides))

    def start(self):
        self.exit_code = grade(self)


def grade(app: GradeApp) -> int:
    from .config import UnknownSetting
    from .grading import grade_assignment
    from .report import Progress, exercises_of, format_details, format_summary, plot_scores
    from .sandbox import SandboxUnavailable
    from .warm import WarmKernelError

    course, assignment = app.course, app.assignment
    if not (course / "source" / assignment).is_dir():
        print(f"no such assignment: {course / 'source' / assignment}", file=sys.stderr)
        return 2
    started = time.monotonic()
    try:
        results = grade_assignment(course, assignment, students=app.students or None, config=app.overrides,
                                   progress=Progress() if app.progress else None, dask=app.dask or None)
    except (SandboxUnavailable, WarmKernelError, UnknownSetting) as refusal:
        print(refusal, file=sys.stderr)
        return 2
    except Exception as error:
        from .cluster import ClusterError  # the cluster cannot grade this class (EnvironmentMismatch, ...)
        if isinstance(error, ClusterError):
            print(f"coursekit grade --dask: {error}", file=sys.stderr)
            return 2
        raise
    seconds = time.monotonic() - started
    if not results:
        print(f"nothing to grade: no folder submitted/*/{assignment}/ in {course}", file=sys.stderr)
        return 1
    plot = plot_scores(results, Path(app.plot) if app.plot else course / "reports" / f"{assignment}-scores.png",
                       assignment)
    print(format_summary(assignment, results, exercises_of(course, assignment), seconds=seconds,
                         jobs=None if app.dask else Grading(parent=app).workers_for(len(results)), plot=plot))
    if app.log_file:
        Path(app.log_file).write_text(format_details(results) + "\n")
        print(f"Each submission's log and output: {app.log_file}")
    attention = [r for r in results if r.problem]
    if app.verbose and attention:
        print("\n" + format_details(attention))
    elif attention and not app.log_file:
        print("(--verbose or --log-file FILE: their logs, tracebacks and output)")
    return 0 if all(r.problem is None and not r.reviews for r in results) else 1


def main(argv: list[str]) -> int:
    app = GradeApp()
    try:
        app.initialize(argv)
    except SystemExit as stop:  # --help, or a command line traitlets refused
        return stop.code if isinstance(stop.code, int) else 2
    app.start()
    return app.exit_code
