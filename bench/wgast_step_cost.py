"""WGAST generator-step cost on CPU at the paper size and a small size (batch 8)."""

import time

import torch

from eofm.config import WgastTrainSettings
from eofm.models.lst.wgast import WgastSizes
from eofm.train.wgast import WgastModule


def main(batch_size: int = 8, steps: int = 3) -> None:
    torch.manual_seed(0)
    torch.set_num_threads(2)
    for name, sizes in (
        ("paper", WgastSizes()),
        ("small", WgastSizes(channels=(8, 16, 32, 64, 128))),
    ):
        module = WgastModule(sizes, WgastTrainSettings.from_dict({}))
        opt_g, _ = module.configure_optimizers()
        n = batch_size
        batch = [torch.randn(n, 1, 96, 96)] * 3 + [torch.randn(n, 3, 96, 96)] * 2
        batch += [torch.randn(n, 1, 32, 32), torch.ones(n, 1, 32, 32)]
        times = []
        for _ in range(steps):
            started = time.perf_counter()
            loss, _ = module.losses(batch)
            opt_g.zero_grad()
            loss.backward()
            opt_g.step()
            times.append(round(time.perf_counter() - started, 2))
        print(name, f"generator step, batch {n}, seconds:", times, flush=True)


if __name__ == "__main__":
    main()
