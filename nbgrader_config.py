"""nbgrader settings for this course. The course root is this folder (source/, release/, ...)."""
import os
import sys
import warnings

from sqlalchemy.exc import SAWarning

# nbgrader 0.9 with SQLAlchemy 2 warns "Object of type <SubmittedAssignment> not in session" on every
# autograde. It is harmless noise from nbgrader's own code; silence only that module's SAWarnings.
warnings.filterwarnings("ignore", category=SAWarning, module=r"nbgrader\.")

c = get_config()  # noqa: F821 (provided by nbgrader when it loads this file)

c.CourseDirectory.course_id = "fastapi-async-db"
# Solution notebooks (with outputs) are committed in solutions/, next to release/.
c.CourseDirectory.solution_directory = "solutions"
# Grading: a cell gets 60 s; a hung cell is interrupted and grading goes on with the next one.
c.Execute.timeout = 60
# Students delete or merge test cells by accident: put every graded cell back from the source.
# nbgrader's own restore fails when the deleted cell follows a locked setup cell; ours handles both.
c.OverwriteCells.add_missing_cells = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # the course's own tooling, coursekit/
try:
    import coursekit.restore_cells  # noqa: F401 (instructor tooling; a student's copy of the course has none)
except ImportError:
    pass
else:
    c.Autograde.sanitize_preprocessors = [
        "nbgrader.preprocessors.ClearOutput",
        "nbgrader.preprocessors.DeduplicateIds",
        "nbgrader.preprocessors.OverwriteKernelspec",
        "coursekit.restore_cells.RestoreMissingCells",
        "nbgrader.preprocessors.CheckCellMetadata",
    ]

# Feedback returned to students must not show the hidden tests.
c.GenerateFeedback.preprocessors = [
    "nbgrader.preprocessors.GetGrades",
    "nbgrader.preprocessors.ClearHiddenTests",
    "nbconvert.preprocessors.CSSHTMLHeaderPreprocessor",
]
