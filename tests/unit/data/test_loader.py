"""The cache loader: normalisation, on-device resizing, seeded order."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from alore_bench.data.cache import SplitData
from alore_bench.data.loader import DeviceBatcher, Normalisation, batch_indices, iterate
from alore_bench.data.suites import Task

NORM = Normalisation("imagenet", (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


def reference(images: np.ndarray, size: int) -> torch.Tensor:
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
    if x.shape[-1] != size:
        x = F.interpolate(x, size=(size, size), mode="bicubic", align_corners=False,
                          antialias=x.shape[-1] > size).clamp(0, 1)
    mean, std = torch.tensor(NORM.mean).view(1, 3, 1, 1), torch.tensor(NORM.std).view(1, 3, 1, 1)
    return (x - mean) / std


def test_batches_match_reference_at_native_and_resized_sizes():
    rng = np.random.default_rng(0)
    for stored, size in [(16, 16), (8, 16), (32, 16)]:
        images = rng.integers(0, 256, size=(5, stored, stored, 3), dtype=np.uint8)
        out = DeviceBatcher(size, NORM, torch.device("cpu"))(images)
        assert out.shape == (5, 3, size, size) and out.dtype == torch.float32
        torch.testing.assert_close(out, reference(images, size), rtol=1e-5, atol=1e-4)


def test_read_only_memory_map_is_accepted(tmp_path):
    images = np.full((4, 8, 8, 3), 255, np.uint8)
    np.save(tmp_path / "x.npy", images)
    mapped = np.load(tmp_path / "x.npy", mmap_mode="r")
    split = SplitData(Task("t", "s", "g", 2, {}), "test", mapped, np.array([0, 1, 0, 1]), {})
    batches = list(iterate(split, DeviceBatcher(8, NORM, torch.device("cpu")), batch_size=3))
    assert [len(labels) for _, labels in batches] == [3, 1]
    torch.testing.assert_close(batches[0][0][:, 0], torch.full((3, 8, 8), (1 - 0.485) / 0.229))


def test_shuffled_order_depends_only_on_seed_and_epoch():
    first = np.concatenate(list(batch_indices(50, 8, True, seed=42, epoch=3)))
    again = np.concatenate(list(batch_indices(50, 8, True, seed=42, epoch=3)))
    other = np.concatenate(list(batch_indices(50, 8, True, seed=42, epoch=4)))
    assert (first == again).all() and not (first == other).all() and sorted(first) == list(range(50))


def test_tfds_route_resizes_like_tf_image_resize():
    """Bilinear, half-pixel centres, no anti-aliasing: a 2x downscale averages each 2 x 2 block's
    centre pair exactly (anti-aliased or bicubic resizing would mix in the neighbours)."""
    import numpy as np

    from alore_bench.data.images import fit

    image = np.random.default_rng(0).integers(0, 256, size=(448, 448, 3)).astype(np.uint8)
    out = fit(image, (224, 224), "tf_bilinear")
    blocks = image.reshape(224, 2, 224, 2, 3).astype(np.float64).mean(axis=(1, 3))
    np.testing.assert_array_equal(out, np.round(blocks).astype(np.uint8))
    assert not np.array_equal(fit(image, (224, 224)), out)  # PIL bicubic (the folder route) differs


def test_centre_crop_rounds_like_torchvision():
    import numpy as np

    from alore_bench.data.loader import crop_batch

    class Ragged:
        def image(self, index):
            return np.arange(225 * 227 * 3, dtype=np.int64).reshape(225, 227, 3).astype(np.uint8)

    crop = crop_batch(Ragged(), np.array([0]), None)[0]
    # torchvision: top = round((225 - 224) / 2) = round(0.5) = 0, left = round(1.5) = 2
    np.testing.assert_array_equal(crop, Ragged().image(0)[0:224, 2:226])


def test_flips_mirror_some_training_images_reproducibly_and_never_evaluation_ones(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(32, 8, 8, 3), dtype=np.uint8)
    np.save(tmp_path / "x.npy", images)
    split = SplitData(Task("t", "s", "g", 2, {}), "train", np.load(tmp_path / "x.npy", mmap_mode="r"),
                      np.arange(32) % 2, {})
    batcher = DeviceBatcher(8, NORM, torch.device("cpu"))

    def seen(flip: bool, shuffle: bool = True, epoch: int = 0):
        batches = [(x, idx) for (x, _), idx in zip(iterate(split, batcher, 8, shuffle, 42, epoch, flip=flip),
                                                   batch_indices(32, 8, shuffle, 42, epoch))]
        return torch.cat([x for x, _ in batches]), np.concatenate([idx for _, idx in batches])

    plain, order = seen(False)
    flipped, same_order = seen(True)
    assert (order == same_order).all()  # flips never change which images a batch holds
    mirrored = [bool(torch.equal(flipped[i], plain[i].flip(-1))) and not torch.equal(flipped[i], plain[i])
                for i in range(32)]
    untouched = [bool(torch.equal(flipped[i], plain[i])) for i in range(32)]
    assert all(m or u for m, u in zip(mirrored, untouched)) and 8 <= sum(mirrored) <= 24
    assert torch.equal(seen(True)[0], flipped)  # the same draws for the same (seed, epoch)
    assert not torch.equal(seen(True, epoch=1)[0], seen(False, epoch=1)[0].flip(-1))
    assert torch.equal(seen(True, shuffle=False)[0], seen(False, shuffle=False)[0])  # evaluation: never
