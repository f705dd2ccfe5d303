"""The option sections of the runtime commands (`infer`, `predict`, `serve`, `gateway`), one class each.

As Polygraphy's argument groups: a group owns its options (shown as one titled section in --help,
through cloup) and parses their values into one typed object, which the command body hands to the
library. A group pops exactly the options it declared, so an option no group owns is an error in
the command's body, not a silently ignored value (tests/cli/test_option_tree.py walks the commands).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Self

import click
import cloup

from bcdeploy.cli._options import backend_option_list, model_help, parse_hw, runner_options
from bcdeploy.runtime.images.imageio import DEFAULT_MAX_PIXELS
from bcdeploy.runtime.results.outputs import OUTPUT_KINDS, STUDY_KINDS

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


def _names(options: list[Callable]) -> tuple[str, ...]:
    """The parameter names click gives `options` (applied to a throwaway function to read them)."""
    def probe() -> None: ...

    for option in options:
        probe = option(probe)
    return tuple(param.name for param in getattr(probe, "__click_params__", []))


class OptionGroup:
    """One help section: `options()` declares it, `section()` adds it to a command, `parse(values)` pops
    its values from the command's keyword arguments and builds the typed object (`build`)."""

    title: ClassVar[str]

    @classmethod
    def options(cls) -> list[Callable]:
        raise NotImplementedError

    @classmethod
    def section(cls) -> Callable:
        return section(cls.title, *cls.options())

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return _names(cls.options())

    @classmethod
    def parse(cls, values: dict[str, Any], **context: Any) -> Self:
        return cls.build(**{name: values.pop(name) for name in cls.names()}, **context)

    @classmethod
    def build(cls, **values: Any) -> Self:
        raise NotImplementedError


def parsed_all(values: dict[str, Any]) -> None:
    """After every section parsed its options: one left over is an option no section owns (a bug here)."""
    if values:
        raise RuntimeError(f"options no section parsed: {sorted(values)}")


def option_groups() -> list[type[OptionGroup]]:
    """Every group the CLI defines (each command module defines its own beside the shared ones here)."""
    found, todo = [], list(OptionGroup.__subclasses__())
    while todo:
        group = todo.pop()
        found.append(group)
        todo += group.__subclasses__()
    return found


# --- Inputs ------------------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class InputArgs(OptionGroup):
    title: ClassVar[str] = "Inputs"
    recursive: bool
    targets: dict[str, str]
    max_pixels: int
    frame: int | None
    modalities: frozenset[str]

    @classmethod
    def options(cls) -> list[Callable]:
        return [
            click.option("--recursive", "-r", is_flag=True, help="Descend into sub-folders of INPUTS."),
            click.option("--metadata", type=click.Path(dir_okay=False), help="DMID metadata: overlays show `| Target: B`."),
            MAX_PIXELS,
            FRAME,
            click.option("--modalities", default="MG,DX,CR", show_default=True, metavar="LIST",
                         help="DICOM modalities to segment; any other (a CT, an MR) is one failure line."),
        ]

    @classmethod
    def build(cls, *, recursive: bool, metadata: str | None, max_pixels: int, frame: int | None,
              modalities: str) -> InputArgs:
        targets = {}
        if metadata:
            from bcdeploy.data.metadata import image_targets

            targets = image_targets(metadata)
        chosen = frozenset(m.strip().upper() for m in modalities.split(",") if m.strip())
        if not chosen:
            raise click.BadParameter("name at least one modality, e.g. MG", param_hint="--modalities")
        return cls(recursive=recursive, targets=targets, max_pixels=max_pixels, frame=frame, modalities=chosen)


# --- Outputs -----------------------------------------------------------------------------------------
_KINDS = ",".join([*(kind.save_name for kind in OUTPUT_KINDS), *STUDY_KINDS])


@dataclass(frozen=True, kw_only=True)
class OutputArgs(OptionGroup):
    title: ClassVar[str] = "Outputs"
    out: Path
    save: frozenset[str]
    overwrite: bool
    no_phi: bool
    cad_threshold: float | None = None

    @classmethod
    def options(cls) -> list[Callable]:
        return [
            click.option("--out", default="infer_out", show_default=True, type=click.Path(file_okay=False),
                         help="Output folder: one folder per output kind mirroring the inputs, ledger.sqlite, "
                              "results.json, lesions.csv."),
            click.option("--save", default=None, metavar=_KINDS,
                         help="Output kinds (comma-separated) [default: masks,biner,vis]; `seg` is a DICOM SEG per DICOM "
                              "input, `cad` one Mammography CAD SR per study. Reports always."),
            click.option("--cad-threshold", type=click.FloatRange(0.0, 1.0), default=None,
                         help="CAD marks at or above this lesion score are 'Presentation Required', below it "
                              "'Optional' [default: the operating point in the model's sidecar, else 0.5]."),
            click.option("--dicom-seg", is_flag=True, help="Same as adding `seg` to --save."),
            click.option("--overwrite", is_flag=True, help="Recompute images the ledger says are done and unchanged."),
            click.option("--no-phi", is_flag=True,
                         help="Keep patient/study/series/instance identifiers out of results.json and lesions.csv."),
        ]

    @classmethod
    def build(cls, *, out: str, save: str | None, dicom_seg: bool, overwrite: bool, no_phi: bool,
              cad_threshold: float | None, pacs: bool = False) -> OutputArgs:
        """A bad --save is one error line before any model loads. A PACS run always writes SEGs: they are
        what goes back."""
        from bcdeploy.runtime.results.outputs import parse_save

        chosen = parse_save(save, dicom_seg=dicom_seg or pacs)
        if cad_threshold is not None and "cad" not in chosen:
            raise click.BadParameter("sets the CAD SR's operating point: add `cad` to --save",
                                     param_hint="--cad-threshold")
        return cls(out=Path(out), save=chosen, overwrite=overwrite, no_phi=no_phi, cad_threshold=cad_threshold)


def run_options(inputs: InputArgs, outputs: OutputArgs, *, batch_size: int, extra_inputs: list[str],
                on_progress: Callable[[str, int], None] | None, deliver: bool = False) -> Any:
    """`deliver`: the run's DICOM results are queued in the outbox for a PACS (runtime/run/outbox.py)."""
    from bcdeploy.runtime.results.outputs import dicom_kinds
    from bcdeploy.runtime.run import RunOptions

    return RunOptions(out=outputs.out, batch_size=batch_size, overwrite=outputs.overwrite, recursive=inputs.recursive,
                      targets=inputs.targets, max_pixels=inputs.max_pixels, on_progress=on_progress,
                      extra_inputs=extra_inputs, frame=inputs.frame, no_phi=outputs.no_phi, save=outputs.save,
                      modalities=inputs.modalities, cad_threshold=outputs.cad_threshold,
                      deliver=dicom_kinds(outputs.save) if deliver else frozenset())


# --- Model and backend ---------------------------------------------------------------------------------
BATCH_SIZE = click.option("--batch-size", default=1, show_default=True, type=click.IntRange(1, 256),
                          help="Images per backend call.")
MODEL = click.option("--model", "--engine", "model", type=click.Path(dir_okay=False), help=model_help())


@dataclass(frozen=True, kw_only=True)
class ModelArgs(OptionGroup):
    """--model (also spelled --engine, as the product page does), --batch-size and every backend's options;
    `backend` is the options object of the model's backend (an option it does not take: one error line)."""

    title: ClassVar[str] = "Model and backend"
    model: str
    batch_size: int
    backend: Any

    @classmethod
    def options(cls) -> list[Callable]:
        return [MODEL, BATCH_SIZE, *backend_option_list()]

    @classmethod
    def build(cls, *, model: str | None, batch_size: int = 1, **backend: Any) -> ModelArgs:
        if not model:
            raise click.UsageError("Missing option '--model'.")
        return cls(model=model, batch_size=batch_size, backend=runner_options(model, **backend))


class NodeModelArgs(ModelArgs):
    """The node's model section: no --batch-size (a study's images are segmented as they come); no --model
    parses to None, since the node's body decides what it needs (only --status works without a model)."""

    @classmethod
    def options(cls) -> list[Callable]:
        return [MODEL, *backend_option_list()]

    @classmethod
    def build(cls, *, model: str | None, batch_size: int = 1, **backend: Any) -> ModelArgs | None:  # type: ignore[override]
        return None if model is None else ModelArgs.build(model=model, batch_size=batch_size, **backend)


# --- Sliding window ----------------------------------------------------------------------------------
class SlidingWindowArgs(OptionGroup):
    """Parses into a runtime SlidingWindow, or None without --sliding-window."""

    title: ClassVar[str] = "Sliding window"

    @classmethod
    def options(cls) -> list[Callable]:
        return [
            click.option("--sliding-window", is_flag=True, help="Tile the full-resolution image instead of resizing it."),
            click.option("--window", default=None, metavar="HxW", help="Tile size [default: the model's input size]."),
            click.option("--overlap", default=0.25, show_default=True, type=click.FloatRange(0.0, 0.95)),
            click.option("--blend", type=click.Choice(["gaussian", "constant"]), default="gaussian", show_default=True),
        ]

    @classmethod
    def build(cls, *, sliding_window: bool, window: str | None, overlap: float, blend: str,  # type: ignore[override]
              batch_size: int) -> Any:
        if not sliding_window:
            return None
        from bcdeploy.runtime.model.segmenter import SlidingWindow

        return SlidingWindow(parse_hw(window), overlap, blend, batch_size)


# --- DICOM and PACS ----------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class PacsArgs(OptionGroup):
    title: ClassVar[str] = "DICOM and PACS"
    url: str | None
    studies: tuple[str, ...]
    dry_run: bool
    stow: str | None

    @classmethod
    def options(cls) -> list[Callable]:
        return [
            click.option("--dicomweb", "dicomweb", default=None, metavar="URL",
                         help="Read the mammograms from this DICOMweb server instead of INPUTS, store the SEGs back."),
            STOW,
            click.option("--study", "studies", multiple=True, metavar="UID",
                         help="With --dicomweb: Study Instance UID (repeatable); default: every study holding MG "
                              "images."),
            click.option("--dry-run", is_flag=True, help="With --dicomweb: list what would be fetched, and exit."),
        ]

    @classmethod
    def build(cls, *, dicomweb: str | None, stow: str | None, studies: tuple[str, ...], dry_run: bool) -> PacsArgs:
        return cls(url=dicomweb, studies=tuple(studies), dry_run=dry_run, stow=stow)

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


def replicas_of(replicas: tuple[int, int] | None, cpus_per_replica: float | None,
                gpus_per_replica: float | None) -> Any:
    """A scale.cluster.Replicas from the replica options; None when none was given."""
    from bcdeploy.scale.cluster import Replicas

    if replicas is None and cpus_per_replica is None and gpus_per_replica is None:
        return None
    return Replicas(count=replicas or (1, 1), cpus=1.0 if cpus_per_replica is None else cpus_per_replica,
                    gpus=gpus_per_replica or 0.0)


class ScaleOutArgs(OptionGroup):
    """`infer --ray`: parses into a scale.ray_infer.RayOptions, or None without --ray."""

    title: ClassVar[str] = "Scale-out"

    @classmethod
    def options(cls) -> list[Callable]:
        return [
            click.option("--ray", "ray_address", default=None, metavar="ADDRESS",
                         help="Run on Ray: 'local' (a private loopback-only Ray), 'auto' or a cluster address. --out "
                              "and INPUTS must be shared storage at the same paths on every node (README 'Scale out')."),
            *replica_options(),
            CONNECT_TIMEOUT,
        ]

    @classmethod
    def build(cls, *, ray_address: str | None, connect_timeout_s: float, **replica: Any) -> Any:
        """Replica options without --ray are refused."""
        replicas = replicas_of(**replica)
        if not ray_address:
            if replicas is not None:
                raise click.UsageError("--replicas, --cpus-per-replica and --gpus-per-replica need --ray ADDRESS")
            return None
        from bcdeploy.scale.cluster import Replicas
        from bcdeploy.scale.ray_infer import RayOptions

        return RayOptions(address=ray_address, replicas=replicas or Replicas(), connect_timeout_s=connect_timeout_s)
