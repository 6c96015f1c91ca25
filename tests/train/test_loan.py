"""LOAN training: loss goes down, best-validation weights saved, resume, determinism."""

from __future__ import annotations

import hashlib
import io

import pytest
import torch
from safetensors.torch import load_file

from eofm.config import LoanSettings
from eofm.errors import StoreContractError
from eofm.io import read_json
from eofm.models.fire.loan import PUBLISHED_RENAMES, LoanCNN, model_config
from eofm.sizing import loan_input_bytes
from eofm.train.loan import (
    ChunkedSamples,
    ChunkShuffleSampler,
    load_samples,
    load_trained,
    train_loan,
)
from tests.fakes.loan_samples import write_samples

PUBLISHED_KEYS = {ours: theirs for theirs, ours in PUBLISHED_RENAMES.items()}
PATCH = 14  # smallest patch the three stages accept; keeps the test fast
STORE_DTYPES = (torch.float32, torch.float32, torch.int64, torch.int64)  # what the model reads


def _loan(epochs: int = 2, **train: object) -> dict:
    return LoanSettings.from_dict(
        {
            "model": {"widths": [8, 16, 16], "head": [32, 16, 8], "dropout": 0.1},
            "train": {"epochs": epochs, "batch_size": 32, "learning_rate": 3e-3, **train},
        }
    ).as_dict()


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    root = tmp_path_factory.mktemp("samples")
    train = write_samples(root / "train.zarr", 192, seed=1, patch=PATCH)
    val = write_samples(root / "val.zarr", 96, seed=2, year=2019, split="val", patch=PATCH)
    return train, val


def _train(tmp_path, stores, name: str, loan: dict, norm: str = "loan", ckpt: str = "ckpt"):
    out = tmp_path / name
    out.mkdir(parents=True, exist_ok=True)
    summary = train_loan(
        *stores,
        loan=loan,
        norm=norm,
        weights_path=out / "w.safetensors",
        config_path=out / "w.json",
        summary_path=out / "summary.json",
        checkpoint_dir=tmp_path / ckpt,
    )
    return out, summary


def test_two_epochs_lower_the_loss_and_save_the_best_epoch(tmp_path, stores):
    out, summary = _train(tmp_path, stores, "a", _loan(epochs=3))
    metrics = read_json(out / "summary.json")
    assert summary["epochs"] == 3 and metrics["best_epoch"] in (0, 1, 2)
    csv = (tmp_path / "ckpt").rglob("metrics.csv")
    import pandas as pd

    log = pd.concat([pd.read_csv(p) for p in csv])
    train_loss = log["train_loss_epoch"].dropna().to_numpy()
    assert train_loss[-1] < train_loss[0]
    assert metrics["best_val_loss"] == pytest.approx(log["val_loss"].dropna().min(), rel=1e-4)
    model = load_trained(out / "w.safetensors", out / "w.json")
    assert model.config.widths == (8, 16, 16)
    assert metrics["wall_time_per_epoch_s"] > 0


def test_selection_on_validation_auroc_keeps_the_best_ranking_epoch(tmp_path, stores):
    """`select_on: auroc` keeps the epoch whose validation AUROC is highest, and the saved
    weights score exactly that AUROC on the validation store."""
    import pandas as pd
    import xarray as xr

    from eofm.evaluate.fire import auroc, predict_cnn

    out, summary = _train(tmp_path, stores, "r", _loan(epochs=4, select_on="auroc"), ckpt="cr")
    log = pd.concat([pd.read_csv(p) for p in (tmp_path / "cr").rglob("metrics.csv")])
    per_epoch = log.dropna(subset=["val_auroc"]).groupby("epoch")["val_auroc"].last()
    assert len(per_epoch) == 4 and per_epoch.nunique() > 1  # the choice is not trivial
    assert summary["selected_on"] == "auroc"
    assert summary["best_epoch"] == int(per_epoch.idxmax())
    assert summary["best_val_auroc"] == pytest.approx(per_epoch.max(), abs=1e-6)
    model = load_trained(out / "w.safetensors", out / "w.json")
    labels = xr.open_zarr(stores[1])["label"].values
    assert auroc(labels, predict_cnn(model, stores[1])) == pytest.approx(
        summary["best_val_auroc"], abs=1e-6
    )


def test_same_seed_same_weights_on_cpu(tmp_path, stores):
    a, _ = _train(tmp_path, stores, "a", _loan(), ckpt="c1")
    b, _ = _train(tmp_path, stores, "b", _loan(), ckpt="c2")
    wa, wb = load_file(a / "w.safetensors"), load_file(b / "w.safetensors")
    assert wa.keys() == wb.keys()
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], rtol=0, atol=0)


STREAMED = {"memory_gb": 1e-6, "shuffle_chunks": 2}  # both stores over the limit


@pytest.mark.parametrize("train", [{}, STREAMED], ids=["in-memory", "streamed"])
def test_resume_after_interruption_matches_uninterrupted(tmp_path, stores, train):
    full, summary = _train(tmp_path, stores, "full", _loan(epochs=3, **train), ckpt="c_full")
    assert summary["streamed"] == {"train": bool(train), "val": bool(train)}
    # a 3-epoch run killed in its second epoch, then run again in the same folder
    from eofm.train import loan as loan_mod

    class Killed(RuntimeError):
        pass

    real = loan_mod.LoanModule.training_step

    def die_in_second_epoch(self, batch, batch_idx):
        if self.current_epoch == 1 and batch_idx == 2:
            raise Killed
        return real(self, batch, batch_idx)

    loan_mod.LoanModule.training_step = die_in_second_epoch
    try:
        with pytest.raises(Killed):
            _train(tmp_path, stores, "part", _loan(epochs=3, **train), ckpt="c_part")
    finally:
        loan_mod.LoanModule.training_step = real
    part, summary = _train(tmp_path, stores, "part", _loan(epochs=3, **train), ckpt="c_part")
    assert summary["resumed_from_epoch"] == 1
    wf, wp = load_file(full / "w.safetensors"), load_file(part / "w.safetensors")
    for k in wf:
        torch.testing.assert_close(wf[k], wp[k])


def test_streamed_training_learns_like_in_memory_training(tmp_path, stores):
    """Same samples, another shuffle: the streamed run's validation loss lands near the
    in-memory run's, and far below the untrained loss of ln 2."""
    _, memory = _train(tmp_path, stores, "m", _loan(epochs=4), ckpt="cm")
    _, streamed = _train(tmp_path, stores, "s", _loan(epochs=4, **STREAMED), ckpt="cs")
    assert streamed["streamed"]["train"] and not memory["streamed"]["train"]
    assert streamed["n_train"] == memory["n_train"] == 192
    assert streamed["positives_train"] == memory["positives_train"]
    assert streamed["best_val_loss"] < 0.9 * 0.6931
    assert streamed["best_val_loss"] == pytest.approx(memory["best_val_loss"], rel=0.15)


def test_chunked_samples_equal_the_loaded_store_and_read_each_chunk_once(stores):
    loaded = load_samples(stores[0])
    streamed = ChunkedSamples(stores[0], cache=2)
    assert len(streamed) == len(loaded) == 192 and streamed.chunk == 64
    assert loan_input_bytes(stores[0])[0] == sum(
        t.numel() * t.element_size() for t in loaded.tensors
    )
    sampler = ChunkShuffleSampler(len(streamed), streamed.chunk, group=2, seed=0)
    for epoch in (0, 1):
        sampler.set_epoch(epoch)
        before = streamed.reads
        for i in sampler:
            for got, want in zip(streamed[i], loaded[i], strict=True):
                assert got.dtype == want.dtype
                torch.testing.assert_close(got, want, rtol=0, atol=0)
            assert len(streamed._chunks) <= 2  # bounded: never more than the cache
        assert streamed.reads - before == 3  # three chunks, each read once
        streamed._chunks.clear()  # a chunk cached across epochs would be a free read


def test_chunk_shuffle_covers_every_sample_and_depends_only_on_seed_and_epoch():
    sampler = ChunkShuffleSampler(n=1000, chunk=100, group=3, seed=5)
    epoch0 = list(sampler)
    assert sorted(epoch0) == list(range(1000))
    assert (
        len({i // 100 for i in epoch0[:300]}) == 3
    )  # the first 300 come from one group of three chunks, shuffled together
    assert epoch0[:300] != sorted(epoch0[:300])
    assert list(sampler) == epoch0
    sampler.set_epoch(1)
    epoch1 = list(sampler)
    assert sorted(epoch1) == list(range(1000)) and epoch1 != epoch0
    again = ChunkShuffleSampler(n=1000, chunk=100, group=3, seed=5)
    again.set_epoch(1)
    assert list(again) == epoch1
    assert list(ChunkShuffleSampler(n=1000, chunk=100, group=3, seed=6)) != epoch0


def test_batchnorm_ablation_trains(tmp_path, stores):
    _, summary = _train(tmp_path, stores, "bn", _loan(epochs=1), norm="batchnorm")
    assert summary["norm"] == "batchnorm"
    assert summary["trainable_parameters"] > 0


def test_samples_load_exactly_with_the_model_dtypes(stores):
    """The store is read chunk by chunk into one array: same values, float32 inputs,
    int64 day of year and labels."""
    import numpy as np
    import xarray as xr

    ds = xr.open_zarr(stores[0])
    assert ds["dynamic"].data.numblocks[0] > 1  # several chunks to gather
    loaded = load_samples(stores[0])
    for tensor, name, dtype in zip(
        loaded.tensors, ("dynamic", "static", "doy", "label"), STORE_DTYPES, strict=True
    ):
        assert tensor.dtype == dtype, name
        np.testing.assert_array_equal(tensor.numpy(), ds[name].values.astype(tensor.numpy().dtype))


def test_store_without_labels_is_refused(tmp_path, stores):
    import xarray as xr

    bad = tmp_path / "bad.zarr"
    xr.open_zarr(stores[0]).drop_vars("label").to_zarr(bad)
    with pytest.raises(StoreContractError, match="label"):
        _train(tmp_path, (bad, stores[1]), "x", _loan(epochs=1))


def _published_bytes(loan: dict) -> tuple[bytes, dict[str, torch.Tensor]]:
    """A checkpoint in the published layout (``PositionalEncoding.pe``) for ``loan.model``."""
    torch.manual_seed(123)  # not the training seed: imported weights differ from a fresh init
    state = LoanCNN(model_config(loan["model"], dynamic_channels=10, static_channels=15))
    state = {PUBLISHED_KEYS.get(k, k): v for k, v in state.state_dict().items()}
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue(), state


@pytest.mark.parametrize("where", ["hub", "path"])
def test_training_starts_from_published_weights_on_the_hub_or_on_disk(
    tmp_path, stores, fake_hub, where
):
    """`loan.weights` through eofm.hub: pinned + sha256 on a Hub (a fake on 127.0.0.1), or a
    local file; with a vanishing learning rate the saved network is the imported one."""
    loan = _loan(epochs=1, learning_rate=1e-12)
    data, state = _published_bytes(loan)
    if where == "hub":
        commit = hashlib.sha1(b"loan tiny v1").hexdigest()
        sha = fake_hub.add_file("eofm-test/loan", commit, "pretrained_CNN_w_TE.pth", data)
        loan["weights"] = {
            "repo": "eofm-test/loan",
            "file": "pretrained_CNN_w_TE.pth",
            "revision": commit,
            "sha256": sha,
        }
    else:
        path = tmp_path / "pretrained_CNN_w_TE.pth"
        path.write_bytes(data)
        loan["weights"] = {"path": str(path), "sha256": hashlib.sha256(data).hexdigest()}
    out, summary = _train(tmp_path, stores, "imported", loan)
    saved = load_file(out / "w.safetensors")
    for key in ("Block1.Block.0.weight", "loan1.mlp_gamma.weight", "lastlayer4.weight"):
        torch.testing.assert_close(saved[key], state[key], rtol=0, atol=1e-6)
    provenance = summary["settings"]["pretrained"]
    assert provenance["sha256"] == hashlib.sha256(data).hexdigest()
    if where == "hub":
        assert provenance["repo"] == "eofm-test/loan"
        assert fake_hub.count("GET", server="cdn") == 1
    scratch, _ = _train(tmp_path, stores, "scratch", _loan(epochs=1, learning_rate=1e-12), ckpt="s")
    fresh = load_file(scratch / "w.safetensors")
    assert not torch.equal(fresh["Block1.Block.0.weight"], state["Block1.Block.0.weight"])


def test_published_weights_with_a_wrong_checksum_are_refused(tmp_path, stores):
    loan = _loan(epochs=1)
    data, _ = _published_bytes(loan)
    path = tmp_path / "pretrained_CNN_w_TE.pth"
    path.write_bytes(data)
    loan["weights"] = {"path": str(path), "sha256": "0" * 64}
    with pytest.raises(ValueError, match=r"pretrained_CNN_w_TE\.pth: sha256 .* does not match"):
        _train(tmp_path, stores, "bad", loan)
    assert not (tmp_path / "bad" / "w.safetensors").exists()
