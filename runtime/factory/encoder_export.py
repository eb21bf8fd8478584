"""A sentence-transformers model directory -> an ONNX sentence-encoder package.

The source is what ``sentence-transformers`` saves (all-MiniLM-L6-v2's layout):
``config.json`` + ``model.safetensors`` (a BERT-family encoder), ``tokenizer.json``,
``modules.json`` (Transformer -> Pooling [-> Normalize]), ``1_Pooling/config.json`` and
``sentence_bert_config.json`` (``max_seq_length``). The conversion is the maintained one:
transformers' own model class loads the weights and ``torch.onnx.export`` writes the
graph (input_ids, attention_mask, token_type_ids INT64 [batch, tokens] ->
last_hidden_state FP32 [batch, tokens, dim], both axes dynamic). Mean pooling and L2
normalisation are what headframe's SentenceEncoder does after the graph
(runtime.backends.onnx_embed), so only mean-pooling sources are accepted.

``tokenizer.json`` is copied with its truncation length set to ``max_seq_length`` and its
padding off (the encoder pads a batch itself, and refuses what is longer than that).

Fidelity is measured, not assumed: the exported graph and the source model embed the
same probe sentences, and the package records the lowest cosine similarity in basis
points (``quality_metric = "fidelity"``). torch and transformers are imported only here
(build side; a box serving the package needs onnxruntime and tokenizers only).

This is the one converter: ``headframe models build`` for encoders
(runtime.factory.encoder_build) calls ``export_encoder`` and scores its variants against
``source_vectors``; ``write_encoder_package`` is the quick path (the fp32 graph alone,
fidelity over the probe sentences) the tests' MiniLM store uses.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from runtime.backend_table import estimate_peak_memory, reference_row
from runtime.catalog import Lineage, ModelPackage, PackageMeta, VariantMeta, load_package
from runtime.catalog.inspect import inspect_model
from runtime.catalog.store import Store
from runtime.catalog.writer import (
    install_package,
    staging_dir,
    variant_files,
    write_package_meta,
    write_variant_meta,
)
from runtime.errors import BuildInputError

PROBES = (
    "The main bearing is torqued to 450 Nm.",
    "Replace the conveyor belt scraper when it wears below 10 mm.",
    "Error E-4711: pump P-203 seal failure",
    "hello",
    "What does the crusher manual say about lubrication intervals for the eccentric shaft?",
)
INPUTS = ("input_ids", "attention_mask", "token_type_ids")
OPSET = 17
VARIANT = "onnx-fp32"  # the one variant id a converted encoder has


@dataclass(frozen=True)
class EncoderExport:
    model: Path
    tokenizer: Path
    dimensions: int
    max_tokens: int
    fidelity_bp: int  # lowest cosine similarity to the source over PROBES, basis points


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise BuildInputError(f"{path}: missing (not a sentence-transformers directory)") from None
    except ValueError as e:
        raise BuildInputError(f"{path}: not JSON: {e}") from e
    if not isinstance(data, dict):
        raise BuildInputError(f"{path}: not a JSON object")
    return data


def check_source(src: Path) -> int:
    """The source's max_seq_length, after checking it is a mean-pooling encoder."""
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        if not (src / name).is_file():
            raise BuildInputError(f"{src / name}: missing (not a sentence-transformers directory)")
    pooling = _read_json(src / "1_Pooling" / "config.json")
    if not pooling.get("pooling_mode_mean_tokens") or any(
        pooling.get(k) for k in ("pooling_mode_cls_token", "pooling_mode_max_tokens")
    ):
        raise BuildInputError(
            f"{src / '1_Pooling' / 'config.json'}: only mean pooling is served "
            "(headframe's encoder mean-pools the token vectors)"
        )
    st = src / "sentence_bert_config.json"
    return int(_read_json(st).get("max_seq_length", 512)) if st.is_file() else 512


def export_encoder(src: Path, out_dir: Path) -> EncoderExport:
    """Write ``model.onnx`` and ``tokenizer.json`` into ``out_dir``; measure fidelity."""
    try:
        import torch
        from transformers import AutoModel
    except ImportError as e:
        raise BuildInputError(
            f"converting an encoder needs torch and transformers (pip install torch "
            f"transformers): {e}"
        ) from e
    from tokenizers import Tokenizer

    src, out_dir = Path(src), Path(out_dir)
    max_tokens = check_source(src)
    out_dir.mkdir(parents=True, exist_ok=True)
    model = AutoModel.from_pretrained(str(src), add_pooling_layer=False).eval()

    class Hidden(torch.nn.Module):  # the graph: token vectors, pooling stays outside
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask, token_type_ids):  # type: ignore[no-untyped-def]
            out = self.model(input_ids=input_ids, attention_mask=attention_mask,
                             token_type_ids=token_type_ids)  # fmt: skip
            return out.last_hidden_state

    tokenizer = Tokenizer.from_file(str(src / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=max_tokens)
    tokenizer.save(str(out_dir / "tokenizer.json"))
    tokenizer.no_truncation()
    ids, mask = _batch(tokenizer, list(PROBES))
    dynamic = {n: {0: "batch", 1: "tokens"} for n in INPUTS}
    dynamic["last_hidden_state"] = {0: "batch", 1: "tokens"}
    sample = tuple(torch.from_numpy(a) for a in (ids, mask, np.zeros_like(ids)))
    with torch.no_grad():
        # The reference first: the exporter restores the wrapper's training flag after it.
        hidden = model(input_ids=sample[0], attention_mask=sample[1]).last_hidden_state
        reference = hidden.numpy()
        torch.onnx.export(
            Hidden().eval(), sample, str(out_dir / "model.onnx"), input_names=list(INPUTS),
            output_names=["last_hidden_state"], dynamic_axes=dynamic, opset_version=OPSET,
            dynamo=False,  # the TorchScript exporter: no onnxscript needed, dynamic axes kept
        )  # fmt: skip
    fidelity = _fidelity(out_dir / "model.onnx", ids, mask, reference)
    return EncoderExport(out_dir / "model.onnx", out_dir / "tokenizer.json",
                         int(reference.shape[-1]), max_tokens, fidelity)  # fmt: skip


def source_vectors(src: Path, texts: list[str], max_tokens: int, batch: int = 16) -> np.ndarray:
    """The source model's own sentence vectors for ``texts`` (torch: mean pooling over the
    attention mask, L2-normalised, as sentence-transformers computes them), [n, dim]."""
    import torch
    from tokenizers import Tokenizer
    from transformers import AutoModel

    model = AutoModel.from_pretrained(str(src), add_pooling_layer=False).eval()
    tokenizer = Tokenizer.from_file(str(Path(src) / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=max_tokens)
    out = []
    for start in range(0, len(texts), batch):
        ids, mask = _batch(tokenizer, texts[start : start + batch])
        with torch.no_grad():
            hidden = model(input_ids=torch.from_numpy(ids),
                           attention_mask=torch.from_numpy(mask)).last_hidden_state  # fmt: skip
        out.append(_pool(hidden.numpy(), mask))
    return np.concatenate(out, axis=0)


def read_golden_texts(path: Path, limit: int = 10_000) -> list[str]:
    """An encoder's golden texts: one a line (.txt) or a JSON list of strings (.json)."""
    path = Path(path)
    try:
        raw = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise BuildInputError(f"{path}: cannot read the golden texts: {e}") from e
    if path.suffix.lower() == ".json":
        try:
            texts = json.loads(raw)
        except ValueError as e:
            raise BuildInputError(f"{path}: not JSON: {e}") from e
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            raise BuildInputError(f"{path}: a JSON list of strings (the golden texts)")
    else:
        texts = raw.splitlines()
    texts = [t.strip() for t in texts if t.strip()]
    if not texts:
        raise BuildInputError(f"{path}: no golden texts (one a line, or a JSON list)")
    if len(texts) > limit:
        raise BuildInputError(f"{path}: more than {limit} golden texts")
    return texts


def _batch(tokenizer: object, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    encodings = tokenizer.encode_batch(texts)  # type: ignore[attr-defined]
    width = max(len(e.ids) for e in encodings)
    ids = np.zeros((len(texts), width), np.int64)
    mask = np.zeros((len(texts), width), np.int64)
    for i, e in enumerate(encodings):
        ids[i, : len(e.ids)], mask[i, : len(e.ids)] = e.ids, 1
    return ids, mask


def _pool(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    m = mask[..., None].astype(np.float32)
    v = (hidden * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1e-9)
    return np.asarray(v / np.linalg.norm(v, axis=1, keepdims=True), dtype=np.float32)


def _fidelity(path: Path, ids: np.ndarray, mask: np.ndarray, reference: np.ndarray) -> int:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
    got = session.run(None, feed)[0]
    cos = (_pool(got, mask) * _pool(reference, mask)).sum(axis=1)
    return int(np.floor(float(cos.min()) * 10_000))


def write_encoder_package(
    src: Path, store: Path, app: str, version: str = "1.0.0", *, replace: bool = False
) -> ModelPackage:
    """Export ``src`` and install it as ``app`` ``version`` (task embedding) in ``store``."""
    st = Store(store)
    with staging_dir(st) as staged:
        vdir = staged / "variants" / VARIANT
        exported = export_encoder(src, vdir)
        info = inspect_model(exported.model)  # format and precision, as models add reads them
        files, size = variant_files(vdir)
        write_variant_meta(
            VariantMeta(
                variant=VARIANT, format=info.format, precision=info.precision,
                entrypoint=exported.model.name, files=files, bytes=size,
                peak_memory_bytes=estimate_peak_memory(info.format, size),
                device_classes=reference_row(info.format).bare_file_devices,  # type: ignore[arg-type]
                accuracy_bp=exported.fidelity_bp,
            ),
            vdir,
        )  # fmt: skip
        config = _read_json(src / "config.json")
        name = str(config.get("_name_or_path") or src.name)
        write_package_meta(
            PackageMeta(
                schema_version=2, application=app, version=version, task="embedding",
                description=f"{src.name}: sentence encoder exported to ONNX "
                f"({exported.dimensions} dimensions, {exported.max_tokens} tokens)",
                lineage=Lineage(foundation=name, sector="general", application=app),
                accuracy_floor_bp=0, quality_metric="fidelity",
            ),
            staged,
        )  # fmt: skip
        installed = install_package(staged, st, replace=replace)
    shutil.rmtree(staged, ignore_errors=True)
    return load_package(installed.path)
