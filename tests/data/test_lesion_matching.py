import numpy as np

from bcdeploy.data.lesion_matching import count_hits, label_components, match_rows
from bcdeploy.data.records import LesionRow


def _mask():
    mask = np.zeros((100, 100), np.uint8)
    mask[10:20, 10:20] = 255  # component A, centre (15, 15)
    mask[60:80, 60:80] = 255  # component B, centre (70, 70)
    mask[85:95, 30:40] = 255  # component C, hit by nothing
    return mask


def row(sev, x=None, y=None, r=5.0, abn="CIRC"):
    return LesionRow("IMG001", abn, sev, x, y, r if x is not None else None)


def test_rows_assign_classes_and_conflicts_become_malignant():
    count, labels, _ = label_components(_mask())
    rows = [row("B", 15, 15), row("B", 70, 70), row("M", 71, 69)]
    result = match_rows(rows, labels, count, "top")
    classes = sorted(result.class_of_component.values(), key=str)
    assert classes.count("B") == 1 and classes.count("M") == 1
    assert result.conflicts and result.conflicts[0]["chosen"] == "M"


def test_unmatched_component_takes_coordinate_less_row_class():
    count, labels, _ = label_components(_mask())
    rows = [row("B", 15, 15), row("M", 70, 70), row("M", abn="CALC")]
    result = match_rows(rows, labels, count, "top")
    unmatched = result.unmatched_components
    assert len(unmatched) == 1 and unmatched[0]["assigned"] == "M"
    assert [r["reason"] for r in result.unmatched_rows] == ["no coordinates"]


def test_unmatched_component_ignored_when_classes_disagree_and_rows_listed():
    count, labels, _ = label_components(_mask())
    rows = [row("B", 15, 15), row("M", 70, 70), row("B", 40, 40)]
    result = match_rows(rows, labels, count, "top")
    assert [u["assigned"] for u in result.unmatched_components] == ["B"]  # the unmatched row's class
    rows = [row("B", 15, 15), row("M", 70, 70)]
    result = match_rows(rows, labels, count, "top")
    assert [u["assigned"] for u in result.unmatched_components] == ["ignore"]
    assert result.unmatched_rows == []


def test_bottom_origin_hits():
    _, labels, _ = label_components(_mask())
    rows = [row("B", 15, 100 - 1 - 15), row("M", 70, 100 - 1 - 70)]
    assert count_hits(rows, labels) == {"top": 0, "bottom": 2}
