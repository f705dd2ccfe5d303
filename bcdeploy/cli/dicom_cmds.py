"""`bcdeploy dicom info FILE...` and `bcdeploy dicom list --dicomweb URL`: look before you segment."""

from __future__ import annotations

import json
import sys

import click

from bcdeploy.cli._sections import FRAME, MAX_PIXELS
from bcdeploy.fileio import strict_json



@click.group("dicom")
def dicom() -> None:
    """DICOM files and PACS servers: what bcdeploy would read, without decoding or segmenting."""


@dicom.command("info")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="One JSON object per file.")
@click.option("--no-phi", is_flag=True, help="Leave patient, study, series and instance identifiers out.")
@MAX_PIXELS
@FRAME
def info(files, as_json, no_phi, max_pixels, frame) -> None:
    """Transfer syntax, size, laterality, view, spacing and UIDs of each FILE, and whether infer would
    read it (header only: nothing is decoded). A refused file is one line; the exit code is 1 if any was."""
    from pathlib import Path

    from bcdeploy.errors import InputError
    from bcdeploy.runtime.images.dicom import describe_dicom
    from bcdeploy.runtime.run.phi import strip_identifiers

    failed = 0
    for name in files:
        path = Path(name)
        try:
            facts = describe_dicom(_read(path), path, max_pixels=max_pixels, frame=frame)
        except InputError as err:
            failed += 1
            click.echo(f"error: {err}", err=True)
            continue
        facts = strip_identifiers(facts) if no_phi else facts
        click.echo(strict_json({"file": str(path), **facts}) if as_json else _line(path, facts))
    if failed:
        sys.exit(1)


@dicom.command("list")
@click.option("--dicomweb", "url", required=True, help="DICOMweb root, e.g. http://127.0.0.1:8042/dicom-web")
@click.option("--study", "studies", multiple=True, help="Study Instance UID (repeatable); default: every MG study.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per instance.")
def list_cmd(url, studies, as_json) -> None:
    """The mammograms `infer --dicomweb URL` would fetch (its --dry-run), one per line."""
    from bcdeploy.pacs.dicomweb import DicomWebPacs, plan_fetch

    echo_refs(plan_fetch(DicomWebPacs(url), list(studies)), f"on {url}", as_json)


def echo_refs(refs, what: str, as_json: bool = False) -> None:
    """One instance per line (study, series, SOP instance UID), then a count on stderr."""
    from dataclasses import asdict

    for ref in refs:
        click.echo(json.dumps(asdict(ref)) if as_json else f"{ref.study_uid}  {ref.series_uid}  {ref.sop_uid}")
    click.echo(f"{len(refs)} mammogram(s) in {len({r.study_uid for r in refs})} study(ies) {what}", err=True)


def _read(path) -> bytes:
    from bcdeploy.errors import InputError

    try:
        return path.read_bytes()
    except OSError as err:
        raise InputError(f"{path}: cannot read ({err.strerror})") from None


def _line(path, facts: dict) -> str:
    spacing = facts.get("pixel_spacing_mm")
    where = " ".join(str(facts.get(k) or "-") for k in ("laterality", "view_position"))
    return (f"{path}: {facts['columns']}x{facts['rows']} {facts['bits_stored']}-bit, {facts['frames']} frame(s), "
            f"{facts['transfer_syntax_name']}; {where}; spacing "
            f"{'x'.join(f'{v:.4g}' for v in spacing) + ' mm' if spacing else 'unknown'}")
