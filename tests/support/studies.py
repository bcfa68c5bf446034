"""Study files the tests write: a demo study on one task, two seeds, ALoRE (and LoRA)."""

from __future__ import annotations

from pathlib import Path


def demo_study(name: str, epochs: int = 1, lora: bool = True) -> str:
    """`name` on demo/textures with seeds 42 and 44: ALoRE tuned over two lrs, LoRA over one."""
    text = (f'\nname = "{name}"\nsuite = "demo"\ntasks = ["textures"]\nbackbones = ["demo_vit"]\nseeds = [42, 44]\n'
            f'[recipe]\nepochs = {epochs}\n[variants.alore]\ngrid = {{ lr = [1e-3, 1e-2] }}\n')
    return text + ('[variants.lora]\ngrid = { lr = [1e-3] }\n' if lora else "")


def write_study(folder: Path, text: str, name: str = "study.toml") -> Path:
    path = Path(folder) / name
    path.write_text(text)
    return path
