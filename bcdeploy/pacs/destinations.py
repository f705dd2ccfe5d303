"""Where results are delivered: a DICOM node by C-STORE (`AE@HOST:PORT`) or a DICOMweb server by
STOW-RS (`--stow URL`), behind one small interface the outbox's sender uses (sender.py).

`session(datasets)` opens one association (or HTTP session) for a batch and yields `send(dataset)`,
which returns on success and raises PacsRefused when the peer answered a failure status for that
object, or PacsError when the peer cannot be reached or dropped the association (the sender then waits
and tries the batch again). Datasets, not paths: the sender reads each file once, checks it is the
bytes the run wrote, and hands over what it checked.
"""

from __future__ import annotations

import contextlib
import re
import socket
import ssl
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from bcdeploy._imports import require
from bcdeploy.errors import InputError, PacsError, PacsRefused
from bcdeploy.pacs.dicomweb import HttpsTls

OUT_OF_RESOURCES = 0xA700  # PS3.4 B.2.3: 0xA7xx, Refused: Out of Resources (transient: the sender waits)
_AE_TITLE = re.compile(r"^[\x20-\x5b\x5d-\x7e]{1,16}$")  # PS3.5 AE VR: 16 characters, no backslash, no control


def check_ae_title(value: str, what: str = "AE title") -> str:
    title = value.strip()
    if not _AE_TITLE.match(title):
        raise InputError(f"{what} {value!r} is not a DICOM AE title (1 to 16 printable characters, no backslash)")
    return title


class Destination(Protocol):
    def describe(self) -> str: ...

    def session(self, datasets: Sequence[Any]) -> contextlib.AbstractContextManager[Callable[[Any], None]]: ...


def client_context(ca: str | None, cert: str | None = None, key: str | None = None, *,
                   verify: bool = True) -> ssl.SSLContext:
    """DICOM over TLS to a peer (PS3.15 B.9, BCP 195: TLS 1.2+): the peer's certificate must chain to `ca`
    (or the system's trust store without one) and name the host we dialled; `cert`/`key` present ours
    when the peer asks (mutual TLS). `verify=False` accepts any peer: only when told so, and said."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        if ca:
            context.load_verify_locations(ca)
        if cert:
            context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as err:
        raise InputError(f"TLS to the destination: cannot load the CA, certificate or key ({err})") from None
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def tls_failure(host: str, port: int, context: ssl.SSLContext, timeout_s: float) -> str | None:
    """Why a TLS handshake with host:port fails ("certificate verify failed: ..."), or None when it does
    not fail at the TLS layer: asked only after an association failed, to say which layer refused."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as raw, \
                context.wrap_socket(raw, server_hostname=host):
            return None
    except ssl.SSLError as err:
        return f"TLS handshake refused: {getattr(err, 'verify_message', None) or err.reason or err}"
    except OSError:
        return None


@dataclass(frozen=True)
class DimseDestination:
    """A Storage SCP (a PACS's DICOM port), e.g. `ORTHANC@127.0.0.1:4242`; over TLS when `tls` is given."""

    ae_title: str
    host: str
    port: int
    calling_ae: str = "BCDEPLOY"
    timeout_s: float = 30.0
    tls: ssl.SSLContext | None = None

    @classmethod
    def parse(cls, value: str, calling_ae: str = "BCDEPLOY", tls: ssl.SSLContext | None = None) -> DimseDestination:
        match = re.match(r"^(?P<ae>[^@]+)@(?P<host>\[[^\]]+\]|[^:]+):(?P<port>\d{1,5})$", value.strip())
        if not match or not 0 < int(match["port"]) < 65536:
            raise InputError(f"--send-to {value!r}: expected AE@HOST:PORT, e.g. PACS@10.0.0.5:104")
        return cls(check_ae_title(match["ae"], "--send-to AE title"), match["host"].strip("[]"), int(match["port"]),
                   calling_ae, tls=tls)

    def describe(self) -> str:
        return f"{self.ae_title}@{self.host}:{self.port}" + (" (TLS)" if self.tls else "")

    @contextlib.contextmanager
    def session(self, datasets: Sequence[Any]) -> Iterator[Callable[[Any], None]]:
        require("pynetdicom", "Sending results by C-STORE")
        from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
        from pynetdicom import AE

        ae = AE(ae_title=self.calling_ae)
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = self.timeout_s
        ae.connection_timeout = min(self.timeout_s, 10.0)
        contexts: dict[str, set[str]] = {}
        for dataset in datasets:
            meta = dataset.file_meta
            contexts.setdefault(str(meta.MediaStorageSOPClassUID), set()).add(str(meta.TransferSyntaxUID))
        for sop_class, syntaxes in contexts.items():
            ae.add_requested_context(sop_class, sorted(syntaxes | {ExplicitVRLittleEndian, ImplicitVRLittleEndian}))
        tls_args = (self.tls, self.host) if self.tls else None
        assoc = ae.associate(self.host, self.port, ae_title=self.ae_title, tls_args=tls_args)
        if not assoc.is_established:
            why = "rejected the association" if assoc.is_rejected else "cannot be reached"
            if self.tls and not assoc.is_rejected:
                why = tls_failure(self.host, self.port, self.tls, min(self.timeout_s, 10.0)) or why
            raise PacsError(f"{self.describe()}: {why}")
        try:
            def send(dataset: Any) -> None:
                name = f"{dataset.SOPInstanceUID}"
                status = assoc.send_c_store(dataset)
                code = int(status.get("Status", -1)) if status else -1
                if code == -1:
                    raise PacsError(f"{self.describe()}: no answer to C-STORE of {name} (association lost)")
                if code & 0xFF00 == OUT_OF_RESOURCES:  # the PACS is full or busy now: an outage, not a refusal
                    raise PacsError(f"{self.describe()}: out of resources (0x{code:04X}) for C-STORE of {name}")
                if code not in (0x0000, 0xB000, 0xB007, 0xB006):  # success, or success with a warning
                    raise PacsRefused(f"{self.describe()}: C-STORE of {name} refused with status 0x{code:04X}")
                if not assoc.is_established:
                    raise PacsError(f"{self.describe()}: association lost after C-STORE of {name}")
            yield send
        finally:
            if assoc.is_established:
                assoc.release()


@dataclass(frozen=True)
class StowDestination:
    """A DICOMweb server's STOW-RS endpoint (pacs/dicomweb.py); `tls` for an https:// URL."""

    url: str
    tls: HttpsTls | None = None

    def describe(self) -> str:
        """The URL as lines and the audit trail may show it: a `user:password@` in it is left out."""
        from urllib.parse import urlsplit, urlunsplit

        parts = urlsplit(self.url)
        host = parts.hostname or ""
        netloc = (f"[{host}]" if ":" in host else host) + (f":{parts.port}" if parts.port else "")
        return urlunsplit(parts._replace(netloc=netloc)) if "@" in parts.netloc else self.url

    @contextlib.contextmanager
    def session(self, datasets: Sequence[Any]) -> Iterator[Callable[[Any], None]]:
        from bcdeploy.pacs.dicomweb import DicomWebPacs

        pacs = DicomWebPacs(self.url, tls=self.tls)

        def send(dataset: Any) -> None:
            pacs.store([dataset])
        yield send
