"""Which storage SOP classes the node accepts, and which of those it segments.

A mammography PACS sends whole studies: the FOR PRESENTATION mammograms the model reads, and beside
them raw FOR PROCESSING images, tomosynthesis, CAD reports, presentation states, key images. A node
that refused those would make the sender's study transfer fail, so they are accepted (answered, logged
and audited) and not kept: the gateway is not an archive. Only the classes in SEGMENTED are spooled.

An image is a mammogram by its Modality, as `infer --modalities` decides it, not by its SOP class:
digitised film stored as Secondary Capture with Modality MG (all of CBIS-DDSM) is segmented; a
Secondary Capture of another modality (a screenshot in the study) is accepted and not kept.
"""

from __future__ import annotations

DIGITAL_MAMMOGRAPHY_PRESENTATION = "1.2.840.10008.5.1.4.1.1.1.2"
DIGITAL_XRAY_PRESENTATION = "1.2.840.10008.5.1.4.1.1.1.1"
COMPUTED_RADIOGRAPHY = "1.2.840.10008.5.1.4.1.1.1"
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
VERIFICATION = "1.2.840.10008.1.1"

# Segmented: digital mammography for presentation; DX for presentation and CR only when their Modality is
# MG (older mammography units send those; another modality is refused), and Secondary Capture when its
# Modality is MG (digitised film; another modality is accepted, not kept), checked on receipt (scp.py).
SEGMENTED = {
    DIGITAL_MAMMOGRAPHY_PRESENTATION: "Digital Mammography X-Ray Image Storage - For Presentation",
    DIGITAL_XRAY_PRESENTATION: "Digital X-Ray Image Storage - For Presentation",
    COMPUTED_RADIOGRAPHY: "Computed Radiography Image Storage",
    SECONDARY_CAPTURE: "Secondary Capture Image Storage",
}
NEEDS_MG_MODALITY = frozenset({DIGITAL_XRAY_PRESENTATION, COMPUTED_RADIOGRAPHY})
KEPT_ONLY_IF_MG = frozenset({SECONDARY_CAPTURE})

ACCEPTED_ONLY = {
    "1.2.840.10008.5.1.4.1.1.1.2.1": "Digital Mammography X-Ray Image Storage - For Processing",
    "1.2.840.10008.5.1.4.1.1.1.1.1": "Digital X-Ray Image Storage - For Processing",
    "1.2.840.10008.5.1.4.1.1.13.1.3": "Breast Tomosynthesis Image Storage",
    "1.2.840.10008.5.1.4.1.1.13.1.4": "Breast Projection X-Ray Image Storage - For Presentation",
    "1.2.840.10008.5.1.4.1.1.13.1.5": "Breast Projection X-Ray Image Storage - For Processing",
    "1.2.840.10008.5.1.4.1.1.7.4": "Multi-frame True Color Secondary Capture Image Storage",
    "1.2.840.10008.5.1.4.1.1.88.50": "Mammography CAD SR Storage",
    "1.2.840.10008.5.1.4.1.1.88.11": "Basic Text SR Storage",
    "1.2.840.10008.5.1.4.1.1.88.22": "Enhanced SR Storage",
    "1.2.840.10008.5.1.4.1.1.88.33": "Comprehensive SR Storage",
    "1.2.840.10008.5.1.4.1.1.88.34": "Comprehensive 3D SR Storage",
    "1.2.840.10008.5.1.4.1.1.88.59": "Key Object Selection Document Storage",
    "1.2.840.10008.5.1.4.1.1.11.1": "Grayscale Softcopy Presentation State Storage",
    "1.2.840.10008.5.1.4.1.1.66.4": "Segmentation Storage",
}

ACCEPTED = {**SEGMENTED, **ACCEPTED_ONLY}


def name(uid: str) -> str:
    return ACCEPTED.get(uid, uid)
