"""The option sections of `infer` and `predict`, each parsed into one typed object.

As Polygraphy's argument groups: a group owns its options (shown as one titled section in --help,
through cloup) and turns its values into the object the library takes; a command body only asks
each group in turn. Values a group does not know stay for the next one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import cloup

from bcdeploy.cli._options import backend_option_list, model_help, parse_hw
from bcdeploy.runtime.images.imageio import DEFAULT_MAX_PIXELS
from bcdeploy.runtime.results.outputs import OUTPUT_KINDS

INPUTS_ARGUMENT = click.argument("inputs", nargs=-1)  # required unless --dicomweb (input_source checks)


def section(title: str, *options: Callable) -> Callable:
    return cloup.option_group(title, *options)


# Options several commands share, declared once (tests/cli/test_option_tree.py walks the commands).
MAX_PIXELS = click.option("--max-pixels", default=DEFAULT_MAX_PIXELS, show_default=True, type=click.IntRange(1),
                          help="Refuse images with more pixels than this, from their header, before decoding them.")


CONNECT_TIMEOUT = click.option("--connect-timeout", "connect_timeout_s", default=15.0, show_default=True,
                               type=click.FloatRange(0, min_open=True), metavar="SECONDS",
                               help="How long to try reaching a Ray cluster address before one error line.")
FRAME = click.option("--frame", default=None, type=click.IntRange(0),
                     help="Frame (0-based) of multi-frame DICOM objects (tomosynthesis); without it they are refused.")
STOW = click.option("--stow", default=None, metavar="URL",
                    help="Send the DICOM results (SEG, SR, SC as saved) by STOW-RS to this DICOMweb root, from the "
                         "outbox in --out: a server that is down fails no image, and what is due is sent once it is "
                         "back (infer: by the same command run again; default there: the --dicomweb server).")


def _pop(values: dict[str, Any], *names: str) -> list[Any]:
    return [values.pop(name) for name in names]


# --- Inputs ------------------------------------------------------------------------------------------
INPUTS = section(
    "Inputs",
    click.option("--recursive", "-r", is_flag=True, help="Descend into sub-folders of INPUTS."),
    click.option("--metadata", type=click.Path(dir_okay=False), help="DMID metadata: overlays show `| Target: B`."),
    MAX_PIXELS,
    FRAME,
    click.option("--modalities", default="MG,DX,CR", show_default=True, metavar="LIST",
                 help="DICOM modalities to segment; any other (a CT, an MR) is one failure line."),
)


@dataclass(frozen=True, kw_only=True)
class InputArgs:
    recursive: bool
    targets: dict[str, str]
    max_pixels: int
    frame: int | None
    modalities: frozenset[str]

    @classmethod
    def parse(cls, values: dict[str, Any]) -> InputArgs:
        recursive, metadata, max_pixels, frame, modalities = _pop(values, "recursive", "metadata", "max_pixels",
                                                                  "frame", "modalities")
        targets = {}
        if metadata:
            from bcdeploy.data.metadata import image_targets

            targets = image_targets(metadata)
        chosen = frozenset(m.strip().upper() for m in modalities.split(",") if m.strip())
        if not chosen:
            raise click.BadParameter("name at least one modality, e.g. MG", param_hint="--modalities")
        return cls(recursive=recursive, targets=targets, max_pixels=max_pixels, frame=frame, modalities=chosen)


# --- Outputs -----------------------------------------------------------------------------------------
_KINDS = ",".join(kind.save_name for kind in OUTPUT_KINDS)
OUTPUTS = section(
    "Outputs",
    click.option("--out", default="infer_out", show_default=True, type=click.Path(file_okay=False),
                 help="Output folder: one folder per output kind mirroring the inputs, ledger.sqlite, results.json, "
                      "lesions.csv."),
    click.option("--save", default=None, metavar=_KINDS,
                 help="Output kinds per image (comma-separated) [default: masks,biner,vis]; `seg` is a DICOM SEG per "
                      "DICOM input. Reports always."),
    click.option("--dicom-seg", is_flag=True, help="Same as adding `seg` to --save."),
    click.option("--overwrite", is_flag=True, help="Recompute images the ledger says are done and unchanged."),
    click.option("--no-phi", is_flag=True,
                 help="Keep patient/study/series/instance identifiers out of results.json and lesions.csv."),
)


@dataclass(frozen=True, kw_only=True)
class OutputArgs:
    out: Path
    save: frozenset[str]
    overwrite: bool
    no_phi: bool

    @classmethod
    def parse(cls, values: dict[str, Any], *, pacs: bool = False) -> OutputArgs:
        """A bad --save is one error line before any model loads. A PACS run always writes SEGs: they are
        what goes back."""
        from bcdeploy.runtime.results.outputs import parse_save

        out, save, dicom_seg, overwrite, no_phi = _pop(values, "out", "save", "dicom_seg", "overwrite", "no_phi")
        return cls(out=Path(out), save=parse_save(save, dicom_seg=dicom_seg or pacs), overwrite=overwrite,
                   no_phi=no_phi)


def run_options(inputs: InputArgs, outputs: OutputArgs, *, batch_size: int, extra_inputs: list[str],
                on_progress: Callable[[str, int], None] | None, deliver: bool = False) -> Any:
    """`deliver`: the run's DICOM results are queued in the outbox for a PACS (runtime/run/outbox.py)."""
    from bcdeploy.runtime.results.outputs import dicom_kinds
    from bcdeploy.runtime.run import RunOptions

    return RunOptions(out=outputs.out, batch_size=batch_size, overwrite=outputs.overwrite, recursive=inputs.recursive,
                      targets=inputs.targets, max_pixels=inputs.max_pixels, on_progress=on_progress,
                      extra_inputs=extra_inputs, frame=inputs.frame, no_phi=outputs.no_phi, save=outputs.save,
                      modalities=inputs.modalities,
                      deliver=dicom_kinds(outputs.save) if deliver else frozenset())


# --- Model and backend ---------------------------------------------------------------------------------
BATCH_SIZE = click.option("--batch-size", default=1, show_default=True, type=click.IntRange(1, 256),
                          help="Images per backend call.")


MODEL = click.option("--model", "--engine", "model", type=click.Path(dir_okay=False), help=model_help())


def model_section(*, batch: bool = True) -> Callable:
    """--model (also spelled --engine, as the product page does), --batch-size and every backend's options:
    the section `infer` and `gateway` share (`serve` takes the backend options that apply to replicas)."""
    return section("Model and backend", MODEL, *([BATCH_SIZE] if batch else []), *backend_option_list())


def pop_model(values: dict[str, Any]) -> str:
    model = values.pop("model")
    if not model:
        raise click.UsageError("Missing option '--model'.")
    return model


# --- Sliding window ----------------------------------------------------------------------------------
SLIDING_WINDOW = section(
    "Sliding window",
    click.option("--sliding-window", is_flag=True, help="Tile the full-resolution image instead of resizing it."),
    click.option("--window", default=None, metavar="HxW", help="Tile size [default: the model's input size]."),
    click.option("--overlap", default=0.25, show_default=True, type=click.FloatRange(0.0, 0.95)),
    click.option("--blend", type=click.Choice(["gaussian", "constant"]), default="gaussian", show_default=True),
)


def pop_sliding_window(values: dict[str, Any], batch_size: int) -> Any:
    """A runtime SlidingWindow, or None without --sliding-window."""
    enabled, window, overlap, blend = _pop(values, "sliding_window", "window", "overlap", "blend")
    if not enabled:
        return None
    from bcdeploy.runtime.model.segmenter import SlidingWindow

    return SlidingWindow(parse_hw(window), overlap, blend, batch_size)


# --- DICOM and PACS ----------------------------------------------------------------------------------
PACS = section(
    "DICOM and PACS",
    click.option("--dicomweb", "dicomweb", default=None, metavar="URL",
                 help="Read the mammograms from this DICOMweb server instead of INPUTS, store the SEGs back."),
    STOW,
    click.option("--study", "studies", multiple=True, metavar="UID",
                 help="With --dicomweb: Study Instance UID (repeatable); default: every study holding MG images."),
    click.option("--dry-run", is_flag=True, help="With --dicomweb: list what would be fetched, and exit."),
)


@dataclass(frozen=True, kw_only=True)
class PacsArgs:
    url: str | None
    studies: tuple[str, ...]
    dry_run: bool
    stow: str | None

    @classmethod
    def parse(cls, values: dict[str, Any]) -> PacsArgs:
        url, studies, dry_run, stow = _pop(values, "dicomweb", "studies", "dry_run", "stow")
        return cls(url=url, studies=tuple(studies), dry_run=dry_run, stow=stow)

    @property
    def destination(self) -> Any:
        """Where the run's DICOM results go (pacs/destinations.py), or None: they stay in --out."""
        if not (self.stow or self.url):
            return None
        from bcdeploy.pacs.destinations import StowDestination

        return StowDestination(self.stow or self.url)

    def source(self, inputs: tuple[str, ...], *, no_phi: bool) -> Any:
        """INPUTS, or the PACS source; exactly one of them (a usage error otherwise)."""
        if self.url and inputs:
            raise click.UsageError("give either INPUTS or --dicomweb URL, not both")
        if not self.url:
            if self.studies or self.dry_run:
                raise click.UsageError("--study and --dry-run go with --dicomweb URL")
            if not inputs:
                raise click.UsageError("missing INPUTS (files, folders or patterns), or --dicomweb URL")
            return inputs
        from bcdeploy.pacs.source import PacsSource

        return PacsSource(self.url, self.studies, no_phi=no_phi)


def no_pacs_source(inputs: tuple[str, ...]) -> tuple[str, ...]:
    if not inputs:
        raise click.UsageError("missing INPUTS (files, folders or patterns)")
    return inputs


# --- Scale-out ---------------------------------------------------------------------------------------
class ReplicaCount(click.ParamType):
    """`N` or `MIN:MAX` (autoscaling between them)."""

    name = "N|MIN:MAX"

    def convert(self, value: Any, param: Any, ctx: Any) -> tuple[int, int]:
        from bcdeploy.errors import InputError
        from bcdeploy.scale.cluster import parse_count

        if isinstance(value, tuple):
            return value
        try:
            return parse_count(str(value))
        except InputError as err:
            self.fail(str(err), param, ctx)


def replica_options() -> list[Callable]:
    """The one vocabulary for what each model copy asks of Ray (`serve` and `infer --ray`)."""
    return [
        click.option("--replicas", default=None, type=ReplicaCount(),
                     help="Model replicas (serve: Ray Serve replicas; infer --ray: Ray Data model actors), each "
                          "opening the model once: N, or MIN:MAX to autoscale [default: 1]."),
        click.option("--cpus-per-replica", default=None, type=click.FloatRange(0, min_open=True),
                     help="CPUs each replica reserves from Ray [default: 1]."),
        click.option("--gpus-per-replica", default=None, type=click.FloatRange(0),
                     help="GPUs each replica reserves from Ray (fractions share a GPU) [default: 0]."),
    ]


SCALE_OUT = section(
    "Scale-out",
    click.option("--ray", "ray_address", default=None, metavar="ADDRESS",
                 help="Run on Ray: 'local' (a private loopback-only Ray), 'auto' or a cluster address. --out and "
                      "INPUTS must be shared storage at the same paths on every node (README 'Scale out')."),
    *replica_options(),
    CONNECT_TIMEOUT,
)


def pop_replicas(values: dict[str, Any]) -> Any:
    """A scale.cluster.Replicas from --replicas/--cpus-per-replica/--gpus-per-replica; None when none was
    given."""
    from bcdeploy.scale.cluster import Replicas

    given = dict(zip(("replicas", "cpus", "gpus"), _pop(values, "replicas", "cpus_per_replica", "gpus_per_replica")))
    if all(v is None for v in given.values()):
        return None
    return Replicas(count=given["replicas"] or (1, 1), cpus=1.0 if given["cpus"] is None else given["cpus"],
                    gpus=given["gpus"] or 0.0)


def pop_scale_out(values: dict[str, Any]) -> Any:
    """A scale.ray_infer.RayOptions for --ray, or None; replica options without --ray are refused."""
    address, timeout = values.pop("ray_address"), values.pop("connect_timeout_s")
    replicas = pop_replicas(values)
    if not address:
        if replicas is not None:
            raise click.UsageError("--replicas, --cpus-per-replica and --gpus-per-replica need --ray ADDRESS")
        return None
    from bcdeploy.scale.cluster import Replicas
    from bcdeploy.scale.ray_infer import RayOptions

    return RayOptions(address=address, replicas=replicas or Replicas(), connect_timeout_s=timeout)
