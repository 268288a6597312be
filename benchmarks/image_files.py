"""Solar-cell defects (elpv image files) on held-out splits: the pipeline vs two baselines.

    python benchmarks/image_files.py [--splits 2] [--first-split 0] [--size 64] [--models cnn]
                                     [--epochs N] [--budget S] [--params '{cnn: {width: 16}}']
                                     [--baselines lightgbm,resnet18] [--keep DIR]

Each split carves the 2,624 labelled cells 75/25 with its own seed (3000 + i, stratified by
`defective`) and writes them in Kaggle's image-file layout (train.csv / test.csv /
sample_submission.csv naming PNG files in train/ and test/), played as a `local` competition
with the default params (image models from `train.models.image` by the image size rules
`train.min_side` / `max_side`: at 32 px and more timm's `resnet`; --models names the
competition's own list instead; images resized to --size) through `dvc repro`. Its
submission is scored by roc_auc on the held-out cells. Beside it, on the same rows:

- `lightgbm`: `LGBMClassifier()` with default settings on the pixels downscaled to 32x32;
- `resnet18`: one timm ResNet-18 from scratch (no pretrained weights) on all training
  cells at the pipeline's size, given the same wall time as the pipeline's whole `dvc
  repro` (AdamW, a cosine schedule over that time, flips drawn per batch, batch 64, the same
  threads). Its code shares nothing with the pipeline's training, so it checks rather than
  repeats it.

Times are wall seconds on this machine (2 cores).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import default_params, make_repo, repro, table  # noqa: E402
from pipelines.core.config import ImageShape  # noqa: E402
from pipelines.sources import elpv  # noqa: E402
from pipelines.sources.image_files import load_images  # noqa: E402

NAME = "solar-cells"
SPEC = {"id": "id", "target": "defective", "task": "binary", "metric": "roc_auc", "modality": "image"}


def write_split(folder: Path, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A held-out split in Kaggle's image-file layout; returns (train rows, held-out rows)."""
    cells = elpv.load()
    train, test = train_test_split(cells, test_size=0.25, random_state=3000 + seed, stratify=cells["defective"])
    folder.mkdir(parents=True)
    train.to_csv(folder / "train.csv", index=False)
    test[["id"]].to_csv(folder / "test.csv", index=False)
    test[["id"]].assign(defective=0).to_csv(folder / "sample_submission.csv", index=False)
    elpv.write_images({"train": train["id"], "test": test["id"]}, folder)
    return train, test


def pixels(folder: Path, part: str, ids, size: int) -> np.ndarray:
    shape = ImageShape(height=size, width=size, channels=1)
    return load_images([folder / part / f"{i}.png" for i in ids], shape, progress=False)


def lightgbm_default(folder: Path, train: pd.DataFrame, test: pd.DataFrame, threads: int) -> tuple[np.ndarray, float]:
    import lightgbm as lgb

    start = time.perf_counter()
    x = pixels(folder, "train", train["id"], 32).reshape(len(train), -1)
    model = lgb.LGBMClassifier(random_state=0, verbose=-1, n_jobs=threads).fit(x, train["defective"])
    pred = model.predict_proba(pixels(folder, "test", test["id"], 32).reshape(len(test), -1))[:, 1]
    return pred, time.perf_counter() - start


def resnet18(x: np.ndarray, y: np.ndarray, x_test: np.ndarray, seconds: float, threads: int) -> tuple:
    """P(defective) from one ResNet-18 trained from scratch for `seconds` of wall time, and
    the number of epochs that took."""
    import timm
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    mean, std = x.mean() / 255, x.std() / 255
    xt = (torch.tensor(x, dtype=torch.float32) / 255 - mean) / std
    yt = torch.tensor(y, dtype=torch.float32)
    net = timm.create_model("resnet18", pretrained=False, in_chans=x.shape[1], num_classes=1)
    opt = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=0.05)
    start = time.perf_counter()
    net.train()
    epochs = 0
    while (done := (time.perf_counter() - start) / seconds) < 1:
        epochs += 1  # begun (the last one is cut short by the clock)
        order = torch.randperm(len(xt), generator=gen)
        for i in range(0, len(xt) - 63, 64):
            done = (time.perf_counter() - start) / seconds
            if done >= 1:
                break
            for group in opt.param_groups:  # warmup for the first 5% of the time, then cosine
                group["lr"] = 2e-3 * min(done / 0.05, 0.5 * (1 + math.cos(math.pi * done)))
            idx = order[i : i + 64]
            xb = xt[idx]
            flip = torch.rand(2, generator=gen)  # one flip draw per batch
            xb = xb.flip(3) if flip[0] < 0.5 else xb
            xb = xb.flip(2) if flip[1] < 0.5 else xb
            loss = F.binary_cross_entropy_with_logits(net(xb).squeeze(1), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    net.eval()
    test = (torch.tensor(x_test, dtype=torch.float32) / 255 - mean) / std
    with torch.inference_mode():
        pred = torch.cat([torch.sigmoid(net(test[i : i + 256]).squeeze(1)) for i in range(0, len(test), 256)])
    return pred.numpy(), epochs


def play(folder: Path, workdir: Path, args) -> tuple[np.ndarray, dict, float]:
    """The pipeline on one split: (held-out predictions in test.csv order, metrics, seconds)."""
    params = default_params()
    image = {"height": args.size, "width": args.size, "channels": 1}
    params["competitions"] = {NAME: {"source": "local", "path": str(folder), **SPEC, "image": image}}
    params["train"]["threads"] = args.threads
    if args.models:  # the competition's own list: taken as it is, whatever the image size rules say
        params["competitions"][NAME]["models"] = args.models.split(",")
    if args.epochs:
        params["train"]["epochs"] = args.epochs
    if args.budget:
        params["budget"] = args.budget
    if args.params:
        params["train"]["params"] = yaml.safe_load(args.params)
    repo = make_repo(workdir / "repo", params)
    seconds = repro(repo)
    sub = pd.read_csv(repo / f"submissions/{NAME}/submission.csv").set_index("id")
    metrics = json.loads((repo / f"submissions/{NAME}/metrics.json").read_text())
    test_ids = pd.read_csv(folder / "test.csv")["id"]
    for model in metrics["models"]:  # each model's held-out predictions (clean keeps test.csv's order)
        path = repo / "data" / ("distill" if model.startswith("distill") else "train") / NAME
        pred = np.load(path / ("student" if model.startswith("distill") else model) / "test.npy")
        metrics.setdefault("test", {})[model] = pred[:, -1] if pred.ndim == 2 else pred
    return sub.loc[test_ids, "defective"].to_numpy(), metrics, seconds


def one_split(seed: int, workdir: Path, args) -> dict:
    folder = workdir / "data"
    train, test = write_split(folder, seed)
    truth = test["defective"].to_numpy()
    pred, metrics, seconds = play(folder, workdir, args)
    row = {"split": seed, "pipeline": float(roc_auc_score(truth, pred)), "pipeline cv": float(metrics["cv"])}
    held_out = {k: roc_auc_score(truth, p) for k, p in metrics["test"].items()}
    row["models cv / held out"] = ", ".join(f"{k} {v:.4f}/{held_out[k]:.4f}" for k, v in metrics["models"].items())
    row["pipeline s"] = round(seconds)
    if "lightgbm" in args.baselines:
        lgb_pred, lgb_s = lightgbm_default(folder, train, test, args.threads)
        row["lightgbm 32x32"], row["lightgbm s"] = float(roc_auc_score(truth, lgb_pred)), round(lgb_s)
    if "resnet18" in args.baselines:
        x, x_test = (pixels(folder, p, f["id"], args.size) for p, f in (("train", train), ("test", test)))
        start = time.perf_counter()
        res_pred, epochs = resnet18(x, train["defective"].to_numpy(), x_test, seconds, args.threads)
        row["resnet18"], row["resnet18 s"] = float(roc_auc_score(truth, res_pred)), round(time.perf_counter() - start)
        row["resnet18 epochs"] = epochs
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--splits", type=int, default=2)
    ap.add_argument("--first-split", type=int, default=0, help="split seeds are 3000 + first-split + i")
    ap.add_argument("--size", type=int, default=64, help="images are resized to size x size")
    ap.add_argument("--models", default=None, help="comma-separated train.models.image (default: params.yaml's)")
    ap.add_argument("--epochs", type=int, default=None, help="train.epochs (default: params.yaml's)")
    ap.add_argument("--budget", type=float, default=None, help="params budget in seconds (default: none)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--params", default=None, help="train.params as YAML, e.g. '{cnn: {width: 16}}'")
    ap.add_argument("--baselines", default="lightgbm,resnet18", help="comma-separated: lightgbm, resnet18 (or none)")
    ap.add_argument("--keep", type=Path, default=None, help="build each split's data and repo under DIR and keep them")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.first_split, args.first_split + args.splits):
            rows.append(one_split(seed, (args.keep or Path(tmp)) / f"split{seed}", args))
            print(table(rows[-1:]), flush=True)
    if len(rows) > 1:
        numbers = [k for k, v in rows[0].items() if isinstance(v, float | int) and k != "split"]
        mean = {k: float(np.mean([r[k] for r in rows])) for k in numbers}
        rows.append({**{k: "" for k in rows[0]}, "split": "mean", **mean})
    print(f"\nsolar cells, {args.size}x{args.size}: held-out roc_auc, seconds on {args.threads} threads")
    print(table(rows))


if __name__ == "__main__":
    main()
