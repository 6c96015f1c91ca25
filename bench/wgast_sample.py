"""WGAST end to end on the synthetic pair store: train (small sizes), predict, evaluate.

Prints the loss and seconds of every epoch, the table and the gains over bicubic.
"""

import tempfile
import time
from pathlib import Path

import torch

from eofm.config import WgastModelSettings, WgastTrainSettings
from eofm.evaluate.lst import evaluate_wgast, gains
from eofm.models.lst.predict import predict_wgast
from eofm.train.wgast import train_wgast
from tests.fakes.wgast import write_wgast_stores


def main(epochs: int = 6) -> None:
    torch.set_num_threads(2)
    root = Path(tempfile.mkdtemp())
    s = write_wgast_stores(root, n_pairs=4, h=192, w=192)
    started = time.perf_counter()
    summary = train_wgast(
        s["train"],
        root / "g.safetensors",
        root / "g.json",
        root / "t.json",
        model=WgastModelSettings.from_dict(
            {"channels": [8, 16, 16, 16, 16], "dropout": 0.0, "disc_channels": 16}
        ),
        train=WgastTrainSettings.from_dict(
            {"epochs": epochs, "batch_size": 8, "learning_rate": 0.002}
        ),
        checkpoint_dir=root / "ck",
    )
    print("patches", summary["patches"], "train s", round(time.perf_counter() - started, 1))
    for row in summary["history"]:
        print({k: round(v, 3) for k, v in row.items()})
    predict_wgast(
        s["pairs"], root / "g.safetensors", root / "g.json", root / "cogs", root / "lst.zarr"
    )
    table = evaluate_wgast(
        s["pairs"], root / "lst.zarr", root / "t.csv", root / "t.md", root / "fig"
    )
    print((root / "t.md").read_text())
    print(gains(table))
    print(gains(table, "truth_10m"))


if __name__ == "__main__":
    main()
