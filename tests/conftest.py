"""Shared fixtures: a tiny timm ViT and a prepared copy of the demo suite."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from alore_bench.data.cache import write_task
from alore_bench.data.demo import GENERATORS
from alore_bench.data.suites import SUITES

torch.set_num_threads(2)

from tests.support.models import TINY_VIT_ARGS, make_tiny_vit  # noqa: F401 (fixtures below)


@pytest.fixture
def tiny_vit():
    return make_tiny_vit()


@pytest.fixture(scope="session")
def demo_data(tmp_path_factory) -> Path:
    """The demo suite prepared once per test session."""
    root = tmp_path_factory.mktemp("data")
    suite = SUITES.get("demo")
    for task in suite.tasks:
        write_task(root, task, GENERATORS[task.generator](task), source={"kind": "generated", "generator": task.generator})
    return root


@pytest.fixture
def env_data(demo_data, monkeypatch) -> Path:
    monkeypatch.setenv("ALORE_BENCH_DATA", str(demo_data))
    return demo_data


@pytest.fixture
def tfds_online(monkeypatch):
    """TFDS is mocked (tfds.testing.mock_data: no download happens), so the checks that guard a
    real download are told what a machine with TensorFlow and a network would find."""
    from alore_bench import network
    from alore_bench.data import tfds_source

    monkeypatch.setattr(tfds_source, "tensorflow_missing", lambda: False)
    monkeypatch.setattr(network, "unreachable_hosts", lambda urls, timeout: [])
