"""Numbers do not move: four methods on two demo tasks for two epochs give the config hashes,
top-1 and final train losses stored in golden/demo_short.json (written by the code before the
one-path redesign). A change that alters what a run computes fails here and must say why."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import alore_bench as ab

GOLDEN = Path(__file__).with_name("golden") / "demo_short.json"


@pytest.mark.slow
def test_the_demo_numbers_and_hashes_are_the_stored_ones(env_data, tmp_path):
    for method in ("linear", "full", "lora", "alore"):
        result = ab.run(method, "demo_vit", "demo", tasks="digits,locate_shape", epochs=2, device="cpu",
                        results_dir=tmp_path, say=lambda line: None)
        assert result.ok
    got = {}
    for path in sorted(tmp_path.rglob("seed*.json")):
        record = json.loads(path.read_text())
        got[str(path.relative_to(tmp_path))] = (record["config_hash"], round(record["metrics"]["top1"], 6),
                                                round(record["metrics"]["final_train_loss"], 5))
    want = {g["path"]: (g["config_hash"], round(g["top1"], 6), round(g["loss"], 5))
            for g in json.loads(GOLDEN.read_text())}
    assert got == want
