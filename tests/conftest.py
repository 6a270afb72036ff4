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


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A tiny untrained ×4 student saved as a complete checkpoint (CLI and video tests)."""
    import torch

    from pixel_utils.models.networks import build_model
    from pixel_utils.training.loop import CHECKPOINT_FORMAT, save_checkpoint

    torch.manual_seed(0)
    kwargs = {"scale": 4, "channels": 8, "blocks": 1}
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    weights = build_model("unshuffle", **kwargs).state_dict()
    save_checkpoint(path, {"format": CHECKPOINT_FORMAT, "model_name": "unshuffle",
                           "model_kwargs": kwargs, "model": weights, "ema": None,
                           "complete": True})  # fmt: skip
    return str(path)
