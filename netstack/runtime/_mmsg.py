"""ctypes bindings for recvmmsg/sendmmsg: the structures and the libc entry points.

``recvmmsg``/``sendmmsg`` are not in the socket module; calling them through ctypes on
preallocated arrays moves about 64 frames per system call (netstack.runtime.afpacket).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import struct

DEFAULT_BATCH = 64  # frames per recvmmsg/sendmmsg call


class IoVec(ctypes.Structure):
    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]


class TxIoVec(ctypes.Structure):
    # c_char_p lets us store a bytes object directly (pointer to its buffer, no copy) or an
    # integer address for writable buffers; ctypes keeps the bytes object alive meanwhile.
    _fields_ = [("iov_base", ctypes.c_char_p), ("iov_len", ctypes.c_size_t)]


class SockaddrLL(ctypes.Structure):
    _fields_ = [
        ("sll_family", ctypes.c_ushort),
        ("sll_protocol", ctypes.c_ushort),
        ("sll_ifindex", ctypes.c_int),
        ("sll_hatype", ctypes.c_ushort),
        ("sll_pkttype", ctypes.c_ubyte),
        ("sll_halen", ctypes.c_ubyte),
        ("sll_addr", ctypes.c_ubyte * 8),
    ]


class MsgHdr(ctypes.Structure):
    _fields_ = [
        ("msg_name", ctypes.c_void_p),
        ("msg_namelen", ctypes.c_uint32),
        ("msg_iov", ctypes.c_void_p),
        ("msg_iovlen", ctypes.c_size_t),
        ("msg_control", ctypes.c_void_p),
        ("msg_controllen", ctypes.c_size_t),
        ("msg_flags", ctypes.c_int),
    ]


class MMsgHdr(ctypes.Structure):
    _fields_ = [("msg_hdr", MsgHdr), ("msg_len", ctypes.c_uint)]


MMSG_SIZE = ctypes.sizeof(MMsgHdr)
NAMELEN_OFFSET = MsgHdr.msg_namelen.offset
FLAGS_OFFSET = MsgHdr.msg_flags.offset
SOCKADDR_LL_SIZE = ctypes.sizeof(SockaddrLL)
U32 = struct.Struct("=I")
# msg_hdr.msg_flags (int) then, after padding, mmsghdr.msg_len (unsigned int)
FLAGS_LEN = struct.Struct(f"=i{MMsgHdr.msg_len.offset - FLAGS_OFFSET - 4}xI")


def _load_libc() -> ctypes.CDLL:
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


libc = _load_libc()
recvmmsg = getattr(libc, "recvmmsg", None)
sendmmsg = getattr(libc, "sendmmsg", None)
if recvmmsg is not None:
    recvmmsg.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int, ctypes.c_void_p]
    recvmmsg.restype = ctypes.c_int
if sendmmsg is not None:
    sendmmsg.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int]
    sendmmsg.restype = ctypes.c_int
