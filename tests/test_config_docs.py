"""Params are documented once, in pipelines/core/config.py; params.yaml shows the same words.

Every `key: value  # comment` in params.yaml outside the competitions (and in the first
competition, the documented example) must carry exactly that key's description, and every
param with a default must appear there, so the file a user edits is the documentation.
"""

from __future__ import annotations

import re

from pydantic import BaseModel

from pipelines.core.config import CompetitionSpec, Params, load_params
from tests.conftest import ROOT

KEY = re.compile(r"^(?P<indent> *)(?P<key>[\w-]+):(?P<value>[^#]*?)(?:\s+#\s?(?P<comment>.*))?$")


def descriptions(model: type[BaseModel], prefix: str = "") -> dict[str, str | None]:
    out = {}
    for name, field in model.model_fields.items():
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            out.update(descriptions(field.annotation, f"{prefix}{name}."))
        else:
            out[prefix + name] = field.description
    return out


def commented_keys(text: str) -> dict[str, str | None]:
    """key path -> its comment, for the lines of params.yaml that document params."""
    path: list[tuple[int, str]] = []
    found = {}
    for line in text.splitlines():
        m = KEY.match(line)
        if not m:
            continue
        depth = len(m["indent"])
        path = [(d, k) for d, k in path if d < depth] + [(depth, m["key"])]
        keys = [k for _, k in path]
        if keys[0] == "competitions":
            if len(keys) < 3:
                continue
            keys = ["competitions.*", *keys[2:]]
        found.setdefault(".".join(keys), (m["comment"], path[1][1] if len(path) > 1 else None))
    first = next(iter(load_params(ROOT / "params.yaml").competitions))
    return {k: c for k, (c, comp) in found.items() if not k.startswith("competitions.*") or comp == first}


def test_every_param_is_described():
    documented = {**descriptions(Params), **descriptions(CompetitionSpec, "competitions.*.")}
    missing = [k for k, d in documented.items() if not d and k != "competitions"]
    assert not missing, f"params without a description in pipelines/core/config.py: {missing}"


def test_params_yaml_shows_the_descriptions_word_for_word():
    documented = {**descriptions(Params), **descriptions(CompetitionSpec, "competitions.*.")}
    shown = commented_keys((ROOT / "params.yaml").read_text())
    wrong = {k: (c, documented.get(k)) for k, c in shown.items() if k in documented and c != documented[k]}
    assert not wrong, f"params.yaml comment != description (shown, declared): {wrong}"
    absent = [k for k in documented if k not in shown and not k.startswith("competitions")]
    assert not absent, f"params.yaml does not show {absent}"


def test_a_changed_comment_is_caught():
    text = (ROOT / "params.yaml").read_text().replace("hill-climbing steps", "hill climbing steps")
    shown = commented_keys(text)
    assert shown["ensemble.iterations"] != descriptions(Params)["ensemble.iterations"]
