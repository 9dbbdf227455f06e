"""nbgrader preprocessor: a graded cell this notebook does not know becomes a plain cell, and the rest is graded.

JupyterLab copies a cell's nbgrader metadata with it. A student who pastes a graded cell from another notebook (or
from an older release of this one) hands in a cell whose grade id the gradebook does not have for this notebook.
nbgrader 0.9.6's OverwriteCells then deletes only the cell's `grade_id` and keeps the rest of its nbgrader metadata,
which CheckCellMetadata refuses ("the nbgrader metadata may be corrupted"): the whole notebook goes ungraded, 0 for
every exercise, for an honest mistake that touched one cell. Here, before OverwriteCells, such a cell loses its
nbgrader metadata (its code still runs, like any cell the student added) and is reported as a CellChange
(ChangeKind.FOREIGN), the way copied cells are. Configured in nbgrader_config.py (Autograde.sanitize_preprocessors).

Removable when nbgrader's OverwriteCells drops the whole nbgrader metadata of a cell the gradebook does not know
(no upstream issue found as of nbgrader 0.9.6; the deletion is in OverwriteCells.preprocess_cell).
"""
from nbgrader.api import Gradebook
from nbgrader.preprocessors import NbGraderPreprocessor

from .outcomes import CellChange, ChangeKind, report


class ForgetForeignCells(NbGraderPreprocessor):
    """Cells whose grade id is not one of this notebook's in the gradebook lose their nbgrader metadata."""

    def preprocess(self, nb, resources):
        info = resources["nbgrader"]
        with Gradebook(info["db_url"]) as gradebook:
            master = gradebook.find_notebook(info["notebook"], info["assignment"])
            known = {cell.name for cell in master.source_cells}
        for index, cell in enumerate(nb.cells):
            grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
            if "nbgrader" in cell.get("metadata", {}) and grade_id not in known:
                del cell.metadata["nbgrader"]
                self.log.warning("Cell %s is not part of %s: graded as a plain cell", grade_id or f"#{index + 1}",
                                 info["notebook"])
                if grade_id:
                    report(CellChange(ChangeKind.FOREIGN, grade_id, info["notebook"]), resources, self.log)
        return nb, resources
