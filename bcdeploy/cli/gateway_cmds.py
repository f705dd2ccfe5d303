"""`bcdeploy gateway`: a DICOM node (bcdeploy/gateway/), and `--status DIR` for its queue."""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

import click
import cloup

from bcdeploy.cli._sections import MAX_PIXELS, STOW, NodeModelArgs, OptionGroup, parsed_all
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


@dataclass(frozen=True, kw_only=True)
class NodeArgs(OptionGroup):
    title: ClassVar[str] = "Node"
    out: Path | None
    status: Path | None
    resend: Path | None

    @classmethod
    def options(cls) -> list:
        return [
            click.option("--out", type=click.Path(file_okay=False),
                         help="The node's folder: spool, state, results, audit.jsonl (keep it across restarts)."),
            click.option("--status", "status_dir", type=click.Path(file_okay=False), metavar="DIR",
                         help="Print the queue of the node whose --out is DIR (received, waiting, processed, sent, "
                              "failed) and exit."),
            click.option("--resend", "resend_dir", type=click.Path(file_okay=False), metavar="DIR",
                         help="Queue again the results the PACS refused for good, of the node whose --out is DIR "
                              "(running or not), and exit."),
        ]

    @classmethod
    def build(cls, *, out: str | None, status_dir: str | None, resend_dir: str | None) -> NodeArgs:
        if status_dir and resend_dir:
            raise InputError("give --status DIR or --resend DIR, not both")
        return cls(out=Path(out) if out else None, status=Path(status_dir) if status_dir else None,
                   resend=Path(resend_dir) if resend_dir else None)


@dataclass(frozen=True, kw_only=True)
class DicomArgs(OptionGroup):
    """The listener (gateway.scp.ScpOptions, less its TLS context) and when a study is taken."""

    title: ClassVar[str] = "DICOM"
    scp: Any  # gateway.scp.ScpOptions without ssl_context
    max_spool_bytes: int
    min_free_bytes: int
    study_idle_s: float

    @classmethod
    def options(cls) -> list:
        return [
            click.option("--port", default=11112, show_default=True, type=click.IntRange(1, 65535)),
            click.option("--host", default="0.0.0.0", show_default=True, help="Interface to listen on."),
            click.option("--ae-title", default="BCDEPLOY", show_default=True, help="This node's AE title (called AE)."),
            click.option("--allow", "allow", multiple=True, metavar="AE",
                         help="Calling AE titles accepted (repeat it); without it any calling AE is accepted."),
            click.option("--max-associations", default=8, show_default=True, type=click.IntRange(1, 1000)),
            click.option("--max-spool-gb", default=50.0, show_default=True, type=click.FloatRange(0, min_open=True),
                         help="Instances are refused (0xA700, out of resources) while the spool holds this much."),
            click.option("--min-free-gb", default=1.0, show_default=True, type=click.FloatRange(0),
                         help="Instances are refused (0xA700) while the node's disk has less free: room is kept for "
                              "results, ledger and audit trail; /readyz reports it."),
            MAX_PIXELS,
            click.option("--study-idle", "study_idle_s", default=10.0, show_default=True, type=click.FloatRange(0),
                         metavar="SECONDS", help="A study is segmented when no instance of it arrived for this long."),
        ]

    @classmethod
    def build(cls, *, port: int, host: str, ae_title: str, allow: tuple[str, ...], max_associations: int,
              max_spool_gb: float, min_free_gb: float, max_pixels: int, study_idle_s: float) -> DicomArgs:
        from bcdeploy.gateway.scp import ScpOptions
        from bcdeploy.pacs.destinations import check_ae_title

        scp = ScpOptions(ae_title=check_ae_title(ae_title, "--ae-title"), host=host, port=port,
                         allow=frozenset(check_ae_title(a, "--allow") for a in allow),
                         max_associations=max_associations, max_pixels=max_pixels)
        return cls(scp=scp, max_spool_bytes=int(max_spool_gb * 1e9), min_free_bytes=int(min_free_gb * 1e9),
                   study_idle_s=study_idle_s)


@dataclass(frozen=True, kw_only=True)
class ResultsArgs(OptionGroup):
    """Where results go (one destination, its calling AE the node's) and which kinds are made."""

    title: ClassVar[str] = "Results"
    destination: Any  # pacs.destinations.Destination
    save: frozenset[str]
    cad_threshold: float | None
    unverified: bool  # TLS to a peer whose certificate is not checked (--send-tls-no-verify)

    @classmethod
    def options(cls) -> list:
        return [
            click.option("--send-to", metavar="AE@HOST:PORT", help="Send results by C-STORE to this DICOM node (a PACS)."),
            click.option("--send-tls-ca", type=click.Path(dir_okay=False, exists=True),
                         help="Send over TLS; the PACS's certificate must be signed by this CA bundle (PEM) and name "
                              "its host, else nothing is sent (one line, an audit entry). With --stow: an https:// "
                              "URL's server, checked against this bundle instead of the system's."),
            click.option("--send-tls-cert", type=click.Path(dir_okay=False, exists=True),
                         help="This node's client certificate (PEM), for a PACS (DICOM or DICOMweb) that asks for one."),
            click.option("--send-tls-key", type=click.Path(dir_okay=False, exists=True), help="Its private key (PEM)."),
            click.option("--send-tls-no-verify", is_flag=True,
                         help="Send over TLS to a PACS whose certificate cannot be verified (encrypted, not "
                              "authenticated: a warning at start)."),
            STOW,
            click.option("--save", default="seg,sr,sc", show_default=True,
                         help="Output kinds: seg (DICOM SEG), sr (TID 1500 report), sc (overlay), cad (Mammography "
                              "CAD SR, one per study), and masks,biner,vis (kept in --out/results, not sent)."),
            click.option("--cad-threshold", type=click.FloatRange(0.0, 1.0), default=None,
                         help="The CAD SR's operating point [default: the model sidecar's, else 0.5]."),
        ]

    @classmethod
    def build(cls, *, send_to: str | None, stow: str | None, save: str, calling_ae: str, send_tls_ca: str | None,
              send_tls_cert: str | None, send_tls_key: str | None, send_tls_no_verify: bool,
              cad_threshold: float | None) -> ResultsArgs:
        from bcdeploy.pacs.destinations import DimseDestination, HttpsTls, StowDestination, client_context
        from bcdeploy.runtime.results.outputs import parse_save

        if bool(send_to) == bool(stow):
            raise InputError("give one destination for the results: --send-to AE@HOST:PORT or --stow URL")
        tls_asked = bool(send_tls_ca or send_tls_cert or send_tls_key or send_tls_no_verify)
        if tls_asked and stow and not stow.lower().startswith("https://"):
            raise InputError("--send-tls-* with --stow need an https:// URL")
        if bool(send_tls_cert) != bool(send_tls_key):
            raise InputError("--send-tls-cert and --send-tls-key go together")
        if send_tls_no_verify and send_tls_ca:
            raise InputError("--send-tls-no-verify and --send-tls-ca contradict each other: give one")
        if send_to:
            tls = (client_context(send_tls_ca, send_tls_cert, send_tls_key, verify=not send_tls_no_verify)
                   if tls_asked else None)
            destination: Any = DimseDestination.parse(send_to, calling_ae=calling_ae, tls=tls)
        else:
            destination = StowDestination(stow, tls=HttpsTls(send_tls_ca, send_tls_cert, send_tls_key,
                                                               verify=not send_tls_no_verify) if tls_asked else None)
        chosen = parse_save(save)
        if cad_threshold is not None and "cad" not in chosen:
            raise InputError("--cad-threshold sets the CAD SR's operating point: add `cad` to --save")
        return cls(destination=destination, save=chosen, cad_threshold=cad_threshold, unverified=send_tls_no_verify)


@dataclass(frozen=True, kw_only=True)
class SecurityArgs(OptionGroup):
    title: ClassVar[str] = "Security and audit"
    ssl_context: Any  # ssl.SSLContext or None
    audit_phi: bool

    @classmethod
    def options(cls) -> list:
        return [
            click.option("--tls-cert", type=click.Path(dir_okay=False, exists=True),
                         help="DICOM over TLS: this node's certificate (PEM)."),
            click.option("--tls-key", type=click.Path(dir_okay=False, exists=True), help="Its private key (PEM)."),
            click.option("--tls-ca", type=click.Path(dir_okay=False, exists=True),
                         help="Require peers' certificates signed by this CA (mutual TLS)."),
            click.option("--audit-phi", is_flag=True, help="Put patient ID and name in audit.jsonl (left out by default)."),
        ]

    @classmethod
    def build(cls, *, tls_cert: str | None, tls_key: str | None, tls_ca: str | None, audit_phi: bool) -> SecurityArgs:
        from bcdeploy.gateway.scp import server_context

        if bool(tls_cert) != bool(tls_key) or (tls_ca and not tls_cert):
            raise InputError("TLS needs --tls-cert and --tls-key together (and --tls-ca only with them)")
        return cls(ssl_context=server_context(tls_cert, tls_key, tls_ca) if tls_cert else None, audit_phi=audit_phi)


@dataclass(frozen=True, kw_only=True)
class MonitoringArgs(OptionGroup):
    """The HTTP side for the hospital's monitoring (gateway/http.py): off unless --http is given."""

    title: ClassVar[str] = "Monitoring"
    http: Any  # gateway.http.HttpOptions or None
    ready_window_s: float

    @classmethod
    def options(cls) -> list:
        return [
            click.option("--http", "http_address", metavar="HOST:PORT",
                         help="Serve /metrics (Prometheus), /healthz, /readyz and a status page at / here "
                              "(e.g. 127.0.0.1:9110)."),
            click.option("--http-allow", multiple=True, metavar="NETWORK",
                         help="Networks whose clients may connect (repeat it, e.g. 10.2.0.0/24); needed to listen "
                              "on any address but loopback."),
            click.option("--ready-window", "ready_window_min", default=15.0, show_default=True,
                         type=click.FloatRange(0, min_open=True), metavar="MINUTES",
                         help="/readyz fails when a result has waited this long and the destination stored none "
                              "in as long."),
        ]

    @classmethod
    def build(cls, *, http_address: str | None, http_allow: tuple[str, ...], ready_window_min: float) -> MonitoringArgs:
        from bcdeploy.gateway.http import HttpOptions

        if http_allow and not http_address:
            raise InputError("--http-allow goes with --http HOST:PORT")
        return cls(http=HttpOptions.parse(http_address, http_allow) if http_address else None,
                   ready_window_s=ready_window_min * 60)


@cloup.command()
@NodeArgs.section()
@DicomArgs.section()
@NodeModelArgs.section()
@ResultsArgs.section()
@SecurityArgs.section()
@MonitoringArgs.section()
def gateway(**values) -> None:
    """Run as a DICOM node: receive mammograms by C-STORE, segment each study once it is complete, send
    SEG, SR and overlay to the PACS; audit trail in --out/audit.jsonl."""
    node_args = NodeArgs.parse(values)
    if node_args.status:
        _print_status(node_args.status)
        return
    if node_args.resend:
        from bcdeploy.gateway.spool import resend_refused

        click.echo(f"{resend_refused(node_args.resend)} refused result(s) due again")
        return
    from bcdeploy.gateway.node import Gateway, GatewayOptions
    from bcdeploy.runtime.model.segmenter import Segmenter

    model = NodeModelArgs.parse(values)  # an option its backend does not take: one line
    if model is None or node_args.out is None:
        raise InputError("the node needs --model and --out (only --status DIR and --resend DIR work without them)")
    dicom = DicomArgs.parse(values)
    results = ResultsArgs.parse(values, calling_ae=dicom.scp.ae_title)
    security = SecurityArgs.parse(values)
    monitoring = MonitoringArgs.parse(values)
    parsed_all(values)
    scp = replace(dicom.scp, ssl_context=security.ssl_context)
    options = GatewayOptions(out=node_args.out, scp=scp, destination=results.destination, save=results.save,
                             cad_threshold=results.cad_threshold,
                             study_idle_s=dicom.study_idle_s, max_spool_bytes=dicom.max_spool_bytes,
                             min_free_bytes=dicom.min_free_bytes, audit_phi=security.audit_phi,
                             http=monitoring.http, ready_window_s=monitoring.ready_window_s)
    _node_logging()
    node_log = logging.getLogger("bcdeploy.gateway")
    if not scp.allow:
        node_log.warning("no --allow: associations from any calling AE title are accepted")
    if results.unverified:
        node_log.warning("--send-tls-no-verify: results are encrypted but sent to whoever answers at %s",
                         results.destination.describe())
    node = Gateway(lambda: Segmenter(model.model, options=model.backend), options)
    node.serve(on_ready=lambda bound: node_log.info(
        "%s listening on %s:%d%s; results to %s; folder %s", scp.ae_title, scp.host, bound,
        " (TLS)" if scp.ssl_context else "", results.destination.describe(), node_args.out))
