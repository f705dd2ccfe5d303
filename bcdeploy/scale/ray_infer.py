"""`bcdeploy infer ... --ray ADDRESS`: the run loop's pipeline on a Ray cluster, with Ray Data.

The driver does what makes a run trustworthy, exactly as a local run (runtime/run/loop.execute):
it lists the inputs, binds output names, owns the ledger (one transaction per image, written from
the record each image sends back) and regenerates results.json and lesions.csv. Ray Data does the
per-image work with the same stage code as a local run (runtime/run/stages.py):
  read, hash, resume check, decode   tasks          Stages.load (the resume rule needs the bytes'
                                                    SHA-256, so it runs where the bytes are read)
  segment                            actor pool     stages.segment; each actor opens the model once
                                                    from bytes in the object store (no copy on nodes)
  encode, write outputs atomically   tasks          Stages.finish, its ledger row sent back
Faults: a task lost with its node is retried, an actor is restarted and its tasks retried (Ray
Data's defaults, see _dataset); outputs go atomically to deterministic paths, so a retried
write replaces, never doubles; the ledger is keyed by source, so every input has exactly one row.
Paths travel as absolute paths: `--out` and the inputs must be the same paths on every node (shared
storage), which is checked for `--out` at start by a probe write on each node.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import pickle
import tempfile
import uuid
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from bcdeploy.errors import InputError, OutputError
from bcdeploy.fileio import refuse_overlap
from bcdeploy.runtime.backends import BackendOptions
from bcdeploy.runtime.run.loop import RunContext, RunOptions, RunSummary, count, execute, model_identity
from bcdeploy.runtime.run.stages import Outcome, Stages, segment

TASK_CPUS = 0.25  # read/decode and encode/write tasks: codecs and I/O; the model actors hold the CPUs
RETRIES = 5  # the one plain task (_describe), for system failures (a node lost)


@dataclasses.dataclass(frozen=True, kw_only=True)
class RayOptions:
    address: str = "local"  # local (a private loopback-only Ray) | auto | a cluster address
    workers: tuple[int, int] = (1, 1)  # model actors: (N, N) fixed, (MIN, MAX) autoscaling
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0
    backend: BackendOptions | None = None
    sliding_window: Any = None  # segmenter.SlidingWindow


def parse_workers(text: str) -> tuple[int, int]:
    """`N` or `MIN:MAX` -> (min, max)."""
    try:
        low, _, high = text.partition(":")
        workers = (int(low), int(high or low))
    except ValueError:
        workers = (0, 0)
    if not 1 <= workers[0] <= workers[1]:
        raise InputError(f"--workers {text}: expected N or MIN:MAX with 1 <= MIN <= MAX")
    return workers


def run_on_ray(model_path: Path, inputs: Sequence[str], options: RunOptions, scale: RayOptions) -> RunSummary:
    """Segment `inputs` on the Ray at `scale.address`; the same outputs, ledger and reports as loop.run."""
    import ray

    from bcdeploy.scale.model_blob import ModelBlob
    from bcdeploy.serve.launch import connect

    model_path = Path(model_path)
    if not model_path.is_file():
        raise InputError(f"{model_path}: model file not found")
    options = dataclasses.replace(options, out=Path(os.path.abspath(options.out)))
    # before the probe creates --out: a folder inside the inputs is refused without touching them
    refuse_overlap(options.out, [p for p in [*inputs, *options.extra_inputs] if os.path.lexists(p)])
    connect(scale.address, max(256 * 2**20, 3 * model_path.stat().st_size), purpose="bcdeploy infer --ray")
    try:
        if scale.address == "local":
            _check_fits(scale)
        check_writable(options.out)
        blob = ModelBlob.put(model_path)
        describe = ray.remote(_describe).options(num_cpus=scale.cpus_per_worker, num_gpus=scale.gpus_per_worker,
                                                 max_retries=RETRIES)
        described = ray.get(describe.remote(blob, scale))
        described["model"]["model"] = str(model_path)  # the file given, not the worker's private copy

        def pipeline(run: RunContext, summary: RunSummary, interrupts: Any) -> OutputError | None:
            return _pipeline(run, summary, interrupts, options, scale, blob, described)

        return execute(lambda: described["model"], described["classes"], inputs, options, pipeline)
    finally:
        ray.shutdown()


def _check_fits(scale: RayOptions) -> None:
    """The private local Ray has this machine's CPUs: say so instead of waiting forever for an actor."""
    import ray

    wanted = scale.workers[0] * scale.cpus_per_worker + TASK_CPUS
    available = ray.cluster_resources().get("CPU", 0)
    if wanted > available:
        raise InputError(f"--workers {scale.workers[0]} x --cpus-per-worker {scale.cpus_per_worker:g} plus "
                         f"{TASK_CPUS:g} CPU for reading and writing is {wanted:g} CPUs, but the local Ray has "
                         f"{available:g}; lower them or join a cluster with --ray ADDRESS")


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
    from bcdeploy.runtime.segmenter import Segmenter

    folder = tempfile.TemporaryDirectory(prefix="bcdeploy-infer-")
    model_path = blob.materialize(Path(folder.name))
    return Segmenter(model_path, scale.sliding_window, options=scale.backend), folder


def _describe(blob: Any, scale: RayOptions) -> dict[str, Any]:
    """What the ledger binds results to, from the model as the workers open it."""
    segmenter, folder = _open_model(blob, scale)
    with folder, segmenter:
        return {"model": segmenter.describe(), "classes": list(segmenter.classes),
                "palette": [list(c) for c in segmenter.palette]}


class _ModelActor:
    """One model instance of the actor pool, opened once, used for every batch it is given."""

    def __init__(self, blob: Any, scale: RayOptions) -> None:
        import ray

        self.segmenter, self._folder = _open_model(blob, scale)
        self.node = ray.get_runtime_context().get_node_id()

    def __call__(self, batch: dict[str, Any]) -> dict[str, list]:
        loaded = [pickle.loads(data) for data in batch["work"]]  # (Work, ledger row before the run)
        rows = {id(work): row for work, row in loaded}
        pairs = segment(self.segmenter, [work for work, _ in loaded])
        return {"work": [pickle.dumps((work, rows[id(work)], prediction, self.node)) for work, prediction in pairs]}


def _pipeline(run: RunContext, summary: RunSummary, interrupts: Any, options: RunOptions, scale: RayOptions,
              blob: Any, described: dict[str, Any]) -> OutputError | None:
    """Stream every image through Ray Data; each record that comes back is one ledger transaction."""
    import ray

    if not run.named:
        return None
    task_options = dataclasses.replace(options, on_progress=None)
    shared = ray.put((run.out, run.run_id, model_identity(run.model, options), task_options,
                      SimpleNamespace(classes=described["classes"], palette=described["palette"]), run.source))
    records = [{"work": pickle.dumps((dataclasses.replace(item, path=Path(os.path.abspath(item.path))), name,
                                      run.rows.get(str(item.source))))} for item, name in run.named]
    dataset = _dataset(records, shared, options.batch_size, scale, blob)
    fatal: list[OutputError] = []
    interrupts.armed = True
    try:
        for record in dataset.iter_rows():
            row, node, error = pickle.loads(record["record"])
            if row is not None:
                run.ledger.save(row)
            count(Outcome(record["status"], OutputError(error) if error else None), summary, fatal)
            if options.on_progress:
                options.on_progress(row["name"] if row else "", len(run.named))
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


def _dataset(records: list[dict], shared: Any, batch_size: int, scale: RayOptions, blob: Any) -> Any:
    """Ray Data's own fault tolerance is what we want: its tasks retry system failures (max_retries=-1),
    its actors restart (max_restarts=-1) and retry their tasks (max_task_retries=-1); a Python exception
    in our functions is not retried, but they turn every per-image exception into a failure record."""
    import ray

    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # the CLI's bar shows done/total, rate and ETA from the driver
    context.print_on_execution_start = False
    logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)  # "progress bars disabled": yes
    logging.getLogger("ray.data._internal.execution.streaming_executor").setLevel(logging.WARNING)
    low, high = scale.workers
    # about one image per block (up to 20 000 blocks): a lost task redoes little, and a task holds one
    # decoded image at a time
    dataset = ray.data.from_items(records, override_num_blocks=min(len(records), 20_000))
    dataset = dataset.map(_load, fn_kwargs={"shared": shared}, num_cpus=TASK_CPUS)
    dataset = dataset.map_batches(
        _ModelActor, fn_constructor_kwargs={"blob": blob, "scale": scale}, batch_size=batch_size,
        compute=ray.data.ActorPoolStrategy(min_size=low, max_size=high), num_cpus=scale.cpus_per_worker,
        num_gpus=scale.gpus_per_worker)
    return dataset.map(_finish, fn_kwargs={"shared": shared}, num_cpus=TASK_CPUS)


def _stages(shared: Any, row: dict | None, source: str) -> Stages:
    import ray

    out, run_id, model, options, labels, inputs = ray.get(shared)
    return Stages(labels, _Records(), out, run_id, model, {source: row} if row else {}, options, inputs)


def _load(record: dict[str, Any], shared: Any) -> dict[str, Any]:
    item, name, row = pickle.loads(record["work"])
    work = _stages(shared, row, str(item.source)).load(item, name)
    return {"work": pickle.dumps((work, row))}  # the row too: a failure removes the outputs it recorded


def _finish(record: dict[str, Any], shared: Any) -> dict[str, Any]:
    """Write the outputs and send the ledger row back (the driver commits it)."""
    import json

    work, row, prediction, node = pickle.loads(record["work"])
    stages = _stages(shared, row, str(work.item.source))
    outcome = stages.finish(work, prediction)
    row = stages.ledger.rows[-1] if stages.ledger.rows else None
    if row is not None and row.get("image"):
        row["image"] = json.dumps({**json.loads(row["image"]), "node": node})
    error = str(outcome.error) if outcome.error else None
    return {"status": outcome.status, "record": pickle.dumps((row, node, error))}


class _Records:
    """Stands in for the ledger in a task: keeps the row Stages would commit, for the driver to commit."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def save(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
