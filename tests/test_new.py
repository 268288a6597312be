"""`new` (pipelines/commands/new.py): a competition entry inferred from a folder in Kaggle layout.

Tiny folders in tmp_path for each kind of competition (binary, multiclass, regression, text,
image files, class folders, pixel columns); flags win over inference; what cannot be inferred
is one `error:` line naming the flag when nobody can be asked, a question when someone can;
the hand-written comments of params.yaml survive; an existing name is refused. The slow test
runs `new` on a binary and a regression folder and then a real `dvc repro` on the entries.
"""

from __future__ import annotations

import difflib
import importlib.metadata
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from pipelines.__main__ import main
from pipelines.core.config import load_params
from tests.bad_inputs import error_line
from tests.conftest import ROOT, run, tiny_params, titanic_folder

WORDS = "the a cheap great flight late crew seat bag lost food good bad service delay rude kind staff".split()


def layout(folder: Path, train: pd.DataFrame, test: pd.DataFrame | None, sample: pd.DataFrame) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    train.to_csv(folder / "train.csv", index=False)
    if test is not None:
        test.to_csv(folder / "test.csv", index=False)
    sample.to_csv(folder / "sample_submission.csv", index=False)
    return folder


def tabular(folder: Path, y, placeholder=0, n_test: int = 20, seed: int = 0) -> Path:
    """Kaggle layout: id, two numeric and one categorical feature, target `y` (train rows only)."""
    rng = np.random.default_rng(seed)
    n = len(y)
    train = pd.DataFrame({"id": range(1, n + 1), "age": rng.integers(18, 80, n), "fare": rng.normal(30, 9, n).round(2),
                          "city": rng.choice(["paris", "oslo", "rome"], n), "y": y})  # fmt: skip
    test = train.drop(columns="y").iloc[:n_test].assign(id=range(1001, 1001 + n_test))
    return layout(folder, train, test, pd.DataFrame({"id": test["id"], "y": placeholder}))


def binary(folder: Path, placeholder=0.5, n: int = 60) -> Path:
    return tabular(folder, np.arange(n) % 2, placeholder)


def regression(folder: Path, n: int = 80) -> Path:
    """A price-like target: positive and right-skewed."""
    return tabular(folder, np.exp(np.random.default_rng(1).normal(11, 0.8, n)).round(0), placeholder=100000)


def png(path: Path, size=(8, 6), mode="L") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    shape = (size[1], size[0]) if mode == "L" else (size[1], size[0], 3)
    Image.fromarray(np.random.default_rng(len(path.name)).integers(0, 255, shape, dtype=np.uint8), mode).save(path)


def new(tmp_path: Path, source, *flags, params: Path | None = None) -> tuple[int, dict | None, str, str]:
    """Run `new` in process, non-interactively: (exit status, the entry written, stdout, stderr)."""
    params = params or tmp_path / "params.yaml"
    out, err = io.StringIO(), io.StringIO()
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = out, err
    try:
        rc = main(["new", str(source), "--params", str(params), "--yes", *flags])
    finally:
        sys.stdout, sys.stderr = saved
    written = yaml.safe_load(params.read_text()) if params.is_file() else None
    name = next((f.split("=", 1)[-1] for f in flags if f.startswith("--name=")), Path(str(source)).name)
    entry = ((written or {}).get("competitions") or {}).get(name)
    return rc, entry, out.getvalue(), err.getvalue()


def spec_of(entry: dict) -> dict:
    return {k: entry.get(k) for k in ("id", "target", "task", "metric", "modality")}


def test_binary_folder_with_probabilities_is_roc_auc(tmp_path):
    rc, entry, out, _ = new(tmp_path, binary(tmp_path / "bin"))
    assert rc == 0
    assert spec_of(entry) == {"id": "id", "target": "y", "task": "binary", "metric": "roc_auc", "modality": "tabular"}
    assert entry["source"] == "local" and entry["path"] == "bin"  # relative to params.yaml's folder
    assert "next: dvc repro ensemble@bin" in out and "task: 2 classes" in out
    assert load_params(tmp_path / "params.yaml").competition("bin").metric == "roc_auc"


def test_binary_folder_with_labels_is_accuracy(tmp_path):
    _, entry, _, _ = new(tmp_path, binary(tmp_path / "labels", placeholder=0))
    assert entry["metric"] == "accuracy"


def test_multiclass_folder(tmp_path):
    folder = tabular(tmp_path / "multi", np.array(["cat", "dog", "owl"] * 20), placeholder="cat")
    _, entry, _, _ = new(tmp_path, folder)
    assert (entry["task"], entry["metric"]) == ("multiclass", "accuracy")


def test_multiclass_with_a_probability_column_per_class_is_logloss(tmp_path):
    folder = tabular(tmp_path / "probs", np.array(["cat", "dog", "owl"] * 20))
    pd.read_csv(folder / "sample_submission.csv")[["id"]].assign(cat=1 / 3, dog=1 / 3, owl=1 / 3).to_csv(
        folder / "sample_submission.csv", index=False
    )
    _, entry, _, _ = new(tmp_path, folder)
    assert spec_of(entry) == {"id": "id", "target": "y", "task": "multiclass", "metric": "logloss",
                              "modality": "tabular"}  # fmt: skip


def test_regression_folders_skewed_and_not(tmp_path):
    _, entry, _, _ = new(tmp_path, regression(tmp_path / "prices"))
    assert (entry["task"], entry["metric"]) == ("regression", "rmsle")
    symmetric = tabular(tmp_path / "temps", np.random.default_rng(2).normal(0, 5, 80).round(3), placeholder=0)
    _, entry, _, _ = new(tmp_path, symmetric)
    assert (entry["task"], entry["metric"]) == ("regression", "rmse")


def test_few_whole_numbers_are_classes_many_are_a_quantity(tmp_path):
    _, entry, _, _ = new(tmp_path, tabular(tmp_path / "grades", np.arange(60) % 5 + 1))
    assert entry["task"] == "multiclass"
    _, entry, _, _ = new(tmp_path, tabular(tmp_path / "counts", np.arange(120) * 3))
    assert entry["task"] == "regression"


def test_text_folder(tmp_path):
    rng = np.random.default_rng(3)
    msgs = [" ".join(rng.choice(WORDS, 8)) for _ in range(60)]
    train = pd.DataFrame({"tweet_id": range(60), "airline": rng.choice(["x", "y"], 60), "text": msgs,
                          "sentiment": rng.choice(["neg", "neu", "pos"], 60)})  # fmt: skip
    test = train.drop(columns="sentiment").iloc[:10].assign(tweet_id=range(100, 110))
    folder = layout(tmp_path / "tweets", train, test, test[["tweet_id"]].assign(sentiment="neu"))
    _, entry, out, _ = new(tmp_path, folder)
    assert spec_of(entry) == {"id": "tweet_id", "target": "sentiment", "task": "multiclass", "metric": "accuracy",
                              "modality": "text"}  # fmt: skip
    assert "free text in text" in out


def test_titanic_folder_is_tabular_names_are_not_text(tmp_path):
    """Titanic's names hold four words a value, tickets and cabins one or two: not language. As
    text, the entry trained a from-scratch BERT that scored below the tabular Titanic."""
    titanic_folder(tmp_path / "ship")
    rc, entry, out, err = new(tmp_path, tmp_path / "ship")
    assert rc == 0, err
    assert spec_of(entry) == {"id": "PassengerId", "target": "Survived", "task": "binary", "metric": "accuracy",
                              "modality": "tabular"}  # fmt: skip
    assert "modality: no images; no free text (Name: median 4 words a value (free text: 5+)" in out


def reviews(n: int, seed: int = 5) -> pd.DataFrame:
    """Product reviews: sentences of 8 to 25 words from a real vocabulary, beside a reviewer's
    name, a short title and a product code (several words each, none of them language)."""
    rng = np.random.default_rng(seed)
    openers = ["I bought this for my", "We ordered the", "After two weeks with the", "My wife gave me the"]
    things = ["kettle", "blender", "lamp", "backpack", "headphones", "tent", "jacket", "keyboard"]
    verdicts = ["and it broke on the second day", "and it works better than the old one did",
                "but the handle feels cheap and the lid does not close",
                "and honestly it is the best purchase I made this year",
                "but delivery took three weeks and the box was damaged", "so I would buy it again"]  # fmt: skip
    extra = ["", " The instructions were clear.", " Customer service never answered my emails.", " Recommended."]
    text = [f"{rng.choice(openers)} {rng.choice(things)} {rng.choice(verdicts)}.{rng.choice(extra)}" for _ in range(n)]
    first, last = ["Anna", "Ben", "Chloe", "Dev", "Emil", "Fatima"], ["Smith", "Okafor", "Novak", "Lind", "Park"]
    return pd.DataFrame({
        "review_id": range(1, n + 1),
        "reviewer": [f"{rng.choice(first)} {rng.choice(last)}" for _ in range(n)],
        "title": [f"{rng.choice(['Great', 'Poor', 'Fine'])} {rng.choice(things)}" for _ in range(n)],
        "product": [f"SKU {rng.integers(1000, 9999)} B{rng.integers(10, 99)}" for _ in range(n)],
        "review": text,
        "stars": rng.integers(1, 6, n),
    })  # fmt: skip


def test_review_folder_is_text_and_says_why(tmp_path):
    data = reviews(120)
    train, test = data.iloc[:100], data.iloc[100:].drop(columns="stars")
    folder = layout(tmp_path / "reviews", train, test, test[["review_id"]].assign(stars=3))
    rc, entry, out, err = new(tmp_path, folder)
    assert rc == 0, err
    assert (entry["modality"], entry["task"]) == ("text", "multiclass")
    line = [ln for ln in out.splitlines() if ln.strip().startswith("modality:")][-1]  # the reasons follow the entry
    assert "free text in review (median " in line and "words a value" in line, line
    assert "reviewer" not in line and "title" not in line and "product" not in line, line


def test_language_is_sentences_not_names_codes_or_categories():
    from pipelines.features.language import language

    rng = np.random.default_rng(0)
    names = pd.Series([f"{rng.choice(['Braund', 'Allen', 'Heikkinen'])}, Mr. Owen {rng.choice(['Harris', 'Lee'])}"
                       for _ in range(200)])  # fmt: skip
    assert language(names) == (False, "median 4 words a value (free text: 5+)")
    addresses = pd.Series([f"{rng.integers(1, 999)} Main Street Flat {rng.integers(1, 40)} York Y{rng.integers(1, 9)}"
                           for _ in range(200)])  # fmt: skip
    ok, why = language(addresses)
    assert not ok and "hold digits" in why
    phrases = pd.Series(["the parcel was left at the door"] * 100 + ["nobody was home to take the parcel"] * 100)
    assert language(phrases) == (False, "2 distinct values: a category")
    ok, why = language(reviews(200)["review"])
    assert ok and why.startswith("median ") and "distinct words" in why


def image_files(folder: Path, size=(8, 6), mode="L") -> Path:
    ids = [f"img{i:03d}" for i in range(12)]
    for i in ids[:8]:
        png(folder / "train" / f"{i}.png", size, mode)
    for i in ids[8:]:
        png(folder / "test" / f"{i}.png", size, mode)
    train = pd.DataFrame({"image_id": ids[:8], "label": [0, 1] * 4})
    test = pd.DataFrame({"image_id": ids[8:]})
    return layout(folder, train, test, test.assign(label=0))


def test_image_files_folder(tmp_path):
    _, entry, _, _ = new(tmp_path, image_files(tmp_path / "cells"))
    assert spec_of(entry) == {"id": "image_id", "target": "label", "task": "binary", "metric": "accuracy",
                              "modality": "image"}  # fmt: skip
    assert entry["image"] == {"height": 6, "width": 8, "channels": 1}


def test_large_colour_images_are_shrunk(tmp_path):
    _, entry, _, _ = new(tmp_path, image_files(tmp_path / "photos", size=(128, 96), mode="RGB"))
    assert entry["image"] == {"height": 48, "width": 64, "channels": 3}


def test_class_folders_without_train_csv(tmp_path):
    folder = tmp_path / "pets"
    for k in range(4):
        png(folder / "train" / "cat" / f"c{k}.png")
        png(folder / "train" / "dog" / f"d{k}.png")
        png(folder / "test" / f"t{k}.png")
    folder.joinpath("sample_submission.csv").write_text("file,label\n" + "".join(f"t{k},cat\n" for k in range(4)))
    _, entry, _, _ = new(tmp_path, folder)
    assert spec_of(entry) == {"id": "file", "target": "label", "task": "binary", "metric": "accuracy",
                              "modality": "image"}  # fmt: skip


def test_pixel_columns_are_an_image(tmp_path):
    pixels = pd.DataFrame(np.random.default_rng(4).integers(0, 256, (30, 16)), columns=[f"pixel{i}" for i in range(16)])
    train = pixels.assign(label=np.arange(30) % 3)[["label", *pixels.columns]]
    sample = pd.DataFrame({"ImageId": range(1, 11), "Label": 0})
    _, entry, _, _ = new(tmp_path, layout(tmp_path / "digits", train, pixels.iloc[:10], sample))
    assert spec_of(entry) == {"id": "ImageId", "target": "label", "task": "multiclass", "metric": "accuracy",
                              "modality": "image"}  # fmt: skip
    assert entry["image"] == {"height": 4, "width": 4, "channels": 1}


def test_flags_override_inference(tmp_path):
    folder = tabular(tmp_path / "both", np.arange(60) % 2, placeholder=0)
    rc, entry, out, err = new(tmp_path, folder, "--name=mine", "--task", "multiclass", "--metric", "f1_macro")
    assert rc == 0, err
    assert (entry["task"], entry["metric"], entry["target"]) == ("multiclass", "f1_macro", "y")
    assert "task: given" in out and "metric: given" in out and "target: in train.csv" in out
    train = pd.read_csv(folder / "train.csv").assign(note=1)  # a second column test.csv lacks
    train.to_csv(folder / "train.csv", index=False)
    pd.read_csv(folder / "test.csv").assign(note=1).to_csv(folder / "test.csv", index=False)
    flags = ["--name=other", "--id", "id", "--target", "y", "--task", "binary", "--metric", "mcc"]
    rc, entry, _, err = new(tmp_path, folder, *flags, "--modality", "text")
    assert rc == 2 and "no column holds free text" in error_line(err)  # the files check the flags
    rc, entry, _, err = new(tmp_path, folder, *flags, "--modality", "tabular")
    assert rc == 0 and spec_of(entry) == {"id": "id", "target": "y", "task": "binary", "metric": "mcc",
                                          "modality": "tabular"}, err  # fmt: skip


def test_a_flag_the_files_contradict_is_refused_and_nothing_written(tmp_path):
    rc, entry, _, err = new(tmp_path, binary(tmp_path / "bin"), "--target", "fare")
    assert rc == 2 and entry is None and not (tmp_path / "params.yaml").exists()
    assert "fare" in error_line(err) and "test" in error_line(err)
    rc, _, _, err = new(tmp_path, binary(tmp_path / "bin2"), "--metric", "rmse")
    assert rc == 2 and "metric 'rmse' does not apply to task 'binary'" in error_line(err)
    assert str(tmp_path / "params.yaml") in error_line(err)  # the user's file, not the temporary


def ambiguous(folder: Path) -> Path:
    """Two train.csv columns absent from test.csv, neither named in the sample: no target to infer."""
    folder = binary(folder)
    train = pd.read_csv(folder / "train.csv").rename(columns={"y": "survived"}).assign(extra=1)
    train.to_csv(folder / "train.csv", index=False)
    pd.read_csv(folder / "sample_submission.csv").rename(columns={"y": "prediction"}).to_csv(
        folder / "sample_submission.csv", index=False
    )
    return folder


def test_what_cannot_be_inferred_is_one_error_line_naming_the_flag(tmp_path, monkeypatch):
    params = tmp_path / "params.yaml"
    params.write_text("# mine\ncompetitions: {}\n")
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))  # not a terminal: nobody to ask
    rc = main(["new", str(ambiguous(tmp_path / "amb")), "--params", str(params)])
    assert rc == 2 and params.read_text() == "# mine\ncompetitions: {}\n"
    rc, _, _, err = new(tmp_path, tmp_path / "amb")
    line = error_line(err)
    assert "cannot infer the target" in line and "--target" in line and "survived, extra" in line
    rc, _, _, err = new(tmp_path, tmp_path / "amb", "--target", "survived")
    assert rc == 2 and "columns differ" in error_line(err)  # told the target, the files still do not fit
    rc, _, _, err = new(tmp_path, binary(tmp_path / "__"))
    assert rc == 2 and "cannot infer the name" in error_line(err) and "pass --name" in error_line(err)
    assert params.read_text() == "# mine\ncompetitions: {}\n"


def test_a_kaggle_slug_needs_the_flags(tmp_path):
    rc, _, _, err = new(tmp_path, "spaceship-titanic")
    assert rc == 2 and "--id, --target, --task, --metric" in error_line(err)
    rc, entry, out, _ = new(tmp_path, "spaceship-titanic", "--id", "PassengerId", "--target", "Transported",
                            "--task", "binary", "--metric", "accuracy")  # fmt: skip
    assert rc == 0 and entry == {"source": "kaggle", "kaggle": "spaceship-titanic", "id": "PassengerId",
                                 "target": "Transported", "task": "binary", "metric": "accuracy",
                                 "modality": "tabular"}  # fmt: skip
    rc, _, _, err = new(tmp_path, "No Such/Folder")
    assert rc == 2 and "not a folder in Kaggle layout, nor a Kaggle slug" in error_line(err)


def on_a_terminal(monkeypatch, answers: list[str]) -> list[str]:
    """stdin a terminal, input() answering `answers` in turn; returns the questions asked."""
    asked, replies = [], iter(answers)
    monkeypatch.setattr(sys, "stdin", type("Tty", (io.StringIO,), {"isatty": lambda self: True})())
    monkeypatch.setattr("builtins.input", lambda prompt: asked.append(prompt) or next(replies))
    return asked


def test_on_a_terminal_it_asks_only_what_it_cannot_infer(tmp_path, monkeypatch):
    params = tmp_path / "params.yaml"
    asked = on_a_terminal(monkeypatch, ["my-comp"])
    assert main(["new", str(binary(tmp_path / "__")), "--params", str(params)]) == 0
    assert len(asked) == 1 and asked[0].startswith("the name")  # the rest came from the files
    assert load_params(params).competition("my-comp").metric == "roc_auc"
    asked = on_a_terminal(monkeypatch, ["PassengerId", "Transported", "nonsense", "binary", "accuracy"])
    assert main(["new", "spaceship-titanic", "--params", str(params)]) == 0
    assert [q.split(" (")[0] for q in asked] == ["the id", "the target", "the task", "the task", "the metric"]
    assert "[binary | multiclass | regression]" in asked[2]  # a choice is shown, and a wrong one asked again
    spec = load_params(params).competition("spaceship-titanic")
    assert (spec.source, spec.id, spec.target, spec.task, spec.metric) == (
        "kaggle", "PassengerId", "Transported", "binary", "accuracy")  # fmt: skip


def test_params_yaml_comments_survive(tmp_path):
    params = tmp_path / "params.yaml"
    shutil.copy(ROOT / "params.yaml", params)
    before = params.read_text()
    rc, entry, out, err = new(tmp_path, binary(tmp_path / "bin"))
    assert rc == 0, err
    old, now = before.splitlines(), params.read_text().splitlines()
    changes = [op for op in difflib.SequenceMatcher(a=old, b=now).get_opcodes() if op[0] != "equal"]
    assert [op[0] for op in changes] == ["insert"], changes  # every line kept, comments included
    added = now[changes[0][3] : changes[0][4]]
    assert added[0].startswith("  bin:  # added by `new`") and len(added) == 8, added
    assert list(load_params(params).competitions)[-1] == "bin"
    assert load_params(params).competitions.keys() >= load_params(ROOT / "params.yaml").competitions.keys()


def test_params_without_competitions_or_without_a_file(tmp_path):
    rc, entry, _, _ = new(tmp_path, binary(tmp_path / "bin"), params=tmp_path / "fresh.yaml")
    assert rc == 0 and entry["task"] == "binary"  # the file is created
    for text, comment in (("seed: 3  # mine\n", "# mine"),
                          ("seed: 3\ncompetitions: {}  # none yet\nfolds: {n_splits: 3}\n", "# none yet")):  # fmt: skip
        params = tmp_path / "p.yaml"
        params.write_text(text)
        rc, entry, _, err = new(tmp_path, tmp_path / "bin", params=params)
        assert rc == 0 and entry["target"] == "y", err
        assert comment in params.read_text() and load_params(params).seed == 3


def test_an_existing_name_is_refused_unless_forced(tmp_path):
    params = tmp_path / "params.yaml"
    shutil.copy(ROOT / "params.yaml", params)
    before = params.read_text()
    rc, _, _, err = new(tmp_path, binary(tmp_path / "titanic"))
    assert rc == 2 and "'titanic' already exists" in error_line(err) and "--force" in error_line(err)
    assert params.read_text() == before
    rc, entry, out, err = new(tmp_path, tmp_path / "titanic", "--force")
    assert rc == 0 and entry["source"] == "local" and "replaced titanic" in out, err
    names = list(load_params(params).competitions)
    assert names == list(load_params(ROOT / "params.yaml").competitions)  # in place, the others kept
    assert load_params(params).competition("house-prices") == load_params(ROOT / "params.yaml").competition(
        "house-prices"
    )


def test_the_console_script_is_installed():
    """Every installed copy's metadata is read: a stale kaggle_pipelines.egg-info in the checkout
    (an old build's) comes first on sys.path and would hide the venv's for entry_points()."""
    scripts = {ep.name: ep for dist in importlib.metadata.distributions() if dist.metadata["Name"] == "kaggle-pipelines"
               for ep in dist.entry_points if ep.group == "console_scripts"}  # fmt: skip
    assert "kaggle-pipelines" in scripts, "reinstall: make install (pyproject.toml's [project.scripts])"
    assert scripts["kaggle-pipelines"].load() is main


def test_the_console_script_runs_new(tmp_path):
    script = Path(sys.executable).parent / "kaggle-pipelines"
    folder = binary(tmp_path / "bin")
    proc = subprocess.run([str(script), "new", str(folder), "--params", str(tmp_path / "params.yaml")],
                          capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "next: dvc repro ensemble@bin" in proc.stdout


@pytest.mark.slow
def test_new_entries_run_through_dvc_repro(dvc_repo, tmp_path):
    """The issue's check: `new` with nothing but flags, then `dvc repro`, on a binary and a regression folder."""
    (dvc_repo / "params.yaml").write_text(yaml.safe_dump(tiny_params()))
    binary(tmp_path / "tiny-bin", n=120)
    regression(tmp_path / "tiny-reg", n=120)
    for folder in ("tiny-bin", "tiny-reg"):
        proc = run([sys.executable, "-m", "pipelines", "new", str(tmp_path / folder), "--yes"], dvc_repo)
        assert f"dvc repro ensemble@{folder}" in proc.stdout
    run(["dvc", "repro"], dvc_repo, timeout=600)
    for name, metric in (("tiny-bin", "roc_auc"), ("tiny-reg", "rmsle")):
        sub = pd.read_csv(dvc_repo / f"submissions/{name}/submission.csv")
        sample = pd.read_csv(tmp_path / name / "sample_submission.csv")
        assert sub.columns.tolist() == sample.columns.tolist() and sub["id"].tolist() == sample["id"].tolist()
        assert json.loads((dvc_repo / f"submissions/{name}/metrics.json").read_text())["metric"] == metric
