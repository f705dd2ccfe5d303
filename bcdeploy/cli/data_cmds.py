"""`bcdeploy data synth` and `bcdeploy prepare`."""

from __future__ import annotations

import click

from bcdeploy.cli._progress import progress


@click.group()
def data() -> None:
    """Data sets: generate DMID-like data."""


@data.command("synth")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Directory to write the data set to.")
@click.option("--count", default=20, show_default=True, type=click.IntRange(1, 5000))
@click.option("--min-size", default=1000, show_default=True, type=int, help="Smallest long side in px.")
@click.option("--max-size", default=1400, show_default=True, type=int, help="Largest long side in px (DMID: ~6000).")
@click.option("--layout", type=click.Choice(["figshare", "original", "seed"]), default="figshare", show_default=True,
              help="figshare: DMID as published; original: the original project's folders (`seed` is its old name).")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--y-origin", type=click.Choice(["top", "bottom"]), default="bottom", show_default=True,
              help="Origin of y in the metadata (MIAS counts from the bottom).")
def synth(out: str, count: int, min_size: int, max_size: int, layout: str, seed: int, y_origin: str) -> None:
    """Generate a DMID-like data set (images, masks, metadata) at real or small sizes."""
    from bcdeploy.data.synth import synthesize

    with progress("synth") as tick:
        cases = synthesize(out, count, min_size=min_size, max_size=max_size, layout=layout, seed=seed, y_origin=y_origin,
                           on_image=lambda c: tick(c, count))
    abnormal = sum(1 for c in cases if not c.rows[0].is_normal)
    click.echo(f"wrote {len(cases)} images ({abnormal} with lesions) to {out} [{layout} layout]")


@data.command("dicom")
@click.argument("images", nargs=-1, required=True, type=click.Path(dir_okay=False, exists=True))
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Folder for <stem>.dcm per image.")
@click.option("--metadata", type=click.Path(dir_okay=False), help="DMID metadata: laterality and view of each image.")
def dicom_wrap(images: tuple[str, ...], out: str, metadata: str | None) -> None:
    """Wrap images (e.g. generated DMID TIFFs) as DICOM mammograms, to try the DICOM outputs on them."""
    from pathlib import Path

    from bcdeploy.data.mammogram_dicom import wrap_images
    from bcdeploy.fileio import refuse_overlap

    refuse_overlap(Path(out), list(images))
    views = {}
    if metadata:
        from bcdeploy.data.metadata import read_metadata

        views = {row.image_id: row.view for row in read_metadata(metadata) if row.view}
    written = wrap_images([Path(p) for p in images], Path(out), views=views)
    click.echo(f"wrote {len(written)} DICOM mammogram(s) to {out}")


@click.command()
@click.option("--images-dir", required=True, type=click.Path(file_okay=False))
@click.option("--masks-dir", required=True, type=click.Path(file_okay=False))
@click.option("--metadata", required=True, type=click.Path(dir_okay=False), help="Info.txt, .xlsx or .csv")
@click.option("--output-dir", required=True, type=click.Path(file_okay=False))
@click.option("--categories", multiple=True, default=("B", "M"), show_default=True,
              help="Lesion classes to label, in index order; repeat or give 'B M'.")
@click.option("--binary", is_flag=True, help="One 'tumor' class (0/1) instead of benign/malignant.")
@click.option("--resize-ratio", default=1.0, show_default=True, type=float)
@click.option("--train-ratio", default=0.8, show_default=True, type=float)
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--image-format", type=click.Choice(["jpg", "png"]), default="jpg", show_default=True)
@click.option("--skip-bad", is_flag=True, help="List bad inputs in the report instead of stopping.")
@click.option("--no-normals", is_flag=True, help="Leave lesion-free images out.")
@click.option("--y-origin", type=click.Choice(["auto", "top", "bottom"]), default="auto", show_default=True)
@click.option("--overwrite", is_flag=True, help="Replace a non-empty output directory.")
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1, 64))
@click.option("--mask-threshold", default=128, show_default=True, type=click.IntRange(1, 255),
              help="Mask pixels >= this are lesion (DMID masks are 0/255).")
@click.option("--min-lesion-area", default=16, show_default=True, type=click.IntRange(0),
              help="Drop mask components smaller than this many pixels (original resolution); counted in the manifest.")
def prepare(images_dir, masks_dir, metadata, output_dir, categories, binary, resize_ratio, train_ratio, seed,
            image_format, skip_bad, no_normals, y_origin, overwrite, workers, mask_threshold, min_lesion_area) -> None:
    """Turn DMID into MMSeg's layout (images/, annotations/, manifest.json).

    OUTPUT_DIR may not equal, contain or lie inside an input (refused, with or without --overwrite).
    """
    from bcdeploy.data.prepare import PrepareOptions
    from bcdeploy.data.prepare import prepare as run_prepare

    cats = tuple(c.upper() for item in categories for c in item.replace(",", " ").split())
    options = PrepareOptions(
        images_dir=images_dir, masks_dir=masks_dir, metadata=metadata, output_dir=output_dir, categories=cats,
        binary=binary, resize_ratio=resize_ratio, train_ratio=train_ratio, seed=seed, image_format=image_format,
        skip_bad=skip_bad, include_normals=not no_normals, y_origin=y_origin, overwrite=overwrite, workers=workers,
        mask_threshold=mask_threshold, min_lesion_area=min_lesion_area)
    with progress("prepare") as tick:
        report = run_prepare(options, on_progress=tick)
    counts = report.counts
    click.echo(f"prepared {counts['images']} images (train {counts['train']}, val {counts['val']}, "
               f"normal {counts['normal']}); y origin: {report.y_origin}")
    click.echo(f"unmatched components: {report.unmatched_components}, unmatched rows: {report.unmatched_rows}, "
               f"skipped: {len(report.skipped)}")
    click.echo(f"mask components under {min_lesion_area} px dropped: {report.dropped_components}, "
               f"masks with values other than 0/255: {report.masks_not_0_255} (histograms in the manifest)")
    for item in report.skipped:
        click.echo(f"  skipped {item['id']}: {item['reason']}", err=True)
    click.echo(f"manifest: {report.manifest_path}")
