"""Offline, a weights download is not attempted at all: one short TCP probe of the download host
says it cannot be reached, and the run goes on from scratch with a note saying so (issue 14: each
offline timm run spent ~10 s in the hub's retries)."""

from __future__ import annotations

import socket

import pytest

from core import weights
from core.weights import WeightsQuery, find_weights, hub_host, reachable


@pytest.fixture(autouse=True)
def fresh_probes(monkeypatch):
    monkeypatch.setattr(weights, "_probed", {})


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    return port


def test_probe_tells_listening_from_closed_and_unresolvable():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        assert reachable(f"127.0.0.1:{server.getsockname()[1]}")
    assert not reachable(f"127.0.0.1:{_closed_port()}")
    assert not reachable("no-such-host.invalid:443")


def test_unreachable_host_means_no_download_attempt(tmp_path):
    called = []

    def download():
        called.append(1)
        raise AssertionError("must not be called offline")

    query = WeightsQuery("resnet18", "timm", ["resnet18.safetensors"], None, download,
                         (f"127.0.0.1:{_closed_port()}",))
    found = find_weights(query, tmp_path, timeout_s=10)
    assert found.path is None and found.source == "none" and called == []
    assert "cannot be reached" in found.note and "training from scratch" in found.note


def test_a_reachable_host_still_downloads(tmp_path):
    target = tmp_path / "w.pt"
    target.write_bytes(b"x")
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        query = WeightsQuery("m", "timm", [], None, lambda: target, (f"127.0.0.1:{server.getsockname()[1]}",))
        found = find_weights(query, tmp_path / "none", timeout_s=10)
    assert found.path == target and found.source == "download"


def test_hub_host_follows_hf_endpoint(monkeypatch):
    monkeypatch.delenv("HF_ENDPOINT", raising=False)
    assert hub_host() == "huggingface.co:443"
    monkeypatch.setenv("HF_ENDPOINT", "http://mirror.lan:8080")
    assert hub_host() == "mirror.lan:8080"
