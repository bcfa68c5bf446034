"""Protocol presets: the input-pipeline choices that make numbers in this field incomparable, set
as a unit with `run --protocol NAME` and recorded in every record.

- vpt: KMnP/vpt's VTAB-1k pipeline (`src/data/datasets/tf_dataset.py`: TFDS images resized with
  tf.image.resize, bilinear without anti-aliasing, normalised with ImageNet's mean and std); the
  data must come from TFDS (or VPT's FGVC JSON splits for FGVC).
- noah: NOAH's pre-made vtab-1k folders as its Adapter and LoRA rows were trained
  (`configs/Adapter/VTAB/slurm_train_adapter_vtab.sh` line 34: --direct_resize without --inception;
  `lib/datasets.py` lines 227-241: PIL bicubic resize to 224 x 224, ImageNet mean and std), the
  data behind most rows V-PETL Bench tabulates.
- native: the backbone's own pretrained input pipeline (its mean/std and interpolation), any data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Mapping, Optional, Tuple

from .errors import UserError, param
from .registry import Registry


@dataclass(frozen=True)
class Protocol:
    name: str
    description: str
    # "imagenet" or "backbone" (the backbone's own mean / std)
    normalisation: str
    # Resize on load (images stored at native size when small): an F.interpolate mode, or None for the backbone's.
    interpolation: Optional[str]
    antialias: bool
    # Data sources (manifest source kinds) the protocol's published numbers were made from; None: any.
    sources: Optional[Tuple[str, ...]]
    source: str

    def describe(self) -> Dict[str, Any]:
        return {"name": self.name, "expected_sources": list(self.sources) if self.sources else None}

    def check_source(self, task: str, kind: str) -> None:
        if self.sources is not None and kind not in self.sources:
            others = [p for p in PROTOCOLS.names() if PROTOCOLS.get(p).sources is None or kind in PROTOCOLS.get(p).sources]
            raise UserError(f"task {task} was prepared from {kind} data, but {param('protocol', self.name)} expects "
                            f"{' or '.join(self.sources)} data: pass {' or '.join(param('protocol', o) for o in others)}, "
                            f"or prepare the task from {self.sources[0]}")


AUTO = "auto"


def implied_by(kind: str) -> str:
    """The protocol the data source `kind` implies: the first whose published numbers were made from
    it (tfds, json, archive -> vpt; folder -> noah), else the one that takes any data (native)."""
    names = PROTOCOLS.names()
    for name in names:
        sources = PROTOCOLS.get(name).sources
        if sources is not None and kind in sources:
            return name
    return next(name for name in names if PROTOCOLS.get(name).sources is None)


def resolve_auto(kinds: Mapping[str, str]) -> str:
    """The one protocol `auto` means for tasks prepared from `kinds` (task -> source kind); tasks whose
    sources imply different protocols are a one-line refusal."""
    implied = {task: implied_by(kind) for task, kind in kinds.items()}
    chosen = sorted(set(implied.values()))
    if len(chosen) > 1:
        groups = "; ".join(f"{p}: {', '.join(sorted(t for t, q in implied.items() if q == p))}" for p in chosen)
        raise UserError(f"{param('protocol', AUTO)}: the tasks' prepared data imply different protocols ({groups}); "
                        f"prepare them from one source, or pass {param('protocol')} with one of "
                        f"{', '.join(chosen)}")
    return chosen[0]


PROTOCOLS: Registry[Protocol] = Registry("protocol", param("protocol"))
PROTOCOLS.register("vpt", Protocol(
    name="vpt", description="VPT's TFDS pipeline: ImageNet mean/std, bilinear resize without anti-aliasing",
    normalisation="imagenet", interpolation="bilinear", antialias=False, sources=("tfds", "json", "archive"),
    source="KMnP/vpt src/data/datasets/tf_dataset.py, src/data/transforms.py"))
PROTOCOLS.register("noah", Protocol(
    name="noah", description="NOAH's pre-made folders: ImageNet mean/std, PIL bicubic resize",
    normalisation="imagenet", interpolation="bicubic", antialias=True, sources=("folder",),
    source="ZhangYuanhan-AI/NOAH lib/datasets.py (transforms.Resize((224, 224), interpolation=3))"))
PROTOCOLS.register("native", Protocol(
    name="native", description="the backbone's own input pipeline (mean/std, interpolation), any data source",
    normalisation="backbone", interpolation=None, antialias=True, sources=None,
    source="the backbone's pretrained configuration"))
