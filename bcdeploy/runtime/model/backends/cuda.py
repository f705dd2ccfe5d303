"""A thin ctypes wrapper over the CUDA runtime (libcudart): device memory, copies, streams.

Why not torch or pycuda: the runtime must run where neither is installed (pycuda does not even
build without CUDA headers). TensorRT ships with libcudart, so this is all TensorRT needs.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from functools import lru_cache

import numpy as np

from bcdeploy.errors import BackendError

_HOST_TO_DEVICE = 1
_DEVICE_TO_HOST = 2
_ATTR_CC_MAJOR = 75
_ATTR_CC_MINOR = 76
_LIB_NAMES = ("libcudart.so", "libcudart.so.13", "libcudart.so.12", "libcudart.so.11.0", "cudart64_12.dll")


@lru_cache(maxsize=1)
def cudart() -> ctypes.CDLL:
    found = ctypes.util.find_library("cudart")
    for name in ((found,) if found else ()) + _LIB_NAMES:
        try:
            return ctypes.CDLL(name)
        except OSError:
            continue
    raise BackendError("CUDA runtime (libcudart) not found: TensorRT needs an NVIDIA GPU with CUDA installed")


def check(status: int, what: str) -> None:
    if status != 0:
        lib = cudart()
        lib.cudaGetErrorString.restype = ctypes.c_char_p
        raise BackendError(f"CUDA {what} failed: {lib.cudaGetErrorString(status).decode()} (error {status})")


def device_count() -> int:
    count = ctypes.c_int(0)
    try:
        status = cudart().cudaGetDeviceCount(ctypes.byref(count))
    except BackendError:
        return 0
    return count.value if status == 0 else 0


def set_device(device: int) -> None:
    check(cudart().cudaSetDevice(device), f"cudaSetDevice({device})")


def device_name(device: int = 0) -> str:
    """First field of cudaDeviceProp is `char name[256]`; the buffer is larger than any version's struct."""
    buf = ctypes.create_string_buffer(8192)
    check(cudart().cudaGetDeviceProperties(buf, device), "cudaGetDeviceProperties")
    return buf.raw[:256].split(b"\0", 1)[0].decode(errors="replace")


def compute_capability(device: int = 0) -> str:
    major, minor = ctypes.c_int(), ctypes.c_int()
    check(cudart().cudaDeviceGetAttribute(ctypes.byref(major), _ATTR_CC_MAJOR, device), "cudaDeviceGetAttribute")
    check(cudart().cudaDeviceGetAttribute(ctypes.byref(minor), _ATTR_CC_MINOR, device), "cudaDeviceGetAttribute")
    return f"{major.value}.{minor.value}"


class Stream:
    def __init__(self) -> None:
        self.handle = ctypes.c_void_p()
        check(cudart().cudaStreamCreate(ctypes.byref(self.handle)), "cudaStreamCreate")

    def synchronize(self) -> None:
        check(cudart().cudaStreamSynchronize(self.handle), "cudaStreamSynchronize")

    def free(self) -> None:
        if self.handle:
            cudart().cudaStreamDestroy(self.handle)
            self.handle = ctypes.c_void_p()


class DeviceBuffer:
    """Device memory that grows on demand; copies to and from contiguous numpy arrays."""

    def __init__(self) -> None:
        self.ptr = ctypes.c_void_p()
        self.nbytes = 0

    def ensure(self, nbytes: int) -> None:
        if nbytes <= self.nbytes:
            return
        self.free()
        check(cudart().cudaMalloc(ctypes.byref(self.ptr), ctypes.c_size_t(nbytes)), f"cudaMalloc({nbytes})")
        self.nbytes = nbytes

    @property
    def address(self) -> int:
        return int(self.ptr.value or 0)

    def copy_from(self, host: np.ndarray, stream: Stream) -> None:
        self.ensure(host.nbytes)
        check(cudart().cudaMemcpyAsync(self.ptr, host.ctypes.data_as(ctypes.c_void_p), ctypes.c_size_t(host.nbytes),
                                       _HOST_TO_DEVICE, stream.handle), "cudaMemcpyAsync(H2D)")

    def copy_to(self, host: np.ndarray, stream: Stream) -> None:
        check(cudart().cudaMemcpyAsync(host.ctypes.data_as(ctypes.c_void_p), self.ptr, ctypes.c_size_t(host.nbytes),
                                       _DEVICE_TO_HOST, stream.handle), "cudaMemcpyAsync(D2H)")

    def free(self) -> None:
        if self.nbytes:
            cudart().cudaFree(self.ptr)
            self.ptr, self.nbytes = ctypes.c_void_p(), 0
