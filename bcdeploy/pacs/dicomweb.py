"""A PACS over DICOMweb: list a study's mammograms (QIDO-RS), fetch them (WADO-RS), store SEGs (STOW-RS).

Built on dicomweb-client (the `pacs` extra). Instances are fetched in the transfer syntax the PACS
stored them in (`transfer-syntax=*`): a server-side transcode would hide what the modality sent and
cost the server CPU; bcdeploy.runtime.images.dicom decodes every syntax itself. Every failure of the server
(unreachable, HTTP error, a rejected STOW) is one PacsError line naming the URL and what was asked.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

from bcdeploy._imports import require
from bcdeploy.errors import PacsError, PacsRefused

MAMMOGRAPHY = "MG"
PAGE_SIZE = 100
_ORIGINAL_SYNTAX = (("application/dicom", "*"),)


@dataclass(frozen=True)
class InstanceRef:
    """Where one instance lives on the server (the three UIDs WADO-RS needs)."""

    study_uid: str
    series_uid: str
    sop_uid: str
    modality: str | None = None

    def path(self) -> str:
        """The instance's WADO-RS path below the DICOMweb root: names the source in errors and reports."""
        return f"studies/{self.study_uid}/series/{self.series_uid}/instances/{self.sop_uid}"


@dataclass(frozen=True)
class HttpsTls:
    """TLS for a DICOMweb destination (requests takes files, not an SSLContext): the server's certificate
    checked against `ca` (else the system's trust store), ours presented from `cert`/`key` when given;
    `verify=False` accepts any server, only when told so."""

    ca: str | None = None
    cert: str | None = None
    key: str | None = None
    verify: bool = True

    def apply(self, session: Any) -> None:
        """Every https:// request of `session` verifies and presents as told. Through an adapter, not
        `session.verify`: requests lets REQUESTS_CA_BUNDLE in the environment override a session's
        verify (psf/requests#3829), and a node's CA must not depend on the service's environment."""
        from requests.adapters import HTTPAdapter

        verify: bool | str = (self.ca or True) if self.verify else False
        cert = (self.cert, self.key) if self.cert else None

        class _Pinned(HTTPAdapter):
            def send(self, request: Any, **kwargs: Any) -> Any:
                return super().send(request, **{**kwargs, "verify": verify, "cert": cert})

        session.mount("https://", _Pinned())


class DicomWebPacs:
    """One DICOMweb server, e.g. Orthanc's plugin at http://127.0.0.1:8042/dicom-web."""

    def __init__(self, url: str, *, timeout: float = 30.0, headers: dict[str, str] | None = None,
                 tls: HttpsTls | None = None) -> None:
        client_mod = require("dicomweb_client", "Talking to a PACS over DICOMweb")
        self.url = url.rstrip("/")
        session = None
        if tls is not None:
            from dicomweb_client.session_utils import create_session

            session = create_session()
            tls.apply(session)
        self._client = client_mod.DICOMwebClient(self.url, session=session, headers=headers, timeout=timeout)
        # dicomweb-client retries every failure, a refused connection included, 5 times with waits
        # doubling from 2 s: 30 s before a mistyped URL is reported. Busy-server codes still get retried.
        self._client.set_http_retry_params(max_attempts=3, wait_exponential_multiplier=250)

    def studies(self) -> list[str]:
        """Study Instance UIDs of every study holding mammograms (for a run without --study)."""
        found = self._search("search studies", self._client.search_for_studies,
                             search_filters={"ModalitiesInStudy": MAMMOGRAPHY})
        return sorted({_value(item, "0020000D") for item in found} - {None})

    def instances(self, study_uid: str, modality: str = MAMMOGRAPHY) -> list[InstanceRef]:
        """Every instance of `study_uid` in a series of `modality`, in series/instance UID order."""
        series = self._search(f"search series of study {study_uid}", self._client.search_for_series,
                              study_instance_uid=study_uid, search_filters={"Modality": modality})
        refs = []
        for item in series:
            series_uid = _value(item, "0020000E")
            if series_uid is None or (_value(item, "00080060") or modality) != modality:
                continue  # a server that ignores the filter must not hand us other modalities
            found = self._search(f"search instances of series {series_uid}", self._client.search_for_instances,
                                 study_instance_uid=study_uid, series_instance_uid=series_uid)
            refs += [InstanceRef(study_uid, series_uid, uid, modality)
                     for uid in (_value(i, "00080018") for i in found) if uid]
        return sorted(refs, key=lambda r: (r.series_uid, r.sop_uid))

    def fetch_dataset(self, ref: InstanceRef) -> Any:
        """The instance as a pydicom Dataset, pixel data in the syntax the server stored."""
        return self._call(f"retrieve {ref.path()}", self._client.retrieve_instance, study_instance_uid=ref.study_uid,
                          series_instance_uid=ref.series_uid, sop_instance_uid=ref.sop_uid,
                          media_types=_ORIGINAL_SYNTAX)

    def fetch(self, ref: InstanceRef) -> bytes:
        """The instance as DICOM file bytes, ready for bcdeploy.runtime.images.imageio.decode_image."""
        import pydicom

        buffer = io.BytesIO()
        pydicom.dcmwrite(buffer, self.fetch_dataset(ref), enforce_file_format=True)
        return buffer.getvalue()

    def store(self, datasets: list[Any]) -> list[str]:
        """STOW-RS the datasets (e.g. SEGs); returns their SOP Instance UIDs, or raises naming the refused ones."""
        if not datasets:
            return []
        response = self._call(f"store {len(datasets)} instance(s)", self._client.store_instances, datasets=datasets)
        failed = [str(item.get("ReferencedSOPInstanceUID", "?")) for item in response.get("FailedSOPSequence", [])]
        if failed:
            raise PacsRefused(f"{self.url}: the server refused to store {len(failed)} of {len(datasets)} instance(s): "
                            f"{', '.join(failed)}")
        return [str(ds.SOPInstanceUID) for ds in datasets]

    def _search(self, what: str, method: Any, **kwargs: Any) -> list[dict[str, Any]]:
        """QIDO-RS, paged with explicit limit and offset.

        Not dicomweb-client's get_remaining: Orthanc's plugin ignores `offset` without `limit` when a
        filter such as ModalitiesInStudy is given, and get_remaining then loops forever. A page that
        brings nothing new also ends the search, for servers that ignore offset altogether.
        """
        results: list[dict[str, Any]] = []
        seen: set[str] = set()
        while True:
            page = self._call(what, method, limit=PAGE_SIZE, offset=len(results), **kwargs)
            fresh = [item for item in page if repr(item) not in seen]
            seen.update(repr(item) for item in fresh)
            results += fresh
            if len(page) < PAGE_SIZE or not fresh:
                return results

    def _call(self, what: str, method: Any, **kwargs: Any) -> Any:
        import requests

        try:
            return method(**kwargs)
        except requests.exceptions.HTTPError as err:
            status = err.response.status_code if err.response is not None else "?"
            kind = PacsRefused if isinstance(status, int) and 400 <= status < 500 and status not in (408, 429) else PacsError
            raise kind(f"{self.url}: {what} failed with HTTP {status}") from None
        except requests.exceptions.SSLError as err:  # said as the DIMSE destination says it (sender, audit)
            raise PacsError(f"{self.url}: TLS handshake refused: {_tls_reason(err)}") from None
        except requests.exceptions.RequestException as err:
            raise PacsError(f"{self.url}: cannot {what} ({type(err).__name__}); is the DICOMweb URL right "
                            "and the server running?") from None


def _tls_reason(err: BaseException) -> str:
    """The SSL error's own reason ("certificate verify failed: ..."), found below requests' and urllib3's
    wrappings (they hold it as a cause, a context or their first argument)."""
    import ssl

    todo: list[object] = [err]
    for _ in range(32):  # a chain, never walked for ever (a cycle of contexts)
        if not todo:
            break
        seen = todo.pop()
        if isinstance(seen, ssl.SSLError):
            return str(getattr(seen, "verify_message", None) or seen.reason or seen)[:160]
        if isinstance(seen, BaseException):
            todo += [seen.__cause__, seen.__context__, *seen.args[:1]]
    return type(err).__name__


def _value(item: dict[str, Any], tag: str) -> str | None:
    """One string value from a DICOM JSON object (QIDO-RS result), or None."""
    values = item.get(tag, {}).get("Value") or [None]
    return str(values[0]) if values[0] is not None else None


def plan_fetch(pacs: DicomWebPacs, study_uids: list[str] | None = None) -> list[InstanceRef]:
    """The mammograms a run would fetch: those of `study_uids`, or of every study holding MG images.

    `infer --dicomweb URL --dry-run` lists exactly this; the run then fetches these refs one by one.
    """
    studies = list(dict.fromkeys(study_uids)) if study_uids else pacs.studies()
    return [ref for study in studies for ref in pacs.instances(study)]
