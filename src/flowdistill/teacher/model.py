"""The spatio-temporal LLM teacher: ST encoder -> ``<ST_HIS>`` tokens -> LLM -> ``<ST_PRE>`` -> head.

It is an ordinary forecaster for the engine: ``forward(x, tod, dow, index)`` takes the scaled history
(B, L, N, C) and the window ids (used to write the dates into the prompts) and returns the scaled
forecast (B, H, N, C). Only the encoder, the ST-token embeddings, the LoRA adapters and the head are
trained; the pretrained weights stay frozen.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from flowdistill.data.errors import DataError
from flowdistill.teacher.backbone import (
    DEFAULT_BACKBONE,
    ST_END,
    ST_HIS,
    ST_PRE,
    ST_START,
    add_lora,
    load_decoder,
)
from flowdistill.teacher.encoder import STEncoder
from flowdistill.teacher.prompts import LAYOUTS, PromptFacts, render


@dataclass
class TeacherConfig:
    """Everything needed to rebuild the teacher (saved beside its weights)."""

    backbone: str = DEFAULT_BACKBONE
    layers: int = 0  # keep the first L decoder blocks (0 = all)
    layout: str = "city"  # city | region
    dtype: str = "float32"  # backbone dtype: float32 on CPU, bfloat16 on GPU
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.0
    lora_targets: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")
    encoder_hidden: int = 16
    encoder_layers: int = 2
    head_hidden: int = 128
    region_embedding: bool = True
    calendar_embedding: bool = True
    max_pois: int = 10

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise ValueError(f"unknown prompt layout {self.layout!r}; choose from {LAYOUTS}")
        self.lora_targets = tuple(self.lora_targets)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TeacherConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


@dataclass
class TokenBatch:
    ids: torch.Tensor
    mask: torch.Tensor
    extra: dict[str, Any] = field(default_factory=dict)


class STLLMTeacher(nn.Module):
    """UrbanGPT-style teacher on any decoder-only LM (built by :func:`build_teacher`)."""

    def __init__(
        self,
        facts: PromptFacts,
        cfg: TeacherConfig,
        decoder: nn.Module,
        tokenizer: Any,
        num_channels: int = 2,
        slots_per_day: int = 48,
    ) -> None:
        super().__init__()
        self.facts, self.cfg, self.tokenizer = facts, cfg, tokenizer
        self.num_regions = facts.num_regions
        self.output_len = facts.output_len
        self.num_channels = num_channels
        emb = decoder.get_input_embeddings()
        if emb.num_embeddings < len(tokenizer):
            raise DataError("teacher", "decoder embeddings are smaller than the tokenizer")
        d = emb.embedding_dim
        self.d_model = d
        self.decoder = add_lora(
            decoder, cfg.lora_r, cfg.lora_alpha, cfg.lora_dropout, cfg.lora_targets
        )
        ids = tokenizer.convert_tokens_to_ids([ST_START, ST_HIS, ST_END, ST_PRE])
        self.start_id, self.his_id, self.end_id, self.pre_id = (int(i) for i in ids)
        self.pad_id = int(tokenizer.pad_token_id)
        self.encoder = STEncoder(
            num_channels,
            facts.input_len,
            d,
            cfg.encoder_hidden,
            cfg.encoder_layers,
            num_regions=facts.num_regions if cfg.region_embedding else 0,
            slots_per_day=slots_per_day if cfg.calendar_embedding else 0,
        )
        # Trainable embeddings of <ST_start>, <ST_end>, <ST_PRE> (the LLM's table stays frozen).
        scale = float(emb.weight.detach().float().std())
        self.st_embed = nn.Parameter(torch.randn(3, d) * scale)
        h, out = cfg.head_hidden, facts.output_len * num_channels
        self.head_his = nn.Linear(d, h)
        self.head_pre = nn.Linear(d, h)
        self.head_out = nn.Linear(2 * h, out)

    # ------------------------------------------------------------------ prompts
    def tokenize(self, windows: list[int]) -> TokenBatch:
        """Right-padded token ids of the prompts of these windows."""
        texts = render(self.facts, windows, self.cfg.layout, self.cfg.max_pois)
        enc = self.tokenizer(texts, add_special_tokens=False)["input_ids"]
        width = max(len(e) for e in enc)
        ids = torch.full((len(enc), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(enc), width), dtype=torch.long)
        for i, e in enumerate(enc):
            ids[i, : len(e)] = torch.as_tensor(e)
            mask[i, : len(e)] = 1
        return TokenBatch(ids, mask)

    def embed(self, tokens: TokenBatch, st_his: torch.Tensor) -> torch.Tensor:
        """Token embeddings with the encoder's vectors spliced in at the ``<ST_HIS>`` positions.

        ``st_his`` is (P, d) in prompt order: window-major, region-minor in both layouts.
        """
        ids = tokens.ids.to(st_his.device)
        table = self.decoder.get_input_embeddings()
        x = table(ids).to(st_his.dtype)
        his = (ids == self.his_id).unsqueeze(-1)
        if int(his.sum()) != st_his.shape[0]:
            raise DataError("teacher prompts", f"{int(his.sum())} <ST_HIS> tokens for "
                            f"{st_his.shape[0]} region vectors")
        x = x.masked_scatter(his, st_his)
        for row, tid in enumerate((self.start_id, self.end_id, self.pre_id)):
            x = torch.where((ids == tid).unsqueeze(-1), self.st_embed[row].to(x.dtype), x)
        return x

    # ------------------------------------------------------------------ forward
    def forward(
        self,
        x: torch.Tensor,
        tod: torch.Tensor,
        dow: torch.Tensor,
        index: torch.Tensor | None = None,
    ) -> torch.Tensor:
        b, _, n, _ = x.shape
        if index is None:
            raise DataError("teacher", "the LLM teacher needs window ids (index) to write prompts")
        if n != self.num_regions:
            raise DataError("teacher", f"built for {self.num_regions} regions, got {n}")
        st = self.encoder(x, tod, dow).reshape(b * n, -1)  # (B*N, d)
        tokens = self.tokenize([int(w) for w in index.tolist()])
        emb = self.embed(tokens, st)
        dtype = next(self.decoder.parameters()).dtype
        hidden = self.decoder(
            inputs_embeds=emb.to(dtype), attention_mask=tokens.mask.to(x.device)
        ).last_hidden_state.float()
        ids = tokens.ids.to(x.device)
        h_his = hidden[ids == self.his_id]  # (B*N, d) in prompt order
        h_pre = hidden[ids == self.pre_id]
        if h_pre.shape[0] != b * n:
            raise DataError("teacher prompts", f"{h_pre.shape[0]} <ST_PRE> tokens for {b * n}")
        z = torch.cat([F.relu(self.head_his(h_his.detach())), F.relu(self.head_pre(h_pre))], -1)
        y = self.head_out(z).reshape(b, n, self.output_len, self.num_channels)
        return y.permute(0, 2, 1, 3).contiguous()

    # ------------------------------------------------------------------ weights
    def trainable_state(self) -> dict[str, torch.Tensor]:
        """Only what training changed (LoRA, encoder, ST embeddings, head): small to save."""
        names = {n for n, p in self.named_parameters() if p.requires_grad}
        return {k: v.detach().cpu() for k, v in self.state_dict().items() if k in names}

    def load_trainable_state(self, state: dict[str, torch.Tensor]) -> None:
        want = {n for n, p in self.named_parameters() if p.requires_grad}
        missing = want - set(state)
        unexpected = set(state) - want
        if missing or unexpected:
            raise DataError(
                "teacher weights",
                f"do not fit this model: missing {sorted(missing)[:3]}, "
                f"unexpected {sorted(unexpected)[:3]}",
            )
        self.load_state_dict(state, strict=False)


def build_teacher(
    facts: PromptFacts,
    cfg: TeacherConfig,
    num_channels: int = 2,
    slots_per_day: int = 48,
    decoder: nn.Module | None = None,
    tokenizer: Any = None,
) -> STLLMTeacher:
    """The teacher on the configured pretrained backbone (or on a given decoder, for tests)."""
    if decoder is None or tokenizer is None:
        decoder, tokenizer, kept = load_decoder(cfg.backbone, cfg.layers, cfg.dtype)
        cfg.layers = kept
    return STLLMTeacher(facts, cfg, decoder, tokenizer, num_channels, slots_per_day)
