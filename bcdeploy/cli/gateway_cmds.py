"""`bcdeploy gateway`: a DICOM node (bcdeploy/gateway/), and `--status DIR` for its queue."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click
import cloup

from bcdeploy.cli._options import runner_options
from bcdeploy.cli._run_args import MAX_PIXELS, STOW, model_section, section
from bcdeploy.errors import InputError


def _print_status(out: Path) -> None:
    from bcdeploy.gateway.spool import open_status

    status = open_status(out)
    click.echo(f"instances: {status['received']} received, {status['waiting']} waiting, {status['processed']} "
               f"processed, {status['failed']} failed (spool {status['spool_bytes'] / 1e6:.1f} MB waiting, "
               f"{status['failed_bytes'] / 1e6:.1f} MB failed and kept, outside --max-spool-gb)")
    click.echo(f"results:   {status['results_due']} due, {status['sent']} sent, {status['refused']} refused")
    if status["last_send_error"]:
        click.echo(f"last send error: {status['last_send_error']}")


def _node_logging() -> None:
    """Time-stamped INFO lines on stderr for the node (the journal of a systemd unit keeps them)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    for name in ("bcdeploy.gateway", "bcdeploy.outbox"):  # the node, and the sender of its outbox
        node_log = logging.getLogger(name)
        node_log.setLevel(min(node_log.getEffectiveLevel(), logging.INFO))
        node_log.addHandler(handler)
        node_log.propagate = False


@cloup.command()
@section(
    "Node",
    click.option("--out", type=click.Path(file_okay=False),
                 help="The node's folder: spool, state, results, audit.jsonl (keep it across restarts)."),
    click.option("--status", "status_dir", type=click.Path(file_okay=False), metavar="DIR",
                 help="Print the queue of the node whose --out is DIR (received, waiting, processed, sent, "
                      "failed) and exit."),
)
@section(
    "DICOM",
    click.option("--port", default=11112, show_default=True, type=click.IntRange(1, 65535)),
    click.option("--host", default="0.0.0.0", show_default=True, help="Interface to listen on."),
    click.option("--ae-title", default="BCDEPLOY", show_default=True, help="This node's AE title (called AE)."),
    click.option("--allow", "allow", multiple=True, metavar="AE",
                 help="Calling AE titles accepted (repeat it); without it any calling AE is accepted."),
    click.option("--max-associations", default=8, show_default=True, type=click.IntRange(1, 1000)),
    click.option("--max-spool-gb", default=50.0, show_default=True, type=click.FloatRange(0, min_open=True),
                 help="Instances are refused (0xA700, out of resources) while the spool holds this much."),
    MAX_PIXELS,
    click.option("--study-idle", "study_idle_s", default=10.0, show_default=True, type=click.FloatRange(0),
                 metavar="SECONDS", help="A study is segmented when no instance of it arrived for this long."),
)
@model_section(batch=False)
@section(
    "Results",
    click.option("--send-to", metavar="AE@HOST:PORT", help="Send results by C-STORE to this DICOM node (a PACS)."),
    STOW,
    click.option("--save", default="seg,sr,sc", show_default=True,
                 help="Output kinds: seg (DICOM SEG), sr (TID 1500 report), sc (overlay), and masks,biner,vis "
                      "(kept in --out/results, not sent)."),
)
@section(
    "Security and audit",
    click.option("--tls-cert", type=click.Path(dir_okay=False, exists=True), help="DICOM over TLS: this node's certificate (PEM)."),
    click.option("--tls-key", type=click.Path(dir_okay=False, exists=True), help="Its private key (PEM)."),
    click.option("--tls-ca", type=click.Path(dir_okay=False, exists=True),
                 help="Require peers' certificates signed by this CA (mutual TLS)."),
    click.option("--audit-phi", is_flag=True, help="Put patient ID and name in audit.jsonl (left out by default)."),
)
def gateway(out, status_dir, port, host, ae_title, allow, max_associations, max_spool_gb, max_pixels,
            study_idle_s, model, send_to, stow, save, tls_cert, tls_key, tls_ca, audit_phi, **backend) -> None:
    """Run as a DICOM node: receive mammograms by C-STORE, segment each study once it is complete, send
    SEG, SR and overlay to the PACS; audit trail in --out/audit.jsonl."""
    if status_dir:
        _print_status(Path(status_dir))
        return
    from bcdeploy.pacs.destinations import DimseDestination, StowDestination, check_ae_title
    from bcdeploy.gateway.node import Gateway, GatewayOptions
    from bcdeploy.gateway.scp import ScpOptions, server_context
    from bcdeploy.runtime.results.outputs import parse_save
    from bcdeploy.runtime.model.segmenter import Segmenter

    if not model or not out:
        raise InputError("the node needs --model and --out (only --status DIR works without them)")
    options_of_backend = runner_options(model, **backend)  # an option its backend does not take: one line
    out = Path(out)
    if bool(send_to) == bool(stow):
        raise InputError("give one destination for the results: --send-to AE@HOST:PORT or --stow URL")
    if bool(tls_cert) != bool(tls_key) or (tls_ca and not tls_cert):
        raise InputError("TLS needs --tls-cert and --tls-key together (and --tls-ca only with them)")
    title = check_ae_title(ae_title, "--ae-title")
    destination = DimseDestination.parse(send_to, calling_ae=title) if send_to else StowDestination(stow)
    scp = ScpOptions(ae_title=title, host=host, port=port, allow=frozenset(check_ae_title(a, "--allow") for a in allow),
                     max_associations=max_associations, max_pixels=max_pixels,
                     ssl_context=server_context(tls_cert, tls_key, tls_ca) if tls_cert else None)
    options = GatewayOptions(out=out, scp=scp, destination=destination, save=parse_save(save),
                             study_idle_s=study_idle_s, max_spool_bytes=int(max_spool_gb * 1e9), audit_phi=audit_phi)
    _node_logging()
    node_log = logging.getLogger("bcdeploy.gateway")
    if not allow:
        node_log.warning("no --allow: associations from any calling AE title are accepted")
    node = Gateway(lambda: Segmenter(model, options=options_of_backend), options)
    node.serve(on_ready=lambda bound: node_log.info(
        "%s listening on %s:%d%s; results to %s; folder %s", title, host, bound, " (TLS)" if tls_cert else "",
        destination.describe(), out))
