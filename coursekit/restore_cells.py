"""nbgrader preprocessor: put back every locked or graded cell a student deleted, in its place.

nbgrader's own `OverwriteCells.add_missing_cells` restores deleted test cells, but only when the cell
before them is an answer or test cell: when a locked read-only cell (setup code) comes first it fails with
a KeyError and the whole notebook goes ungraded (nbgrader 0.9.6). Students delete cells by accident, so
this version restores missing test cells AND missing locked setup cells, each after the nearest earlier
cell of the master notebook that is still there. Configured in nbgrader_config.py.

It also survives a copied cell: nbgrader's DeduplicateIds empties the nbgrader metadata of all but the last
copy, and nbgrader's add_missing_task_cells then fails with KeyError 'grade_id' (the notebook goes ungraded).

And it says what it put right, as typed records (coursekit.outcomes.CellChange) for the grading report: the
gradebook's master copy is the one source of truth for what a student changed. A locked cell counts as edited
when its source differs from the released one, the master's with its hidden tests removed (nbgrader's own
checksum warning also fires for every untouched cell with hidden tests: nbgrader issue 1961).

Removable once a nbgrader release restores a deleted cell whatever cell precedes it and skips emptied metadata in
add_missing_task_cells (both fail in 0.9.6, the newest release when this was written); the change records would
then move to a small OverwriteCells subclass. Upstream: no issue found for the KeyError after a locked cell (the
restore came with PR 1770, for issue 1682); the emptied metadata is https://github.com/jupyter/nbgrader/issues/1083.
"""
from nbformat.notebooknode import NotebookNode
from nbgrader.preprocessors import ClearHiddenTests, OverwriteCells

from .outcomes import CellChange, ChangeKind, report


class RestoreMissingCells(OverwriteCells):
    """nbgrader's OverwriteCells, whose restore of deleted cells also works after a locked cell and a copied cell.

    Removable when nbgrader restores a cell deleted after a locked cell (no upstream issue found as of nbgrader 0.9.6)
    and nbgrader issue 1083 (copied cells) is fixed: see the module's docstring.
    """

    def preprocess(self, nb, resources):
        self.resources = resources  # where _report puts its records (report_change is not given the resources)
        return super().preprocess(nb, resources)

    def preprocess_cell(self, cell, resources, cell_index):
        """nbgrader's check of one cell against the gradebook, reporting a locked cell whose source it put back."""
        submitted = cell.get("source", "")
        cell, resources = super().preprocess_cell(cell, resources, cell_index)
        if cell.get("source", "") != submitted and self._released_source(cell) != submitted:
            self._report(ChangeKind.EDITED, cell.metadata.nbgrader["grade_id"])
        return cell, resources

    def _released_source(self, cell) -> str:
        """The source students received: the master's, without its hidden tests (nbgrader's ClearHiddenTests)."""
        released = NotebookNode(cell_type=cell.cell_type, source=cell.source, metadata={})
        ClearHiddenTests(parent=self)._remove_hidden_test_region(released)
        return released.source

    def report_change(self, name, attr, old, new):
        super().report_change(name, attr, old, new)
        if attr == "cell_type":
            self._report(ChangeKind.RETYPED, name, was=old, now=new)

    def _report(self, kind: ChangeKind, grade_id: str, **details) -> None:
        report(CellChange(kind, grade_id, self.notebook_id, **details), self.resources, self.log)

    def add_missing_grade_cells(self, nb, resources):
        source_notebook = self.gradebook.find_notebook(self.notebook_id, self.assignment_id)
        source_cells = list(source_notebook.source_cells)  # in the master notebook's order
        points = {cell.name: cell.max_score for cell in source_notebook.grade_cells}
        answers = {cell.name for cell in source_notebook.solution_cells}

        for position, source_cell in enumerate(source_cells):
            if _index_of(nb, source_cell.name) is not None:
                continue
            if source_cell.name in points:  # a test cell (or a manually graded answer)
                cell = self.missing_cell_transform(source_cell, points[source_cell.name],
                                                   is_solution=source_cell.name in answers)
            elif source_cell.locked and source_cell.name not in answers:  # locked setup code
                cell = _read_only_cell(source_cell)
            else:
                continue
            self.log.warning("Missing cell %s encountered, adding it back to the notebook", source_cell.name)
            self._report(ChangeKind.DELETED, source_cell.name)
            nb.cells.insert(_insert_position(nb, source_cells[:position]), cell)
        return nb, resources

    def add_missing_task_cells(self, nb, resources):
        """nbgrader's version, without failing on cells whose nbgrader metadata DeduplicateIds emptied."""
        source_notebook = self.gradebook.find_notebook(self.notebook_id, self.assignment_id)
        source_cells = {cell.name: cell for cell in source_notebook.source_cells}
        present = {cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") for cell in nb.cells}
        for task_cell in source_notebook.task_cells:
            if task_cell.name not in present:
                self._report(ChangeKind.DELETED, task_cell.name)
                nb.cells.append(self.missing_cell_transform(source_cells[task_cell.name], task_cell.max_score,
                                                            is_task=True))
        return nb, resources


def _index_of(nb, grade_id):
    for index, cell in enumerate(nb.cells):
        if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") == grade_id:
            return index
    return None


def _insert_position(nb, earlier_source_cells):
    """Just after the last earlier master cell still in the notebook (or at the top)."""
    for earlier in reversed(earlier_source_cells):
        index = _index_of(nb, earlier.name)
        if index is not None:
            return index + 1
    return 0


def _read_only_cell(source_cell):
    cell = {
        "cell_type": source_cell.cell_type,
        "metadata": {
            "deletable": False,
            "editable": False,
            "nbgrader": {"grade": False, "grade_id": source_cell.name, "locked": True, "schema_version": 3,
                         "solution": False, "task": False, "checksum": source_cell.checksum},
        },
        "source": source_cell.source,
    }
    if source_cell.cell_type == "code":
        cell.update(execution_count=None, outputs=[])
    return NotebookNode(cell)
