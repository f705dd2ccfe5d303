from importlib import metadata

from bcdeploy.versions import package_versions


def test_installed_packages_listed_in_order_missing_left_out():
    listed = package_versions("numpy", "no-such-package-bcdeploy", "click")
    assert list(listed) == ["numpy", "click"]
    assert listed["numpy"] == metadata.version("numpy") and listed["click"] == metadata.version("click")


def test_every_recorder_uses_it():
    """A model sidecar, a benchmark's machine and a DICOM SEG name versions the same way."""
    from bcdeploy.bench.sysinfo import describe
    from bcdeploy.runtime.results.dicom.seg import _bcdeploy_version

    assert describe()["packages"]["numpy"] == metadata.version("numpy")
    assert _bcdeploy_version() == f"bcdeploy {metadata.version('bcdeploy')}"
