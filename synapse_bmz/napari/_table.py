"""A result table in a dock widget, exportable to csv / xlsx (atomically, like every output)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from magicgui.widgets import Container, FileEdit, PushButton, Table

from ..errors import OptionError, OutputError, SynapseBmzError
from ._errors import notify_error

#: Rows shown in the dock (the export always has every row); a Qt table of
#: thousands of rows x 20 columns takes seconds to build in the GUI thread.
MAX_SHOWN_ROWS = 2000


def export_table(table, path) -> Path:
    """Write ``table`` (pandas.DataFrame) to ``path``: ``.csv`` or ``.xlsx`` by extension.

    Raises
    ------
    OptionError
        Other extensions.
    OutputError
        The file cannot be written.
    """
    from analysis._atomic import write_atomic

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        write = lambda p: table.to_csv(p, index=False)  # noqa: E731
    elif suffix == ".xlsx":
        write = lambda p: table.to_excel(p, index=False, engine="openpyxl")  # noqa: E731
    else:
        raise OptionError("export", f"{path}: choose a .csv or .xlsx file name")
    try:
        return write_atomic(path, write)
    except OSError as error:
        raise OutputError(f"{path}: cannot write: {error}") from None


class TablePanel(Container):
    """The last result table, a file name and an Export button."""

    def __init__(self):
        self.table = Table(name="table")
        self.table.native.setMinimumHeight(180)
        self.path = FileEdit(label="export to", name="export_path", mode="w", filter="*.csv *.xlsx")
        self.export_button = PushButton(text="Export csv / xlsx", name="export")
        super().__init__(widgets=[self.table, self.path, self.export_button])
        self.frame = None
        self.export_button.changed.connect(self._export_clicked)

    def set_frame(self, frame) -> None:
        """Display ``frame`` (pandas.DataFrame); at most `MAX_SHOWN_ROWS` rows are shown."""
        self.frame = frame
        shown = frame.head(MAX_SHOWN_ROWS).round(3)
        # row lists of Python objects: a plain 2D array would turn the integer columns (labels) into floats
        self.table.value = {"data": shown.astype(object).values.tolist(), "index": list(shown.index),
                            "columns": [str(c) for c in shown.columns]}

    def export(self, path=None) -> Optional[Path]:
        """Export the whole table to ``path`` (default: the file field); errors become notifications."""
        try:
            if self.frame is None:
                raise OptionError("export", "nothing to export yet: run the measurement first")
            target = Path(path if path is not None else self.path.value)
            if str(target) in ("", "."):
                raise OptionError("export", "choose a .csv or .xlsx file name")
            return export_table(self.frame, target)
        except SynapseBmzError as error:
            notify_error(error)
            return None

    def _export_clicked(self, *_):
        self.export()
