"""analysis._atomic: the one atomic writer, and synapse_bmz.io.atomic's OutputError over it."""

import pytest

from analysis._atomic import AtomicWriteError, atomic_path, write_atomic
from synapse_bmz.errors import OutputError
from synapse_bmz.io.atomic import atomic_output
from synapse_bmz.io.atomic import write_atomic as io_write_atomic


def _write_half_then_fail(path):
    path.write_text("half")
    raise RuntimeError("crash mid-write")


def test_write_atomic_replaces_and_leaves_no_temporaries(tmp_path):
    target = tmp_path / "t.csv"
    target.write_text("old")
    assert write_atomic(target, lambda p: p.write_text("new")) == target
    assert target.read_text() == "new"
    with pytest.raises(RuntimeError):
        write_atomic(target, _write_half_then_fail)
    assert target.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["t.csv"]


def test_errors_are_oserror_in_analysis_and_outputerror_in_synapse_bmz(tmp_path):
    missing = tmp_path / "nope" / "t.csv"
    with pytest.raises(AtomicWriteError, match="does not exist"):
        write_atomic(missing, lambda p: p.write_text("x"))
    assert issubclass(AtomicWriteError, OSError)
    with pytest.raises(OutputError, match="does not exist"):
        io_write_atomic(missing, lambda p: p.write_text("x"))
    with pytest.raises(OutputError, match="nothing was written"):
        with atomic_output(tmp_path / "empty"):
            pass
    with pytest.raises(KeyError):  # the body's own errors pass through unchanged
        with atomic_output(tmp_path / "k") as tmp:
            tmp.write_text("x")
            raise KeyError("body")
    with pytest.raises(AtomicWriteError):
        with atomic_path(tmp_path / "empty"):
            pass
    assert list(tmp_path.iterdir()) == []
