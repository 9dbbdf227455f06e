"""nbgrader settings for this course. The course root is this folder (source/, release/, ...)."""
import sys
import warnings
from pathlib import Path

from sqlalchemy.exc import SAWarning

# nbgrader 0.9 with SQLAlchemy 2 warns "Object of type <SubmittedAssignment> not in session" on every
# autograde. It is harmless noise from nbgrader's own code; silence only that module's SAWarnings.
# Removable when nbgrader's Gradebook.add_submission adds the submission to its session before filling it in
# (no upstream issue found as of nbgrader 0.9.6).
warnings.filterwarnings("ignore", category=SAWarning, module=r"nbgrader\.")

c = get_config()  # noqa: F821 (provided by nbgrader when it loads this file)

c.CourseDirectory.course_id = "fastapi-async-db"
# Solution notebooks (with outputs) are committed in solutions/, next to release/.
c.CourseDirectory.solution_directory = "solutions"
# Grading: a cell gets 60 s; a hung cell is interrupted and grading goes on with the next one.
c.Execute.timeout = 60
# Autograde and Validate do not run the demo cells tagged skip-when-grading in source/ (timings and plots, nothing
# graded in them), and print tracebacks in IPython's Plain mode: its default mode takes 1-2 s to format an error
# raised inside FastAPI. Together they halve the time a Section 1 or 3 notebook takes to grade.
c.Execute.skip_cells_with_tag = "skip-when-grading"
c.Execute.extra_arguments = ["--InteractiveShell.xmode=Plain"]
# Students delete or merge test cells by accident: put every graded cell back from the source.
# nbgrader's own restore fails when the deleted cell follows a locked setup cell; coursekit's handles both.
c.OverwriteCells.add_missing_cells = True
# The course's preprocessors are in coursekit, installed into the environment (`make setup-dev`: pip install -e .).
# Grading without them would let a student's skip tag earn full marks: stop here instead.
try:
    import coursekit.preprocessors  # noqa: F401 (instructor tooling: the student copy has its own config)
    import coursekit.restore_cells  # noqa: F401
    import coursekit.review  # noqa: F401
    import coursekit.scrub  # noqa: F401
    import coursekit.submission_files  # noqa: F401
    import coursekit.advice
    import coursekit.foreign_cells  # noqa: F401
except ImportError as error:
    raise ImportError(f"nbgrader_config.py: cannot load the course's preprocessors ({error}); install the course's "
                      "tooling into this environment with `make setup-dev` (pip install -e .)") from error
else:
    # A submission carries its notebooks and nothing else into grading (coursekit.submission_files): autograde copies
    # no other file of submitted/ (nbgrader 0.9.6 copies them following symbolic links, outside the sandbox): nbgrader's
    # ignore list, plus the assignment folders' names, which only the folders nbgrader copies "other files" from match
    # (this also keeps source/'s data files out of release/ and autograded/: this course has none). CheckSubmittedFiles
    # refuses a submission with a symbolic link or the master's hidden tests in it, and lists the other files as
    # "files left out".
    c.CourseDirectory.ignore = coursekit.submission_files.course_ignore(Path(__file__).resolve().parent)
    # nbgrader's own list, with two fixes: a copied graded cell and a deleted cell after a locked setup cell
    # each made nbgrader 0.9.6 give up on the whole notebook. KeepCourseSkipTags: only the cells source/ tags
    # skip-when-grading are skipped, never a cell a student tagged (a skipped test cell would pass). ReviewStudentCode
    # reads the cells the student wrote (the gradebook's cells are back by then) and the submission's Python files,
    # and reports interpreter internals as "needs review" with cell and line; the score is unchanged.
    # CheckSubmittedFiles comes first: a refused notebook goes no further.
    c.Autograde.sanitize_preprocessors = [
        "coursekit.submission_files.CheckSubmittedFiles",
        "nbgrader.preprocessors.ClearOutput",
        "coursekit.preprocessors.DeduplicateCells",
        # A graded cell pasted from another notebook (or an older release) becomes a plain cell, reported; nbgrader
        # 0.9.6 gave up on the whole notebook.
        "coursekit.foreign_cells.ForgetForeignCells",
        "nbgrader.preprocessors.OverwriteKernelspec",
        "coursekit.restore_cells.RestoreMissingCells",
        "coursekit.preprocessors.KeepCourseSkipTags",
        "coursekit.review.ReviewStudentCode",
        "nbgrader.preprocessors.CheckCellMetadata",
    ]
    # nbgrader's own list, with Execute replaced: a cell that prints without end is stopped after 1 MB
    # instead of filling the grader's memory, each kernel may use 4 GiB, and each notebook's kernel start / run
    # time is logged. ScrubHiddenTestText: an output that quotes a hidden test (whatever printed it) is replaced by a
    # note and reported, before anything is saved.
    c.Autograde.autograde_preprocessors = [
        "coursekit.preprocessors.GuardedExecute",
        "coursekit.scrub.ScrubHiddenTestText",
        "nbgrader.preprocessors.IgnorePattern",
        "nbconvert.preprocessors.ClearMetadataPreprocessor",
        "nbgrader.preprocessors.LimitOutput",
        "nbgrader.preprocessors.SaveAutoGrades",
        "nbgrader.preprocessors.AssignLatePenalties",
        "nbgrader.preprocessors.CheckCellMetadata",
    ]
    c.GuardedExecute.max_output_bytes = 1_000_000
    # Grade behaviour, not noise: in the kernels nbgrader starts, a deprecation warning (a correct answer using an
    # idiom the stack has deprecated since) is printed to stdout as advice instead of failing its test cell on stderr.
    # Here, in Execute's kernel arguments, it holds for autograde and for the students' Validate (coursekit.advice).
    c.Execute.extra_arguments.append(coursekit.advice.kernel_argument())
    # Warm kernels (coursekit.warm): each grading kernel is a fresh fork of a process that has already imported
    # these, the modules the course's notebooks import, instead of a new Python that imports them again. Add a
    # module here when a notebook starts importing it; a module missing from the environment stops grading with
    # an error that names it. --SandboxProvisioner.warm=False starts every kernel cold.
    c.SandboxProvisioner.preload_modules = [
        "fastapi", "fastapi.security", "pydantic", "sqlalchemy", "sqlalchemy.ext.asyncio",
        "sqlalchemy.orm", "aiosqlite", "httpx", "jwt", "pwdlib",
        # 04-capstone runs the student's pytest suite in the kernel with ipytest (pytest loads anyio's plugin itself)
        "ipytest", "pytest",
    ]

# Feedback returned to students must not show the hidden tests: ClearHiddenTests removes them from the cells,
# coursekit's HideHiddenTestTracebacks from the tracebacks of failing hidden asserts (which quote their line), and
# ScrubHiddenTestText from any other output that quotes them (both read the delimiters from ClearHiddenTests' config).
# HideHiddenTestTracebacks is removable when nbgrader's feedback hides them in tracebacks too: nbgrader issue 917,
# open as of nbgrader 0.9.6 (https://github.com/jupyter/nbgrader/issues/917).
c.GenerateFeedback.preprocessors = [
    "nbgrader.preprocessors.GetGrades",
    "nbgrader.preprocessors.ClearHiddenTests",
    "nbconvert.preprocessors.CSSHTMLHeaderPreprocessor",
]
if "coursekit.preprocessors" in sys.modules:
    c.GenerateFeedback.preprocessors[1:1] = ["coursekit.preprocessors.HideHiddenTestTracebacks",
                                             "coursekit.scrub.ScrubHiddenTestText"]
    # nbgrader carries timestamp.txt and submission_secret.txt into feedback/ with the "other files", which the
    # course's ignore list keeps out (above): release_feedback needs them.
    c.GenerateFeedback.preprocessors.insert(0, "coursekit.submission_files.CarryNbgraderFiles")

# formgrader and feedback show a student's outputs and markdown without scripts (coursekit/sanitize.py: why three).
c.HTMLExporter.sanitize_html = True
c.HTMLExporter.preprocessors = ["coursekit.sanitize.SanitizeStudentHTML"]
c.HTMLExporter.filters = {"markdown2html": "coursekit.sanitize.SanitizedMarkdown2HTML",
                          "clean_html": "coursekit.sanitize.clean_html"}

# A class without JupyterHub hands in through an LMS: `nbgrader zip_collect` reads the LMS's zip download from
# downloaded/<assignment>/archive/ and finds the student in each file's name (matched against its whole path).
# This pattern is Canvas's "<name>[_LATE]_<user id>_<file id>_<notebook>.ipynb"; for Moodle's
# "<Full Name>_<id>_assignsubmission_file_<notebook>.ipynb" use
# r".*/[^/]+_(?P<student_id>\d+)_assignsubmission_file_(?P<file_id>[^/]+)$" (nbgrader docs: "zip_collect").
c.FileNameCollectorPlugin.named_regexp = r".*/[^_/]+(?:_LATE)?_(?P<student_id>\d+)_\d+_(?P<file_id>[^/]+)$"
