"""A source image as a derived object may copy it: every attribute we copy checked first.

A SEG, SR or SC is the same patient and study as its source, so it copies the source's Patient and
General Study attributes (highdicom does, from the dataset we hand it). Real archives hold values that
are invalid for their VR or value multiplicity (a Patient Orientation of `CC`, a date of `2019-01-05`,
a 70-character ID) and leave out Type 2 attributes; copied as they are, they make every derived object
invalid (dciodvfy says Error) or make highdicom fail. So a copy of the source is checked here, by rule:
- an attribute whose value pydicom's VR validation refuses, or whose value count is wrong, is LEFT OUT
  when it is optional (Type 3), and made EMPTY when it is Type 2 (present, value unknown);
- Patient Orientation (Type 2C for projection images) must be two valid direction codes (A P R L H F,
  combined, PS3.3 C.7.6.1.1.1); anything else is made empty: a view name (`CC`) is no orientation;
- a person name in one component (`DOE`, no `^`) gets a trailing `^`: the same name, marked as a family
  name only (PS3.5 6.2.1.2), which is how the standard spells it (the bare form is retired);
- a Type 2 attribute that is absent is added empty;
- nothing is invented or guessed: a repaired value never carries content the source did not.
Each repair is one line (`DicomRepair.line`), logged once per attribute and problem by the caller.
"""

from __future__ import annotations

import copy
import logging
import re
import warnings
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

# What names the source image: a derived object references it by these (Type 1, never repaired).
TYPE1_UIDS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID")
# Type 2 attributes of the Patient and General Study modules that derived objects copy (PS3.3 C.7.1.1, C.7.2.1).
TYPE2 = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
         "ReferringPhysicianName", "StudyID", "AccessionNumber")
# Optional attributes of the same modules that a derived object may copy: checked, left out when invalid.
TYPE3 = ("PatientAge", "PatientSize", "PatientWeight", "StudyDescription", "IssuerOfPatientID", "OtherPatientIDs",
         "EthnicGroup", "PatientComments", "PatientBirthTime", "InstitutionName")
_DIRECTION = re.compile(r"^[APRLHF]{1,3}$")


@dataclass(frozen=True)
class DicomRepair:
    keyword: str
    value: str
    action: str  # "made empty" | "left out" | "added empty"
    why: str

    @property
    def line(self) -> str:
        """What was repaired, without the value itself (it may identify the patient), except for
        Patient Orientation, whose value says what is wrong and identifies no one."""
        shown = f" {self.value!r}" if self.value and self.keyword == "PatientOrientation" else ""
        return f"source {self.keyword}{shown} {self.why}: {self.action} in derived objects"


def checked_source(ds: Any, origin: str = "<dataset>") -> tuple[Any, list[DicomRepair]]:
    """A copy of `ds` whose copied attributes are valid, and the repairs made. A missing UID that names
    the source (Type 1) cannot be repaired: no derived object could reference it (InputError)."""
    from bcdeploy.errors import InputError

    missing = [keyword for keyword in TYPE1_UIDS if not str(ds.get(keyword) or "").strip()]
    if missing:
        raise InputError(f"{origin}: the source has no {', '.join(missing)} (Type 1): no derived object can "
                         "reference it")
    source = copy.copy(ds)  # shallow: the elements we change are replaced, never modified in place
    repairs: list[DicomRepair] = []
    for keyword in (*TYPE2, *TYPE3):
        if keyword not in source:
            continue
        problem = _invalid(source[keyword])
        if problem:
            value = str(source[keyword].value)[:80]
            if keyword in TYPE2:
                setattr(source, keyword, "")
                repairs.append(DicomRepair(keyword, value, "made empty", problem))
            else:
                delattr(source, keyword)
                repairs.append(DicomRepair(keyword, value, "left out", problem))
    for keyword in ("PatientName", "ReferringPhysicianName"):
        value = source.get(keyword)
        if value is not None and str(value) and not any(mark in str(value) for mark in "^="):
            setattr(source, keyword, f"{value}^")
            repairs.append(DicomRepair(keyword, "", "completed with a trailing ^",
                                       "is a person name in one component (the retired form)"))
    orientation = source.get("PatientOrientation")
    if orientation is not None and not valid_orientation(orientation):
        source.PatientOrientation = ""
        repairs.append(DicomRepair("PatientOrientation", str(orientation), "made empty",
                                   "is not two direction codes (A, P, R, L, H, F)"))
    for keyword in TYPE2:
        if keyword not in source:
            setattr(source, keyword, "")
            repairs.append(DicomRepair(keyword, "", "added empty", "is missing (Type 2)"))
    return source, repairs


def laterality_of(source: Any) -> str | None:
    """The breast an image shows: its ImageLaterality, else its series' Laterality (archives such as
    CBIS-DDSM record only the series'), else None: never guessed. The one rule the SR and SC follow."""
    for keyword in ("ImageLaterality", "Laterality"):
        if str(source.get(keyword) or "") in ("L", "R"):
            return str(source.get(keyword))
    return None


def log_repairs(repairs: list[DicomRepair], origin: str) -> None:
    """One warning line per kind of repair (attribute and action) per run (runtime/notices.py)."""
    from bcdeploy.runtime.notices import say_once

    for repair in repairs:
        say_once(log, ("repair", repair.keyword, repair.action),
                 f"{origin}: {repair.line} (further files with this defect are repaired silently)")


def _invalid(element: Any) -> str | None:
    """Why pydicom's VR rules refuse the element's value, or None when it is valid."""
    values = element.value if element.VM > 1 else [element.value]
    for value in values:
        if value not in (None, "") and not valid_for_vr(element.VR, value):
            return f"is invalid for VR {element.VR}"  # pydicom's message would repeat the value
    return None


def valid_for_vr(vr: str, value: Any) -> bool:
    """Whether pydicom's VR rules take one value (a DA of `2019-01-05` they do not)."""
    from pydicom import config
    from pydicom.valuerep import validate_value

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            validate_value(vr, value, config.RAISE)
    except (ValueError, TypeError):
        return False
    return True


def valid_orientation(value: Any) -> bool:
    """Patient Orientation as PS3.3 C.7.6.1.1.1 has it: two direction codes (A P R L H F, combined), or
    empty; a view name (`CC`) is no orientation."""
    if value in (None, ""):
        return True
    values = list(value) if not isinstance(value, str) else value.split("\\")
    return len(values) == 2 and all(_DIRECTION.match(str(v)) for v in values)


# What a study-level object (the Mammography CAD SR) copies from its study's images: the Patient and
# General Study attributes, each checked as above.
HEADER_KEYWORDS = (*TYPE2, *TYPE3)


def study_header(source: Any) -> dict[str, Any]:
    """The checked source's Patient and Study attributes as DICOM JSON: what the run keeps of an image
    so that a study's CAD SR can be written after its images are gone from memory (and, in a node,
    from the spool)."""
    from pydicom.dataset import Dataset

    header = Dataset()
    for keyword in HEADER_KEYWORDS:
        if keyword in source:
            header[keyword] = source[keyword]
    return header.to_json_dict()


def header_dataset(header: dict[str, Any] | None) -> Any:
    """The dataset study_header() kept, its attributes checked again (a ledger can be edited): only
    the Patient and Study keywords, each valid or repaired; the Type 2 ones present."""
    from pydicom.dataset import Dataset
    from pydicom.datadict import keyword_for_tag

    dataset = Dataset()
    try:
        parsed = Dataset.from_json(header or {})
    except Exception:  # noqa: BLE001 - a damaged record is an empty header, repaired below
        parsed = Dataset()
    for element in parsed:
        if keyword_for_tag(element.tag) in HEADER_KEYWORDS:
            dataset.add(element)
    for keyword in TYPE1_UIDS:  # placeholders so checked_source's Type 1 rule passes; never copied
        setattr(dataset, keyword, "1.2")
    checked, _ = checked_source(dataset)
    for keyword in TYPE1_UIDS:
        delattr(checked, keyword)
    return checked
