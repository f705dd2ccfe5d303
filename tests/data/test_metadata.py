import pytest

from bcdeploy.data.metadata import read_metadata
from bcdeploy.errors import DataError


def test_info_txt_rows(tmp_path):
    path = tmp_path / "Info.txt"
    path.write_text("IMG001 G MISC M 1567 3644 295\nIMG001 G CALC B - - -\nIMG002 F NORM\nIMG003 D MISC+CALC b 10 20 5\n")
    rows = read_metadata(path)
    assert [(r.image_id, r.abnormality, r.severity) for r in rows] == [
        ("IMG001", "MISC", "M"), ("IMG001", "CALC", "B"), ("IMG002", "NORM", None), ("IMG003", "MISC+CALC", "B")]
    assert rows[0].x == 1567 and rows[0].y == 3644 and rows[0].radius == 295
    assert rows[1].x is None and not rows[1].has_centre
    assert rows[2].is_normal


def test_csv_with_seed_columns(tmp_path):
    path = tmp_path / "metadata.csv"
    path.write_text("filename,mammogram_view,background,abnormality,class_abnormality,x,y,radius\n"
                    "IMG001.tif,MLOLT,G,SPIC,M,100,200,30\nIMG002.tif,CCRT,F,NORM,-,-,-,-\n")
    rows = read_metadata(path)
    assert rows[0].image_id == "IMG001" and rows[0].view == "MLOLT" and rows[0].severity == "M"
    assert rows[1].is_normal and rows[1].x is None


@pytest.mark.parametrize("line, message", [
    ("IMG001 G MISC X 1 2 3", "unknown class code"),
    ("IMG001 G BLOB M 1 2 3", "unknown abnormality code"),
    ("IMG001 G MISC M one 2 3", "is not a number"),
    ("IMG001 G", "expected"),
])
def test_bad_rows_name_file_and_line(tmp_path, line, message):
    path = tmp_path / "Info.txt"
    path.write_text("IMG000 F NORM\n" + line + "\n")
    with pytest.raises(DataError, match=message) as err:
        read_metadata(path)
    assert f"{path}:2" in str(err.value)


def test_non_utf8_is_reported(tmp_path):
    path = tmp_path / "Info.txt"
    path.write_bytes(b"IMG001 G MISC M 1 2 3 \xff\xfe\n")
    with pytest.raises(DataError, match="not UTF-8"):
        read_metadata(path)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="not found"):
        read_metadata(tmp_path / "nope.txt")
