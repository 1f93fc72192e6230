import os

import pandas as pd
import pytest

from privsynth.errors import DataError
from privsynth.io import atomic_write_text, read_table


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("empty.csv", b"", "is empty"),
        ("header.csv", b"a,b\n", "has a header but no rows"),
        ("latin1.csv", "a,b\ncaf\xe9,1\n".encode("latin-1"), "is not UTF-8"),
        ("dupes.csv", b"a,a\n1,2\n", "duplicate column name"),
        ("blank.csv", b"a,\n1,2\n", "have no name"),
        ("data.xlsx", b"x", "unknown format"),
        ("trunc.parquet", b"PAR1\x00\x00garbage", "cannot read data file"),
    ],
)
def test_bad_files_give_one_clear_error(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DataError, match=message) as err:
        read_table(path)
    assert str(path) in str(err.value)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        read_table(tmp_path / "nope.csv")
    with pytest.raises(DataError, match="is a directory"):
        read_table(tmp_path)


def test_csv_and_parquet_read_the_same_table(tmp_path):
    df = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    df.to_csv(tmp_path / "t.csv", index=False)
    df.to_parquet(tmp_path / "t.parquet")
    pd.testing.assert_frame_equal(
        read_table(tmp_path / "t.csv"), read_table(tmp_path / "t.parquet"), check_dtype=False
    )


def test_truncated_parquet_of_a_real_file_is_refused(tmp_path):
    pd.DataFrame({"a": range(1000)}).to_parquet(tmp_path / "t.parquet")
    data = (tmp_path / "t.parquet").read_bytes()
    (tmp_path / "t.parquet").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="cannot read data file"):
        read_table(tmp_path / "t.parquet")


def test_atomic_write_replaces_whole_and_leaves_no_temp_on_failure(tmp_path, monkeypatch):
    target = tmp_path / "out.json"
    atomic_write_text(target, "old")
    atomic_write_text(target, "new", mode=0o600)
    assert target.read_text() == "new" and (target.stat().st_mode & 0o777) == 0o600

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_text(target, "newer")
    assert target.read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]


def test_rows_with_more_fields_than_the_header_are_refused(tmp_path):
    # pandas would silently turn the first column into the index and shift every value.
    (tmp_path / "shifted.csv").write_text("a,b\n1,2,3\n4,5,6\n")
    with pytest.raises(DataError, match="more fields than the header"):
        read_table(tmp_path / "shifted.csv")
