"""ALoRE site cost on ViT-B/16 shapes: the rank-space factorised forward used in training versus
(a) mixing the experts in the full m-wide space and (b) materialising dW, and the merged layer
versus the unmerged one at inference. Prints ratios measured in one run on this machine.

    python benchmarks/alore_forward.py [--tokens 3152] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn

from alore_bench.methods.alore import ALoReConfig, ALoReLinear, ALoReRules


def block_space_delta(site: ALoReLinear, x: torch.Tensor) -> torch.Tensor:
    """The direct reading of the definition: lift each expert to m-wide blocks, then mix."""
    blocks = x.reshape(*x.shape[:-1], site.experts, site.block)
    low = torch.einsum("...qm,irm->...iqr", blocks, site.down)
    high = torch.einsum("...iqr,imr->...iqm", low, site.up)
    return torch.einsum("ipq,...iqm->...pm", site.rules, high).reshape(x.shape)


def timed(fn, repeats: int, device: torch.device) -> float:
    for _ in range(3):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=16 * 197, help="batch x tokens (default: 16 images)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    base = nn.Linear(768, 2304, device=device).requires_grad_(False)
    config = ALoReConfig()
    site = ALoReLinear(base, config, ALoReRules(4, learned=True, noise=0.02, device=device), own_rules=True)
    with torch.no_grad():
        site.down.normal_(std=0.02)
    x = torch.randn(args.tokens, 768, device=device, requires_grad=True)

    def train_step(delta_fn):
        def step():
            y = base(x + site.scale * delta_fn(x))
            y.sum().backward()
        return step

    dense = lambda v: v @ site.delta_weight().to(v.dtype).T  # noqa: E731
    rows = {
        "rank-space (ours)": timed(train_step(site.delta), args.repeats, device),
        "block-space einsum": timed(train_step(lambda v: block_space_delta(site, v)), args.repeats, device),
        "dense dW": timed(train_step(dense), args.repeats, device),
    }
    baseline = rows["rank-space (ours)"]
    print(f"ALoRE site forward+backward, {args.tokens} tokens x 768 -> 2304 on {device}:")
    for name, seconds in rows.items():
        print(f"  {name:20s} {seconds * 1e3:8.2f} ms   x{seconds / baseline:5.2f} vs rank-space")

    merged = site.merged()
    with torch.no_grad():
        unmerged_s = timed(lambda: site(x), args.repeats, device)
        merged_s = timed(lambda: merged(x), args.repeats, device)
        plain_s = timed(lambda: base(x), args.repeats, device)
    print("Inference (no grad):")
    print(f"  unmerged site        {unmerged_s * 1e3:8.2f} ms   x{unmerged_s / plain_s:5.2f} vs plain nn.Linear")
    print(f"  merged (plain Linear){merged_s * 1e3:8.2f} ms   x{merged_s / plain_s:5.2f} vs plain nn.Linear")


if __name__ == "__main__":
    main()
