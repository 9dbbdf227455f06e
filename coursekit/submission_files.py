"""What a submission may carry besides its notebooks: nothing that reaches grading.

nbgrader 0.9.6's autograde copies every non-notebook file of submitted/<student>/<assignment>/ into autograded/
with `shutil.copy` (converters/base.py, `init_assignment`), which follows symbolic links, as the grader's user and
outside any sandbox: a link to the master notebook brings source/ (the hidden tests) into the kernel's folder, a
`.py` file beside the notebook is what the notebook's `import` picks up; and a submitted notebook that is itself a
link to the master makes nbgrader grade the master (full marks). Here, with nbgrader's own extension points:

- `c.CourseDirectory.ignore = course_ignore(...)` (nbgrader_config.py) makes autograde copy no file but the notebooks
  into autograded/: nbgrader copies "other files" by walking the assignment folder and skips a walked folder whose
  name the ignore list matches, the walk's own root included; the list holds the assignment folders' names, which
  match that root and nothing a student hands in or the exchange copies (they copy a folder's contents; a notebook is
  `<assignment>.ipynb`). The same list keeps source/'s own data files out of release/ and autograded/, of which this
  course has none: a course that needs data files cannot have them from nbgrader without a patch (README, Security).
  nbgrader's own files (timestamp.txt, submission_secret.txt) are carried by `CheckSubmittedFiles` (to autograded/)
  and `CarryNbgraderFiles` (generate_feedback, to feedback/);
- `CheckSubmittedFiles`, the first of the sanitize preprocessors (nbgrader_config.py), refuses a submission that
  holds a symbolic link anywhere (the notebook, a file, a folder, the assignment folder itself) or a notebook with
  hidden tests in it (what `nbgrader collect`, which follows links with copytree, makes of a link to the master):
  the notebook is not graded, nbgrader logs the reason and goes on with the rest of the class. It lists every other
  file as *files left out* (ProblemKind.FILES_LEFT_OUT, the score unchanged);
- `coursekit grade` checks the same before the worker grades (coursekit.diagnosis.check_submission) and sends a Dask
  worker the regular files only (coursekit.cluster).

Removable when nbgrader stops following symbolic links when it copies a submission and lets a course choose which
submitted files autograde copies: no upstream issue about the links found as of nbgrader 0.9.6; nbgrader issue 170
(closed, https://github.com/jupyter/nbgrader/issues/170) proposed "an option to delete any other files that aren't
from the source and aren't allowed", which was not built (`Autograde.exclude_overwriting`, from issue 940, is the
opposite: it keeps a student's version of a source file).
"""
import os
import shutil
from pathlib import Path

from nbgrader.coursedir import CourseDirectory
from nbgrader.preprocessors import NbGraderPreprocessor

from .cells import hidden_test_delimiters
from .outcomes import Problem, ProblemKind, report

# nbgrader's own files in a submission folder (written by the exchange and `nbgrader collect`), which nbgrader
# carries from submitted/ to autograded/ to feedback/ with the "other files": release_feedback needs both.
NBGRADER_FILES = ("timestamp.txt", "submission_secret.txt")
NBGRADER_FILE_MAX_BYTES = 4096  # a timestamp, a secret


def carry_nbgrader_files(source: Path, destination: Path) -> None:
    """Copy nbgrader's own files (regular files, small; never through a link) from one step's folder to the next:
    the course's ignore list keeps nbgrader from copying them with the other files."""
    for name in NBGRADER_FILES:
        path = Path(source) / name
        if path.is_file() and not path.is_symlink() and path.stat().st_size <= NBGRADER_FILE_MAX_BYTES:
            Path(destination).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, Path(destination) / name)


class SubmissionRefused(Exception):
    """A submission that cannot be graded safely: the message says why, for the instructor."""


def symbolic_links(folder: Path) -> list[str]:
    """Every symbolic link in a submission folder (the folder itself included), as 'name -> target'."""
    folder = Path(folder)
    links = []
    if folder.is_symlink() or os.path.realpath(folder) != os.path.abspath(folder):
        links.append(f"{folder.name}/ (the folder itself) -> {os.path.realpath(folder)}")
        return links
    for root, dirs, files in os.walk(folder):  # does not descend into linked folders: they are listed here
        for name in sorted(dirs + files):
            path = Path(root) / name
            if path.is_symlink():
                links.append(f"{path.relative_to(folder).as_posix()} -> {os.readlink(path)}")
    return sorted(links)


def extra_files(folder: Path, notebooks: set[str]) -> list[str]:
    """The files of a submission folder other than the assignment's notebooks (and nbgrader's own), relative."""
    folder = Path(folder)
    extra = []
    for root, dirs, files in os.walk(folder):
        for name in sorted(files):
            relative = (Path(root) / name).relative_to(folder).as_posix()
            if relative not in notebooks and relative not in NBGRADER_FILES:
                extra.append(relative)
    return sorted(extra)


def refusal(folder: Path) -> str | None:
    """Why the submission in `folder` is refused (None when it is not): its symbolic links."""
    links = symbolic_links(folder)
    if links:
        return (f"holds symbolic link(s), which grading does not follow: {'; '.join(links[:5])}"
                + (f" and {len(links) - 5} more" if len(links) > 5 else "") + "; not graded")
    return None


def course_ignore(course_root: Path) -> list[str]:
    """nbgrader's default CourseDirectory.ignore, plus the name of every assignment folder of source/."""
    defaults = list(CourseDirectory().ignore)
    source = Path(course_root) / "source"
    return defaults + sorted(p.name for p in source.iterdir() if p.is_dir()) if source.is_dir() else defaults


def assignment_notebooks(coursedir: CourseDirectory, assignment: str) -> set[str]:
    """The notebooks of the assignment, as file names (from source/)."""
    source = Path(coursedir.format_path(coursedir.source_directory, ".", assignment))
    return {p.name for p in source.glob("*.ipynb")}


class CheckSubmittedFiles(NbGraderPreprocessor):
    """First sanitize preprocessor of autograde: refuse a submission with symbolic links or hidden tests in it, and
    list the files it carries besides its notebooks (which autograde leaves out: CourseDirectory.ignore)."""

    def preprocess(self, nb, resources):
        info = resources.get("nbgrader", {})
        assignment, student, notebook = info.get("assignment"), info.get("student"), info.get("notebook", "")
        coursedir = CourseDirectory(config=self.config)
        folder = Path(coursedir.format_path(coursedir.submitted_directory, student, assignment))
        why = refusal(folder)
        begin, _ = hidden_test_delimiters(self.config)
        if why is None and any(cell.cell_type == "code" and begin in cell.source for cell in nb.cells):
            why = (f"{notebook}.ipynb holds hidden tests ({begin}): it is a copy of the master notebook "
                   "(a link followed on the way in?); not graded")
        if why is not None:
            report(Problem(ProblemKind.REFUSED, why), resources, self.log)
            raise SubmissionRefused(f"submission of {student} refused: {why}")
        notebooks = assignment_notebooks(coursedir, assignment)
        if notebook == min((Path(n).stem for n in notebooks), default=notebook):  # once per submission
            extra = extra_files(folder, notebooks)
            if extra:
                report(Problem(ProblemKind.FILES_LEFT_OUT, files_left_out(extra)), resources, self.log)
            autograded = Path(coursedir.format_path(coursedir.autograded_directory, student, assignment))
            for left in extra_files(autograded, notebooks) if autograded.is_dir() else []:
                (autograded / left).unlink()  # copied anyway (an ignore list that did not match): out before any kernel
            carry_nbgrader_files(folder, autograded)
        return nb, resources


class CarryNbgraderFiles(NbGraderPreprocessor):
    """In generate_feedback: carry nbgrader's own files (timestamp.txt, submission_secret.txt) from autograded/ to
    feedback/, which nbgrader would copy with the other files (release_feedback reads them)."""

    def preprocess(self, nb, resources):
        info = resources.get("nbgrader", {})
        student, assignment = info.get("student"), info.get("assignment")
        coursedir = CourseDirectory(config=self.config)
        carry_nbgrader_files(coursedir.format_path(coursedir.autograded_directory, student, assignment),
                             coursedir.format_path(coursedir.feedback_directory, student, assignment))
        return nb, resources


def files_left_out(extra: list[str]) -> str:
    shown = ", ".join(extra[:10]) + (f" and {len(extra) - 10} more" if len(extra) > 10 else "")
    return f"{len(extra)} file(s) beside the notebooks were not given to grading: {shown}"
