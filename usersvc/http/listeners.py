"""Closing a listening TCP socket without resetting the connections it has accepted.

The kernel completes a client's connection before the process accepts it: the client
sends its request at once, and if the listening socket closes while the connection
waits in its accept queue, the kernel resets it: the client's request, sent, is never
read. So before the listener closes, the kernel is told to drop new connection
attempts (their SYN, by a one-line socket filter: the client's retry a second later
finds the port closed, a plain refusal), and the process accepts what is queued.
Linux only; elsewhere the listener just closes.

Under gunicorn the listening socket is the master's, shared by its workers: a worker
that stops alone (a reload, ``max_requests``) must leave it to the others, so only
once the master has let go of it (it does when it stops) is it closed this way.
"""

import contextlib
import ctypes
import os
import socket
import struct
from collections.abc import Iterator

SO_ATTACH_FILTER = getattr(socket, "SO_ATTACH_FILTER", 26)
TCP_INFO = getattr(socket, "TCP_INFO", 11)
_TCP_INFO_SIZE = 104
_UNACKED_OFFSET = 24  # struct tcp_info's tcpi_unacked: a listener's accept queue
_SYN = 0x02
# Classic BPF over the TCP header: load the flags byte; SYN set: drop; else keep.
_DROP_SYN = (
    (0x30, 0, 0, 13),  # ldb [13]
    (0x45, 0, 1, _SYN),  # jset #SYN, next, skip one
    (0x06, 0, 0, 0),  # ret #0: drop
    (0x06, 0, 0, 0xFFFFFFFF),  # ret #-1: keep
)


@contextlib.contextmanager
def _same_socket(fd: int) -> Iterator[socket.socket]:
    """The socket of ``fd`` through a duplicate descriptor (closed afterwards; the
    socket stays open through ``fd``)."""
    sock = socket.socket(fileno=os.dup(fd))
    try:
        yield sock
    finally:
        sock.close()


def is_tcp(fd: int) -> bool:
    with _same_socket(fd) as sock:
        return sock.family in (socket.AF_INET, socket.AF_INET6) and sock.type == socket.SOCK_STREAM


def refuse_new_connections(fd: int) -> bool:
    """From now on, new connection attempts to this listening socket are dropped, while
    the connections already made wait in its accept queue. False where the kernel
    cannot do it."""
    code = b"".join(struct.pack("HBBI", *instruction) for instruction in _DROP_SYN)
    program = ctypes.create_string_buffer(code, len(code))
    fprog = struct.pack("HL", len(_DROP_SYN), ctypes.addressof(program))
    with _same_socket(fd) as sock:
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)
        except OSError:
            return False
    return True


def accept_queue(fd: int) -> int:
    """Connections the kernel made that the process has not accepted yet (0 where the
    kernel does not tell)."""
    with _same_socket(fd) as sock:
        try:
            info = sock.getsockopt(socket.IPPROTO_TCP, TCP_INFO, _TCP_INFO_SIZE)
        except OSError:
            return 0
    return struct.unpack_from("I", info, _UNACKED_OFFSET)[0] if len(info) >= 28 else 0


def held_by(pid: int, fd: int) -> bool:
    """Whether process ``pid`` has this socket open too (True when it cannot be told:
    then the socket is left as it is)."""
    target = f"socket:[{os.fstat(fd).st_ino}]"
    directory = f"/proc/{pid}/fd"
    try:
        names = os.listdir(directory)
    except OSError:
        return True
    for name in names:
        with contextlib.suppress(OSError):
            if os.readlink(f"{directory}/{name}") == target:
                return True
    return False
