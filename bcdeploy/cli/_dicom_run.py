"""The DICOM options of `infer` and `predict` (--frame, --dicom-seg, --no-phi) and the PACS options of
`infer` (--dicomweb, --study, --dry-run): parsed here, forwarded to the run loop as RunOptions fields
and an input source (bcdeploy.runtime.run.sources, bcdeploy.pacs.source)."""

from __future__ import annotations

from dataclasses import dataclass

import click

FILE_OPTIONS = [
    click.option("--frame", default=None, type=click.IntRange(0),
                 help="Frame (0-based) of multi-frame DICOM objects (tomosynthesis); without it they are refused."),
    click.option("--dicom-seg", is_flag=True,
                 help="Also write a DICOM SEG per DICOM input: seg/<name>.dcm (non-DICOM inputs get none)."),
    click.option("--no-phi", is_flag=True,
                 help="Keep patient/study/series/instance identifiers out of results.json and lesions.csv."),
]
PACS_OPTIONS = [
    click.option("--dicomweb", "dicomweb", default=None, metavar="URL",
                 help="Read the mammograms from this DICOMweb server instead of INPUTS, store the SEGs back."),
    click.option("--study", "studies", multiple=True, metavar="UID",
                 help="With --dicomweb: Study Instance UID (repeatable); default: every study holding MG images."),
    click.option("--dry-run", is_flag=True, help="With --dicomweb: list what would be fetched, and exit."),
]
KEYS = ("frame", "dicom_seg", "no_phi", "dicomweb", "studies", "dry_run")


@dataclass(frozen=True, kw_only=True)
class DicomValues:
    frame: int | None = None
    dicom_seg: bool = False
    no_phi: bool = False
    dicomweb: str | None = None
    studies: tuple[str, ...] = ()
    dry_run: bool = False

    def run_options(self) -> dict:
        """RunOptions fields; a PACS run always writes SEGs (they are what goes back)."""
        return {"frame": self.frame, "dicom_seg": self.dicom_seg or bool(self.dicomweb), "no_phi": self.no_phi}


def dicom_options(pacs: bool):
    """Decorator adding the DICOM options (and the PACS ones when `pacs`)."""
    def decorate(fn):
        for decorator in reversed(FILE_OPTIONS + (PACS_OPTIONS if pacs else [])):
            fn = decorator(fn)
        return fn
    return decorate


def pop_dicom_values(values: dict) -> DicomValues:
    """Take the DICOM options out of a command's keyword arguments (the rest go to the backend)."""
    return DicomValues(**{k: values.pop(k) for k in KEYS if k in values})


def input_source(inputs: tuple[str, ...], dicom: DicomValues):
    """INPUTS, or the PACS source; exactly one of them (a usage error otherwise)."""
    if dicom.dicomweb and inputs:
        raise click.UsageError("give either INPUTS or --dicomweb URL, not both")
    if not dicom.dicomweb:
        if dicom.studies or dicom.dry_run:
            raise click.UsageError("--study and --dry-run go with --dicomweb URL")
        if not inputs:
            raise click.UsageError("missing INPUTS (files, folders or patterns), or --dicomweb URL")
        return inputs
    from bcdeploy.pacs.source import PacsSource

    return PacsSource(dicom.dicomweb, dicom.studies, no_phi=dicom.no_phi)


def print_plan(source) -> None:
    """--dry-run: the instances a run would fetch, one per line, as `bcdeploy dicom list` prints them."""
    echo_refs(source.plan(), f"would be fetched from {source.url}; nothing fetched")


def echo_refs(refs, what: str, as_json: bool = False) -> None:
    """One instance per line (study, series, SOP instance UID), then a count on stderr."""
    import json
    from dataclasses import asdict

    for ref in refs:
        click.echo(json.dumps(asdict(ref)) if as_json else f"{ref.study_uid}  {ref.series_uid}  {ref.sop_uid}")
    click.echo(f"{len(refs)} mammogram(s) in {len({r.study_uid for r in refs})} study(ies) {what}", err=True)
