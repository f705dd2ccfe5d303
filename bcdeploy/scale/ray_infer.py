"""`bcdeploy infer ... --ray ADDRESS`: the run pipeline on a Ray cluster, with Ray Data.

A second driver of the same run (runtime/run/driver.py). The run around it is the local one's
(runtime/run/loop.execute: inputs, output names, the ledger's run row, reports); this driver moves
the same `Work` records through the same reader, model step and writer, on Ray:
  read, hash, resume rule, decode   tasks          Reader.read (the resume rule needs the bytes'
                                                   SHA-256, so it runs where the bytes are read)
  segment                           actor pool     run.segment; each actor opens the model once
                                                   from bytes in the object store (no copy on nodes)
  render, write outputs atomically  tasks          Writer.write, which returns the ledger row
and commits each row that comes back, one transaction per image, in this process.
Faults: a task lost with its node is retried, an actor is restarted and its tasks retried (Ray
Data's defaults, see _dataset); outputs go atomically to deterministic paths, so a retried write
replaces, never doubles; the ledger is keyed by source, so every input has exactly one row.
`--out` and the inputs must be the same paths on every node (shared storage): the records carry
paths as the user gave them, and the reader and writer resolve them against this process's working
folder; `--out` is checked at start by a probe write on each node.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import tempfile
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bcdeploy.errors import InputError, OutputError
from bcdeploy.runtime.model.backends import BackendOptions
from bcdeploy.runtime.run.driver import Interrupts, OpenedModel, RunPlan, RunSummary, commit
from bcdeploy.runtime.run.loop import RunOptions, execute
from bcdeploy.runtime.run.reader import Reader, Resume
from bcdeploy.runtime.run.segment import segment
from bcdeploy.runtime.run.sources import FileSource
from bcdeploy.runtime.run.work import Work
from bcdeploy.runtime.run.writer import Writer
from bcdeploy.scale.cluster import DEFAULT_CONNECT_TIMEOUT_S, Replicas, check_fits, connect

TASK_CPUS = 0.25  # read/decode and render/write tasks: codecs and I/O; the model actors hold the CPUs
RETRIES = 5  # the one plain task (_describe), for system failures (a node lost)


@dataclasses.dataclass(frozen=True, kw_only=True)
class RayOptions:
    address: str = "local"  # local (a private loopback-only Ray) | auto | a cluster address
    replicas: Replicas = dataclasses.field(default_factory=Replicas)  # model actors: (MIN, MAX), CPUs, GPUs
    backend: BackendOptions | None = None
    sliding_window: Any = None  # segmenter.SlidingWindow
    connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S


def run_on_ray(model_path: str | Path, inputs: Sequence[str], options: RunOptions, scale: RayOptions) -> RunSummary:
    """Segment `inputs` on the Ray at `scale.address`; the same outputs, ledger and reports as loop.run."""
    model_path = Path(model_path)
    if not model_path.is_file():
        raise InputError(f"{model_path}: model file not found")
    source = FileSource(inputs, options.recursive, base=Path.cwd())
    return execute(source, options, RayDriver(model_path, scale, Path(os.path.abspath(options.out))))


class RayDriver:
    def __init__(self, model_path: Path, scale: RayOptions, out: Path) -> None:
        self.model_path, self.scale, self.out = model_path, scale, out
        self._connected = False
        self._blob: Any = None

    def open(self, reader: Reader, works: list[Work]) -> OpenedModel:
        import ray

        from bcdeploy.scale.model_blob import ModelBlob

        connect(self.scale.address, max(256 * 2**20, 3 * self.model_path.stat().st_size),
                purpose="bcdeploy infer --ray", timeout_s=self.scale.connect_timeout_s)
        self._connected = True
        if self.scale.address == "local":
            check_fits(self.scale.replicas, extra_cpus=TASK_CPUS)
        check_writable(self.out)
        self._blob = ModelBlob.put(self.model_path)
        replicas = self.scale.replicas
        describe = ray.remote(_describe).options(num_cpus=replicas.cpus, num_gpus=replicas.gpus, max_retries=RETRIES)
        model: OpenedModel = ray.get(describe.remote(self._blob, self.scale))
        model.description["model"] = str(self.model_path)  # the file given, not the worker's private copy
        return model

    def close(self) -> None:
        if self._connected:
            import ray

            ray.shutdown()
            self._connected = False

    def process(self, plan: RunPlan, summary: RunSummary, interrupts: Interrupts) -> OutputError | None:
        """Stream every record through Ray Data; each one that comes back is one ledger transaction."""
        import ray

        if not plan.works:
            return None
        # the workers' files: --out as an absolute path (shared storage), inputs against this folder
        resume = dataclasses.replace(plan.resume, out=self.out)
        writer = dataclasses.replace(plan.writer, out=self.out)
        dataset = _dataset(plan, resume, writer, self.scale, self._blob)
        fatal: list[OutputError] = []
        interrupts.armed = True
        try:
            for record in dataset.iter_rows():
                work: Work = record["work"]
                commit(work, plan, summary, fatal)
                if plan.on_progress:
                    plan.on_progress(work.name, len(plan.works))
                if fatal:
                    break
        except KeyboardInterrupt:
            summary.interrupted = True
        except ray.exceptions.RayError as err:  # retries spent, the cluster gone: stop with one line, keep the rest
            detail = (str(err).strip().splitlines() or [type(err).__name__])[0][:300]
            fatal.append(OutputError(f"the Ray pipeline stopped ({type(err).__name__}: {detail})"))
        finally:
            interrupts.armed = False
        return fatal[0] if fatal else None


def check_writable(out: Path) -> None:
    """A probe file written and removed by a task on every alive node: `--out` must be shared storage."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    out.mkdir(parents=True, exist_ok=True)  # the driver writes the ledger there anyway
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    probes = [ray.remote(_probe).options(num_cpus=0, scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False))
              .remote(str(out)) for n in nodes]
    for node, error in zip(nodes, ray.get(probes)):
        if error:
            raise OutputError(f"--out {out}: a Ray worker on node {node['NodeManagerAddress']} "
                              f"({node['NodeID'][:8]}) cannot write there ({error}); --out must be storage "
                              "every node can write at the same path (a shared file system)")


def _probe(out: str) -> str | None:
    path = Path(out) / f".bcdeploy-probe-{uuid.uuid4().hex}"
    try:
        path.write_bytes(b"probe")
        path.unlink()
    except OSError as err:
        return err.strerror or str(err)
    return None


def _open_model(blob: Any, scale: RayOptions) -> tuple[Any, Any]:
    """(segmenter, temporary folder holding the model): materialized from the object store."""
    from bcdeploy.runtime.model.segmenter import Segmenter

    folder = tempfile.TemporaryDirectory(prefix="bcdeploy-infer-")
    model_path = blob.materialize(Path(folder.name))
    return Segmenter(model_path, scale.sliding_window, options=scale.backend), folder


def _describe(blob: Any, scale: RayOptions) -> OpenedModel:
    """What the ledger binds results to, from the model as the workers open it (and the `cpu:` line of
    the CPU a worker runs it on)."""
    segmenter, folder = _open_model(blob, scale)
    with folder, segmenter:
        return OpenedModel.of(segmenter)


class _ModelActor:
    """One model instance of the actor pool, opened once, used for every batch it is given."""

    def __init__(self, blob: Any, scale: RayOptions, pictures: bool = True) -> None:
        import ray

        from bcdeploy.runtime.run.memory import return_large_blocks

        return_large_blocks()  # a long-lived model process: flat memory as in the local run (run/memory.py)
        self.segmenter, self._folder = _open_model(blob, scale)
        self.node = ray.get_runtime_context().get_node_id()
        self.pictures = pictures  # an output is drawn over the image: its picture is shipped back (segment)

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[Work]]:
        works = segment(self.segmenter, list(batch["work"]), pictures=self.pictures)
        for work in works:
            work.node = self.node
        return {"work": works}


def _read(record: dict[str, Any], reader: Reader, resume: Resume) -> dict[str, Work]:
    return {"work": reader.read(record["work"], resume)}


def _write(record: dict[str, Any], writer: Writer) -> dict[str, Work]:
    return {"work": writer.write(record["work"])}


def _dataset(plan: RunPlan, resume: Resume, writer: Writer, scale: RayOptions, blob: Any) -> Any:
    """Ray Data's own fault tolerance is what we want: its tasks retry system failures (max_retries=-1),
    its actors restart (max_restarts=-1) and retry their tasks (max_task_retries=-1); a Python exception
    in our functions is not retried, but the reader, model step and writer turn every per-image
    exception into that record's failure."""
    import ray

    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # the CLI's bar shows done/total, rate and ETA from the driver
    context.print_on_execution_start = False
    logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)  # "progress bars disabled": yes
    logging.getLogger("ray.data._internal.execution.streaming_executor").setLevel(logging.WARNING)
    # records are plain Python objects (Work): Ray Data stores them pickled after Arrow declines them,
    # which is what we want, and says so at WARNING once per block
    logging.getLogger("ray.data._internal.tensor_extensions.arrow").setLevel(logging.ERROR)
    low, high = scale.replicas.count
    records = [{"work": work} for work in plan.works]
    # about one image per block (up to 20 000 blocks): a lost task redoes little, and a task holds one
    # decoded image at a time
    dataset = ray.data.from_items(records, override_num_blocks=min(len(records), 20_000))
    dataset = dataset.map(_read, fn_kwargs={"reader": plan.reader, "resume": resume}, num_cpus=TASK_CPUS)
    dataset = dataset.map_batches(
        _ModelActor, fn_constructor_kwargs={"blob": blob, "scale": scale, "pictures": writer.draws_image},
        batch_size=plan.batch_size,
        compute=ray.data.ActorPoolStrategy(min_size=low, max_size=high), num_cpus=scale.replicas.cpus,
        num_gpus=scale.replicas.gpus)
    return dataset.map(_write, fn_kwargs={"writer": writer}, num_cpus=TASK_CPUS)
