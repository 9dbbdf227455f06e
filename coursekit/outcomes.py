"""What grading a submission can go wrong with, as typed values rather than strings to parse.

The course's preprocessors run inside nbgrader's Autograde converter, which returns no result of theirs to the
caller. So a preprocessor that notices a problem (a cell cut for printing too much, a student's code that tampered
with grading) calls `report(problem)`: the problem is logged in words, for `nbgrader autograde`'s console, and kept
in this process's `reported` list, which coursekit's grading worker drains after each submission.
"""
import logging
from dataclasses import dataclass
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
    GRADING_FAILED = "grading failed"


@dataclass(frozen=True)
class Problem:
    kind: ProblemKind
    detail: str
    cells: tuple[str, ...] = ()  # grade ids (or #n) of the cells concerned, when it is about cells

    def __str__(self) -> str:
        return f"{self.kind.value}: {self.detail}"


# Problems reported in this process since the grading worker last drained them.
reported: list[Problem] = []


def report(problem: Problem, log: logging.Logger | None = None) -> None:
    """Record a problem for the grading worker and say it in the log (what `nbgrader autograde` users see)."""
    reported.append(problem)
    (log or logging.getLogger("coursekit")).warning("coursekit: %s", problem)


def drain() -> list[Problem]:
    """The problems reported since the last call, oldest first."""
    problems = reported[:]
    reported.clear()
    return problems
