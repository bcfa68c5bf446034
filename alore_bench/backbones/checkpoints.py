"""Checkpoint files as their authors publish them, read without ever executing code, converted to
timm's key layout by timm's own checkpoint filters, and fitted to a model with one-line errors.

Safe loading only: numpy with allow_pickle=False (Google's .npz), safetensors, and
`torch.load(weights_only=True)` for the pickle-based .pth / .pth.tar files, which refuses any
object that is not a tensor or a plain container (a pickle that would run code is refused
before anything runs).
"""

from __future__ import annotations

import importlib
import json
import os
import pickle
import re
import zipfile
from pathlib import Path
from typing import Callable, Dict, Iterable, Mapping, Optional

import numpy as np
import torch
from torch import nn

from ..errors import UserError, param
from .. import network

# Wrappers published checkpoints nest their weights in (MoCo v3: state_dict; MAE, Swin, ConvNeXt: model).
NESTING_KEYS = ("state_dict", "model", "module")
# A self-supervised pretraining checkpoint's encoder (MoCo v3: base and momentum encoders, the base is used).
ENCODER_PREFIX = "module.base_encoder."
# A data-parallel wrapper's prefix on every key (MoCo v3's linear checkpoint).
PARALLEL_PREFIX = "module."


def checkpoint_kind(path: Path) -> str:
    name = path.name.lower()
    if name.endswith(".npz"):
        return "npz"
    if name.endswith(".safetensors"):
        return "safetensors"
    return "torch"


def check_container(path: Path) -> None:
    """A cheap look at a checkpoint's container before any job (an empty file, a truncated zip or a
    broken safetensors header), so that a damaged download is one line up front, not a failed job."""
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as handle:
            head = handle.read(8)
            if size == 0:
                raise EOFError("the file is empty")
            if checkpoint_kind(path) == "safetensors":
                length = int.from_bytes(head, "little")
                if len(head) < 8 or not 0 < length <= size - 8:
                    raise ValueError("the header length does not fit the file")
                json.loads(handle.read(length))
            elif checkpoint_kind(path) == "npz" or head[:2] == b"PK":  # npz and torch's zip format
                with zipfile.ZipFile(path) as archive:
                    archive.namelist()  # the central directory sits at the end: a truncated file has none
    except Exception as error:  # OSError, EOFError, zip and JSON errors: a damaged file
        raise _corrupt(path, error) from None


def read_checkpoint(path: Path) -> Dict[str, torch.Tensor]:
    """Every tensor of a checkpoint file (nesting and wrapper prefixes removed). Any problem with
    the file is one UserError naming it."""
    path = Path(path)
    kind = checkpoint_kind(path)
    try:
        if kind == "npz":
            with np.load(path, allow_pickle=False) as archive:
                raw = {key: torch.from_numpy(np.ascontiguousarray(archive[key])) for key in archive.files}
        elif kind == "safetensors":
            from safetensors.torch import load_file

            raw = load_file(str(path))
        else:
            raw = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(error))
        if found is None:  # not an object the safe unpickler refused: the file itself is damaged
            raise _corrupt(path, error) from None
        raise UserError(f"{path}: refused, the checkpoint carries a pickled Python object ({found.group(1)}), "
                        "not only tensors; loading it could run code. Convert it where you trust it: save its "
                        "state dict with safetensors and pass that file") from None
    except ValueError as error:
        if "allow_pickle" in str(error):
            raise UserError(f"{path}: refused, the .npz holds pickled object arrays; loading them could run code. "
                            "Save plain numeric arrays only") from None
        raise _corrupt(path, error) from None
    except Exception as error:  # OSError, EOFError, zip and safetensors errors: a damaged file
        raise _corrupt(path, error) from None
    return unwrap_state(raw, path)


def _first_line(error: BaseException) -> str:
    """The informative line of an error (torch's unpickler puts its reason after advice lines)."""
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    reason = next((line for line in lines if "WeightsUnpickler error" in line or "Unsupported operand" in line), None)
    return ((reason or (lines[0] if lines else type(error).__name__)).replace("WeightsUnpickler error: ", ""))[:160]


def _corrupt(path: Path, error: BaseException) -> UserError:
    return UserError(f"{path}: not a readable checkpoint (truncated or corrupt? {type(error).__name__}: "
                     f"{_first_line(error)}); download the file again")


def unwrap_state(raw: object, origin: Path | str) -> Dict[str, torch.Tensor]:
    """The tensors of a loaded checkpoint: nested under state_dict / model if so, wrapper prefixes
    (`module.`, MoCo's base encoder) removed; everything that is not a tensor (epoch, optimizer) dropped."""
    state = raw
    while isinstance(state, Mapping):
        inner = next((state[k] for k in NESTING_KEYS if isinstance(state.get(k), Mapping)), None)
        if inner is None:
            break
        state = inner
    if not isinstance(state, Mapping):
        raise UserError(f"{origin}: holds a {type(state).__name__}, not a state dict of tensors")
    tensors = {str(k): v for k, v in state.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise UserError(f"{origin}: holds no tensors (an empty or non-weights file)")
    if any(k.startswith(ENCODER_PREFIX) for k in tensors):
        return {k[len(ENCODER_PREFIX):]: v for k, v in tensors.items() if k.startswith(ENCODER_PREFIX)}
    if all(k.startswith(PARALLEL_PREFIX) for k in tensors):
        return {k[len(PARALLEL_PREFIX):]: v for k, v in tensors.items()}
    return tensors


def timm_filter(model: nn.Module) -> Optional[Callable[[dict, nn.Module], dict]]:
    """timm's own checkpoint filter for the model's family (original layouts -> timm's), if it has one."""
    module = importlib.import_module(type(model).__module__)
    return getattr(module, "checkpoint_filter_fn", None)


def classifier_prefix(model: nn.Module) -> Optional[str]:
    """`head.` (ViT, Mixer) or `head.fc.` (Swin, ConvNeXt): the part of the state that is always new."""
    classifier = model.get_classifier()
    for name, module in model.named_modules():
        if module is classifier:
            return f"{name}." if name else None
    return None


def fit_state(model: nn.Module, state: Mapping[str, torch.Tensor], origin: str,
              new_keys: Iterable[str] = ()) -> None:
    """Load `state` into `model`: the classifier is left as built, `new_keys` prefixes (modules the
    protocol adds, e.g. MAE's fc_norm) may be absent; anything else that does not fit is one line."""
    head = classifier_prefix(model)
    allowed_missing = tuple(new_keys) + ((head,) if head else ())
    expected = model.state_dict()
    state = {k: v for k, v in state.items() if not (head and k.startswith(head))}
    missing = [k for k in expected if k not in state and not k.startswith(allowed_missing)]
    unexpected = [k for k in state if k not in expected]
    shapes = [f"{k} {tuple(state[k].shape)} != {tuple(expected[k].shape)}"
              for k in state if k in expected and state[k].shape != expected[k].shape]
    if missing or unexpected or shapes:
        parts = [f"{label} {len(keys)}: {', '.join(keys[:3])}{', ...' if len(keys) > 3 else ''}"
                 for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", shapes)) if keys]
        raise UserError(f"{origin}: the weights do not fit the {type(model).__name__} architecture "
                        f"({'; '.join(parts)}); is it the right file for this {param('backbone')}?")
    model.load_state_dict(state, strict=False)


def load_file_into(model: nn.Module, path: Path, prepare: Optional[Callable[[dict], dict]] = None,
                   new_keys: Iterable[str] = ()) -> None:
    """Read a published file safely, convert it with timm's filter, and fit it (one-line errors)."""
    path = Path(path)
    if checkpoint_kind(path) == "npz" and hasattr(model, "load_pretrained"):
        load_google_npz(model, path)
        return
    state = read_checkpoint(path)
    if prepare is not None:
        state = prepare(state)
    convert = timm_filter(model)
    if convert is not None:
        try:
            state = convert(state, model)
        except (KeyError, RuntimeError, ValueError, AttributeError) as error:
            raise UserError(f"{path}: timm's conversion of this checkpoint failed ({type(error).__name__}: "
                            f"{_first_line(error)}); is it the right file for this {param('backbone')}?") from None
    fit_state(model, state, str(path), new_keys)


def load_google_npz(model: nn.Module, path: Path) -> None:
    """Google's JAX checkpoints (ViT .npz) through timm's own loader; the classifier stays as built."""
    head = model.get_classifier()
    saved_head = {k: v.clone() for k, v in head.state_dict().items()}
    try:
        with np.load(path, allow_pickle=False) as archive:  # refuse object arrays before timm reads it
            for key in archive.files:
                archive[key]
        model.load_pretrained(str(path))
    except ValueError as error:
        if "allow_pickle" in str(error):
            raise UserError(f"{path}: refused, the .npz holds pickled object arrays; loading them could run code") from None
        raise _corrupt(path, error) from None
    except KeyError as error:
        raise UserError(f"{path}: not the layout of Google's ViT checkpoints for this architecture (no array "
                        f"{_first_line(error)}); is it the right file for this {param('backbone')}?") from None
    except (OSError, RuntimeError, EOFError, zipfile.BadZipFile) as error:
        raise _corrupt(path, error) from None
    head.load_state_dict(saved_head)


# ---- timm's hub ---------------------------------------------------------------------------------

def cached_hub_file(tag: str) -> Optional[Path]:
    """The cached weights file of a timm tag in the local Hugging Face cache, if there is one."""
    try:
        import timm
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - huggingface_hub ships with timm
        return None
    try:
        repo = timm.models.get_pretrained_cfg(tag).hf_hub_id
    except (RuntimeError, AttributeError):
        return None
    if repo in (None, "", "timm/"):
        repo = f"timm/{tag}"
    for filename in ("model.safetensors", "pytorch_model.bin"):
        found = try_to_load_from_cache(repo, filename)
        if isinstance(found, str):
            return Path(found)
    return None


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hugging Face hub answers a TCP connection within `timeout` seconds (so an
    offline machine fails in seconds, not after a minute of download retries)."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        return False
    return not network.unreachable_hosts([os.environ.get("HF_ENDPOINT", "https://huggingface.co")], timeout)
