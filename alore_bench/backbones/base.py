"""Backbone registry: architecture, input pipeline facts and where the pretrained weights come from.
Importing it needs neither torch nor timm: entries name their builders, which import them."""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, Mapping, Optional, Tuple

from ..errors import UserError, param
from ..paths import WEIGHTS_ENV
from ..registry import Registry, entries_of

if TYPE_CHECKING:
    import torch
    from torch import nn

# Normalisations of the published checkpoints: the values of timm.data.constants (IMAGENET_DEFAULT_*
# and IMAGENET_INCEPTION_*), written out so that the registry imports no timm; a test compares them.
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
INCEPTION_MEAN, INCEPTION_STD = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)


@dataclass(frozen=True)
class WeightSource:
    """Resolved pretrained weights: what was loaded, from where, with a content checksum."""

    kind: str  # "npz", "safetensors", "timm-hub", "package"
    location: str  # a file path or a timm tag
    sha256: Optional[str] = None
    # The published release the file is (`original`, `augreg`, ...), known by its file name or tag.
    release: Optional[str] = None

    def describe(self) -> Dict[str, Any]:
        described = {"kind": self.kind, "location": self.location, "sha256": self.sha256}
        if self.release:  # absent for backbones without named releases (their records are unchanged)
            described["release"] = self.release
        return described


@dataclass(frozen=True)
class WeightRelease:
    """One published weights file of a backbone's architecture, chosen with `--weights NAME`."""

    name: str
    file: str  # its published file name, looked for in the weights folder
    url: str = ""
    tag: str = ""  # timm's equivalent hub tag ("" when timm has none)
    summary: str = ""


@dataclass(frozen=True)
class BackboneSpec:
    """One backbone: its timm architecture, input pipeline facts, and where its pretrained weights
    come from (a published file found by name, timm's hub tag, or custom resolve / load functions)."""

    name: str
    summary: str
    family: str
    input_size: int
    mean: Tuple[float, float, float]
    std: Tuple[float, float, float]
    interpolation: str
    # Builds the architecture with a fresh head of `num_classes` (0 = no head).
    build: Callable[..., nn.Module]
    # The file the paper links, looked for by this name in the weights folder, and where to get it.
    weight_file: str = ""
    weight_url: str = ""
    # The equivalent timm tag for `--weights timm` ("" when timm has none).
    weight_tag: str = ""
    # Checkpoint clean-up before timm's filter (e.g. dropping MAE's final norm for global pooling).
    prepare_state: Optional[Callable[[dict], dict]] = None
    # State keys (prefixes) the protocol adds and the checkpoint cannot have (e.g. MAE's fc_norm).
    new_keys: Tuple[str, ...] = ()
    # Custom weight resolution / loading (the demo backbone); the published-file logic otherwise.
    resolver: Optional[Callable[[Optional[str], Path], WeightSource]] = None
    loader: Optional[Callable[[nn.Module, WeightSource], None]] = None
    # Convolution-heavy families run faster with NHWC memory on CUDA (model and batches).
    channels_last: bool = False
    # The name tables print (reports: `--name` overrides it).
    display: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)
    # The default weights' release name (recorded; "" for backbones with one file), and other
    # published releases of the same architecture (`--weights NAME`).
    release: str = ""
    releases: Tuple[WeightRelease, ...] = ()

    @property
    def default_release(self) -> WeightRelease:
        return WeightRelease(self.release, self.weight_file, self.weight_url, self.weight_tag, self.summary)

    def all_releases(self) -> Tuple[WeightRelease, ...]:
        """The default release first, then the others (none for backbones without names)."""
        return ((self.default_release,) if self.release else ()) + tuple(self.releases)

    def named_release(self, name: Optional[str]) -> Optional[WeightRelease]:
        return next((r for r in self.all_releases() if name and r.name == name), None)

    @property
    def display_name(self) -> str:
        return self.display or self.name

    def create(self, num_classes: int, drop_path: float = 0.0, device: str | torch.device = "cpu") -> nn.Module:
        import torch

        with torch.device(device):
            return self.build(num_classes=num_classes, drop_path=drop_path)

    def resolve_weights(self, weights: Optional[str], data_dir: Optional[Path]) -> WeightSource:
        """Find the weights from the --weights value (a file, a folder, `timm`) or the weights
        folder; a UserError naming the file, where it was looked for and the options otherwise."""
        if self.resolver is not None:
            return self.resolver(weights, data_dir)
        from ..paths import weights_folder

        if weights == "timm":
            return self.hub_source()
        release = self.named_release(weights)
        if release is not None:  # a release by name: its published file in the weights folder
            return self._release_source(release, weights_folder(data_dir))
        if weights:
            path = Path(weights).expanduser()
            if path.is_dir() and self.weight_file:
                path = path / self.weight_file
            if not path.is_file():
                expected = f" (expected {self.weight_file}{self._from_url()})" if self.weight_file else ""
                if Path(weights).expanduser().is_dir():  # a folder (--weights DIR or --weights-dir) without the file
                    raise UserError(f"{weights}: no {self.weight_file or 'weights file'} in this folder (from {param('weights')} "
                                    f"or {param('weights_dir')}); download it{self._from_url()} there")
                if self.all_releases() and Path(weights).name == weights and not Path(weights).suffix:
                    names = ", ".join(r.name for r in self.all_releases())
                    raise UserError(f"{param('weights', weights)}: backbone {self.name} has no release {weights} "
                                    f"(its releases: {names}) and no such file exists; name a release or give a path")
                raise UserError(f"{param('weights', weights)}: no such file{expected}; give the path to the file"
                                f"{', or ' + param('weights', 'timm') + ' for timm tag ' + self.weight_tag if self.weight_tag else ''}")
            return self._file_source(path)
        return self._release_source(self.default_release, weights_folder(data_dir))

    def _release_source(self, release: WeightRelease, folder: Path) -> WeightSource:
        """A release's file from the weights folder, else its timm tag from the hub's cache, else one line."""
        if release.file and (folder / release.file).is_file():
            return self._file_source(folder / release.file)
        if release.tag:
            from .checkpoints import cached_hub_file

            cached = cached_hub_file(release.tag)
            if cached is not None:
                return WeightSource("timm-hub", release.tag, file_sha256(cached), release.name or None)
        named = f" release {release.name}" if release.name and release.name != self.release else ""
        if not release.file:
            raise UserError(f"backbone {self.name}: no published weights file; pass {param('weights', 'PATH')}"
                            f"{' or ' + param('weights', 'timm') + ' (tag ' + release.tag + ')' if release.tag else ''}")
        url = f" from {release.url}" if release.url else ""
        hub = f", or {param('weights', 'timm')} for tag {release.tag}" if release.tag and not named else ""
        raise UserError(f"backbone {self.name}{named}: pretrained weights {release.file} not found in {folder}; "
                        f"download it{url} into that folder ({param('weights_dir')} or ${WEIGHTS_ENV} "
                        f"choose the folder), or pass {param('weights', 'PATH')}{hub}")

    def _from_url(self) -> str:
        return f" from {self.weight_url}" if self.weight_url else ""

    def _file_source(self, path: Path) -> WeightSource:
        from .checkpoints import check_container, checkpoint_kind

        check_container(path)
        # A published file keeps its name: the release it is, by that name (the checksum is its identity).
        release = next((r.name for r in self.all_releases() if r.file == path.name), None)
        return WeightSource(checkpoint_kind(path), str(path.resolve()), file_sha256(path), release)

    def hub_source(self, tag: Optional[str] = None) -> WeightSource:
        """timm's hub weights: from the local cache, or the hub when it answers (fails in seconds otherwise)."""
        from .checkpoints import cached_hub_file, hub_reachable

        tag = tag or self.weight_tag
        if not tag:
            raise UserError(f"{param('weights', 'timm')}: backbone {self.name} has no timm equivalent; pass "
                            f"{param('weights', 'PATH')}"
                            f"{' to ' + self.weight_file if self.weight_file else ''}")
        release = next((r.name for r in self.all_releases() if r.tag == tag), None)
        cached = cached_hub_file(tag)
        if cached is not None:
            return WeightSource("timm-hub", tag, file_sha256(cached), release)
        if not hub_reachable():
            raise UserError(f"{param('weights', 'timm')}: the Hugging Face hub is not reachable from here and timm tag "
                            f"{tag} is not in its cache; pass {param('weights', 'PATH')}{' to ' + self.weight_file if self.weight_file else ''}")
        return WeightSource("timm-hub", tag, release=release)

    def load_weights(self, model: nn.Module, source: WeightSource) -> None:
        """Load resolved weights into a built model; the classifier head stays as built."""
        if self.loader is not None:
            self.loader(model, source)
            return
        from .checkpoints import fit_state, load_file_into

        if source.kind == "timm-hub":
            import timm

            try:
                pretrained = timm.create_model(source.location, pretrained=True, num_classes=0)
            except Exception as error:  # network, cache or hub errors: one line
                raise UserError(f"{param('weights', 'timm')}: could not load timm tag {source.location} "
                                f"({type(error).__name__}: {str(error).splitlines()[0][:160] if str(error) else ''})") from None
            state = pretrained.state_dict()
            if self.prepare_state is not None:
                state = self.prepare_state(state)
            fit_state(model, state, source.location, self.new_keys)
        else:
            load_file_into(model, Path(source.location), self.prepare_state, self.new_keys)


BACKBONES: Registry[BackboneSpec] = Registry("backbone", param("backbone"), group="alore_bench.backbones",
                                              adapt=entries_of(BackboneSpec))


def file_sha256(path: Path) -> str:
    """The file's sha256, hashed once per process while its size and mtime stay the same (every
    job of a study resolves the same weights file)."""
    stat = Path(path).stat()
    return _sha256_of(str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=16)
def _sha256_of(path: str, size: int, mtime_ns: int, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def load_state_dict_checked(model: nn.Module, state: Mapping[str, torch.Tensor], origin: str) -> None:
    """Load backbone weights; only the classifier head may be absent. Anything else is one line."""
    from .checkpoints import fit_state

    fit_state(model, state, origin)
