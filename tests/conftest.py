import ipaddress
import os
import socket

import numpy as np
import pytest

os.environ.setdefault("PIXEL_PROFILE", "smoke")


class NetworkBlocked(RuntimeError):
    pass


def _is_local(address) -> bool:
    host = address[0] if isinstance(address, tuple) else address
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name other than localhost: would need DNS, so not local
        return False


@pytest.fixture(autouse=True, scope="session")
def no_network():
    """Nothing may download at run time: the test process may only talk to loopback."""
    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex

    def guard(sock, address):
        if sock.family in (socket.AF_INET, socket.AF_INET6) and not _is_local(address):
            raise NetworkBlocked(f"network access blocked in tests: {address}")

    def connect(sock, address):
        guard(sock, address)
        return real_connect(sock, address)

    def connect_ex(sock, address):
        guard(sock, address)
        return real_connect_ex(sock, address)

    socket.socket.connect, socket.socket.connect_ex = connect, connect_ex
    yield
    socket.socket.connect, socket.socket.connect_ex = real_connect, real_connect_ex


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture
def photo():
    """A small real photo crop (HWC float32 RGB)."""
    from pixel_utils.data.images import center_crop
    from pixel_utils.data.sources import load_photo

    return center_crop(load_photo("astronaut"), 96)
