"""What grading a submission gives and can go wrong with, as typed values rather than strings to parse.

The course's preprocessors run inside nbgrader's Autograde converter, which returns no result of theirs to the
caller. So a preprocessor that notices something calls `report(record, resources)`: a `Problem` (a cell cut for
printing too much, a student's code that tampered with grading), a `CellChange` (a locked cell the gradebook put
back, a copied or retyped cell) or a `Timing`. The record is logged in words, for `nbgrader autograde`'s console,
and appended to the list `resources["coursekit"]["records"]`, the way nbgrader's own preprocessors pass data along
in `resources["nbgrader"]`. coursekit's grading worker gives each notebook's resources a list it owns, a `Records`
(grade_worker.CourseAutograde), which nbconvert's deep copy of the resources leaves shared: what a preprocessor
reported before it raised is still there.

`SubmissionResult` is what `coursekit grade` returns per student, built from these records and from what the
worker holds in memory (the exception nbgrader stopped on, the graded notebooks).
"""
import logging
from dataclasses import dataclass, field
from enum import Enum


class ProblemKind(Enum):
    """Why a submission needs an instructor's attention. The value is the words the report starts with."""

    MISSING = "missing"
    NOT_A_NOTEBOOK = "not a valid notebook"
    TIMED_OUT = "timed out"
    TOO_MUCH_OUTPUT = "too much output"
    OUT_OF_MEMORY = "out of memory"
    KERNEL_DIED = "kernel died"
    CRASHED = "crashed"
    GRADEBOOK_BUSY = "gradebook busy"
    TAMPERED = "tampered with grading"
    REFUSED = "refused"  # symbolic links or the master's hidden tests in the submission (coursekit.submission_files)
    HIDDEN_TESTS_SHOWN = "showed hidden tests"  # an output quoted the hidden tests; replaced by a note (coursekit.scrub)
    GRADING_FAILED = "grading failed"
    # Kinds that leave the score as graded: a person should read something (SubmissionResult.reviews).
    NEEDS_REVIEW = "needs review"  # interpreter internals in what the student wrote (coursekit.review)
    FILES_LEFT_OUT = "files left out"  # files beside the notebooks, not given to grading (coursekit.submission_files)


# Problems that ask a person to read something without changing how the submission was graded.
FOR_REVIEW = frozenset({ProblemKind.NEEDS_REVIEW, ProblemKind.FILES_LEFT_OUT})


@dataclass(frozen=True)
class Problem:
    kind: ProblemKind
    detail: str
    cells: tuple[str, ...] = ()  # grade ids (or #n) of the cells concerned, when it is about cells

    def __str__(self) -> str:
        # A problem about cells names them first: "timed out: cell(s) q1, q2 ran too long ...".
        cells = f"cell(s) {', '.join(self.cells)} " if self.cells else ""
        return f"{self.kind.value}: {cells}{self.detail}"


class ChangeKind(Enum):
    """What a student did to the notebook's structure that grading put right, against the gradebook's master copy."""

    COPIED = "copied"  # a graded or locked cell pasted again: only the last copy is graded (DeduplicateIds)
    RETYPED = "retyped"  # a cell turned from code into markdown or back: graded as the master's type
    EDITED = "edited"  # a locked cell whose source was changed: the master's source is put back
    DELETED = "deleted"  # a graded or locked cell removed: put back from the master (RestoreMissingCells)
    FOREIGN = "foreign"  # a cell whose grade id this notebook does not know (pasted from another): graded as plain


@dataclass(frozen=True)
class CellChange:
    kind: ChangeKind
    cell: str  # grade id
    notebook: str = ""
    was: str = ""  # RETYPED: the master's cell type
    now: str = ""  # RETYPED: the type the student left

    def __str__(self) -> str:
        if self.kind is ChangeKind.RETYPED:
            return f"cell {self.cell} was turned from {self.was} into {self.now}; it was graded as {self.was}"
        return {ChangeKind.COPIED: f"cell {self.cell} was copied; only the last copy is graded",
                ChangeKind.EDITED: f"locked cell {self.cell} was edited; put back before grading",
                ChangeKind.DELETED: f"cell {self.cell} was deleted; put back before grading",
                ChangeKind.FOREIGN: f"cell {self.cell} is not part of this notebook (pasted from another notebook or "
                                    "release); graded as a plain cell"}[self.kind]


@dataclass(frozen=True)
class Timing:
    """Where one notebook's grading time went (GuardedExecute)."""

    notebook: str
    kernel_seconds: float  # starting and stopping the kernel
    cells_seconds: float  # running the cells

    def __str__(self) -> str:
        return f"timing {self.notebook}: kernel start/stop {self.kernel_seconds:.3f} s, cells {self.cells_seconds:.3f} s"


Record = Problem | CellChange | Timing


class Records(list):
    """A list of records that stays one list when copied: nbconvert's Exporter deep-copies the resources before its
    preprocessors run (Exporter._preprocess, nbconvert 7.17), so a plain list there would be a copy, lost with the
    resources of a preprocessor that raised. A grading worker's converter gives each notebook a Records it owns."""

    def __deepcopy__(self, memo):
        return self


def records(resources: dict) -> list[Record]:
    """The records reported into an nbconvert `resources` dict, oldest first (the list is made on first use)."""
    return resources.setdefault("coursekit", {}).setdefault("records", [])


def report(record: Record, resources: dict, log: logging.Logger | None = None) -> None:
    """Record a problem (or a change, a timing) in `resources` for the grading worker and say it in the log."""
    records(resources).append(record)
    level = logging.INFO if isinstance(record, Timing) else logging.WARNING
    (log or logging.getLogger("coursekit")).log(level, "coursekit: %s", record)


@dataclass
class SubmissionResult:
    """What grading one student's submission gave."""

    student: str
    scores: dict[str, float] = field(default_factory=dict)  # grade cell id -> automatic score
    max_scores: dict[str, float] = field(default_factory=dict)  # grade cell id -> points
    problem: Problem | None = None  # why this submission could not be graded normally; None when all went well
    reviews: list[Problem] = field(default_factory=list)  # what a person should read; the score stands (FOR_REVIEW)
    changes: list[CellChange] = field(default_factory=list)  # what grading put right, as the preprocessors saw it
    timings: list[Timing] = field(default_factory=list)  # one per graded notebook
    seconds: float = 0.0
    log: str = ""  # nbgrader's log for this submission (tracebacks included), for a human who wants the details
    output: str = ""  # what the grading process and its kernels printed meanwhile (their stderr: bubblewrap, a crash)

    @property
    def score(self) -> float:
        return sum(self.scores.values())

    @property
    def max_score(self) -> float:
        return sum(self.max_scores.values())

    @property
    def restored_cells(self) -> list[str]:
        """Locked and test cells the student edited or deleted, which grading put back from the gradebook."""
        return list(dict.fromkeys(c.cell for c in self.changes if c.kind in (ChangeKind.EDITED, ChangeKind.DELETED)))

    @property
    def kernel_seconds(self) -> float:
        return sum(t.kernel_seconds for t in self.timings)

    @property
    def cells_seconds(self) -> float:
        return sum(t.cells_seconds for t in self.timings)
