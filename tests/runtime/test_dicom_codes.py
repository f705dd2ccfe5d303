"""One code table for every DICOM object (runtime/results/dicom/codes.py): the writers hold no code
literal, every table entry is the standard's where pydicom's PS3.16 dictionary has the concept, and
the SEG and the SR name a class with the same code and meaning because they read the same entry."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bcdeploy.runtime.results.dicom import codes

WRITERS = sorted((Path(codes.__file__).parent).glob("*.py"))
# What a coded concept typed by hand looks like: a scheme designator or a code value in quotes, or
# a Code/CodedConcept built from literals.
LITERAL = re.compile(r"""["'](SCT|DCM|UCUM|SRT|LN)["']|["']\d{5,}["']|(Code|CodedConcept)\(\s*(value=)?["']""")


def test_the_scan_finds_a_code_typed_by_hand() -> None:
    assert LITERAL.search('code("86049000", "SCT", "Malignant")') and LITERAL.search("CodedConcept(value='111042'")
    assert not LITERAL.search("codes.MALIGNANT.code()")


@pytest.mark.parametrize("writer", [p for p in WRITERS if p.name != "codes.py"], ids=lambda p: p.name)
def test_no_writer_holds_a_code_literal(writer: Path) -> None:
    found = [line.strip() for line in writer.read_text().splitlines() if LITERAL.search(line)]
    assert found == [], f"{writer.name} types codes by hand; take them from codes.py"


def test_every_entry_is_the_standards_where_pydicom_knows_the_concept() -> None:
    from pydicom.sr import _concepts_dict

    known: dict[tuple[str, str], set[str]] = {}  # PS3.16 spells some concepts in more than one way
    for scheme, by_name in _concepts_dict.concepts.items():
        for entries in by_name.values():
            for value, (meaning, _) in entries.items():
                # pydicom's source puts a zero-width space after some slashes; the standard's text has none
                known.setdefault((scheme, value), set()).add(meaning.replace("\u200b", ""))
    entries = [v for v in vars(codes).values() if isinstance(v, codes.Concept)]
    entries += [*codes.CLASS_CONCEPTS.values(), *codes.LATERALITY.values(), *codes.SIDE.values(), *codes.VIEWS.values()]
    assert len(entries) > 40
    for concept in entries:
        if (concept.scheme, concept.value) in known:
            assert concept.meaning in known[(concept.scheme, concept.value)], concept
        assert concept.source, concept


def test_the_seg_algorithm_family_is_artificial_intelligence_not_manual_processing() -> None:
    """The SEG's family read DCM 123109 'Neural network': 123109 is Manual Processing in CID 7162."""
    assert (codes.ARTIFICIAL_INTELLIGENCE.value, codes.ARTIFICIAL_INTELLIGENCE.meaning) == ("123110",
                                                                                        "Artificial Intelligence")


def test_no_entry_holds_a_character_an_lo_value_cannot():
    """A meaning goes into Code Meaning (LO, default character set): printable ASCII only."""
    entries = [v for v in vars(codes).values() if isinstance(v, codes.Concept)]
    for concept in [*entries, *codes.SIDE.values(), *codes.VIEWS.values()]:
        assert concept.meaning.isascii() and concept.meaning.isprintable() and len(concept.meaning) <= 64, concept
