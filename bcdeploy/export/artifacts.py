"""What one export step made: a model file, its sidecar, and its parity against PyTorch (or why not)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bcdeploy.export.parity import ParityReport
from bcdeploy.runtime.model.sidecar import ModelMeta


@dataclass(frozen=True, kw_only=True)
class Artifact:
    """`parity` and `not_checked` exclude each other: every artifact is checked or says why it is not."""

    name: str  # onnx, fp16, int8, openvino, openvino_int8, engine
    precision: str
    path: Path  # where it is once the export committed (final, never the staging folder)
    sidecar: Path
    meta: ModelMeta  # as recorded in the sidecar
    parity: ParityReport | None = None
    not_checked: str | None = None

    def __post_init__(self) -> None:
        if (self.parity is None) == (self.not_checked is None):
            raise ValueError(f"{self.name}: an artifact has a parity report or a reason why not, exactly one")

    @property
    def verdict(self) -> str:
        if self.parity is None:
            return f"not checked: {self.not_checked}"
        return "ok" if self.parity.passed else "FAIL"

    def parity_summary(self) -> dict:
        """What the sidecar records under export.parity."""
        if self.parity is None:
            return {"checked": False, "reason": self.not_checked}
        return {"checked": True, **self.parity.summary()}


@dataclass(frozen=True, kw_only=True)
class ExportResult:
    artifacts: tuple[Artifact, ...]
    removed: tuple[Path, ...] = ()  # stale model files of an earlier export, removed at commit
    triton: tuple[Path, ...] = ()  # model folders written into the Triton repository
    seconds: float = 0.0

    def __getitem__(self, name: str) -> Artifact:
        for artifact in self.artifacts:
            if artifact.name == name:
                return artifact
        raise KeyError(name)

    def table(self) -> str:
        """One line per artifact: artifact / precision / parity verdict / max|dlogit| / agreement / path."""
        rows = [("artifact", "precision", "parity", "max|dlogit|", "agreement", "path")]
        for a in self.artifacts:
            summary = a.parity.summary() if a.parity else {}
            max_abs = summary.get("max_abs_logit")
            agreement = summary.get("min_agreement")
            rows.append((a.name, a.precision, a.verdict, "-" if max_abs is None else f"{max_abs:.2e}",
                         "-" if agreement is None else f"{100 * agreement:.3f}%", str(a.path)))
        widths = [max(len(r[i]) for r in rows) for i in range(5)]
        return "\n".join("  ".join(c.ljust(w) for c, w in zip(r[:5], widths)) + "  " + r[5] for r in rows)
