"""The spatio-temporal LLM teacher: ST encoder -> ``<ST_HIS>`` tokens -> LLM -> ``<ST_PRE>`` -> head.

It is an ordinary forecaster for the engine: ``forward(x, tod, dow, index)`` takes the scaled history
(B, L, N, C) and the window ids (used to write the dates into the prompts) and returns the scaled
forecast (B, H, N, C). Only the encoder, the ST-token embeddings, the LoRA adapters and the head are
trained; the pretrained weights stay frozen.
"""

from __future__ import annotations

import copy
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
from flowdistill.teacher.prompts import LAYOUTS, PromptFacts, city_body, city_prefix, render

PRE_QUERIES = ("shared", "region", "region+his")
HEAD_HIS = ("detached", "attached", "none")
# How the forecast is anchored to the window's own level (see TeacherConfig.level).
LEVELS = ("none", "window-mean", "linear")


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
    # What an <ST_PRE> token carries in: one shared vector ("shared", UrbanGPT), plus a learned
    # query per region ("region"), plus that region's encoder vector too ("region+his").
    pre_query: str = "region+his"
    # How the head sees the <ST_HIS> hidden states: "detached" (UrbanGPT), "attached", "none".
    head_his: str = "detached"
    # Compute the constant instruction prefix once per batch and reuse its keys/values (city layout).
    cache_prefix: bool = True
    # Anchor to the window's own level: "none" (UrbanGPT: the head's output is the forecast),
    # "window-mean" (each region's input mean per channel is taken off before the encoder and added
    # back to the forecast, so a quieter season moves the forecast with it), "linear" (a linear map
    # of the region's own input steps is added to the head's output; zero at the start).
    level: str = "none"

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise ValueError(f"unknown prompt layout {self.layout!r}; choose from {LAYOUTS}")
        if self.pre_query not in PRE_QUERIES:
            raise ValueError(f"unknown pre_query {self.pre_query!r}; choose from {PRE_QUERIES}")
        if self.head_his not in HEAD_HIS:
            raise ValueError(f"unknown head_his {self.head_his!r}; choose from {HEAD_HIS}")
        if self.level not in LEVELS:
            raise ValueError(f"unknown level {self.level!r}; choose from {LEVELS}")
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


def decoder_cache(out: Any) -> tuple[Any, str]:
    """(key/value cache, keyword to pass it back) of a decoder output run with ``use_cache``.

    transformers renamed ``past_key_values`` to ``cache`` (the output field and the forward
    keyword) in the 5.x series; the GPU image had 5.17 (``past_key_values``) while this machine has
    5.25 (``cache``), and the dependency floor is 4.45, so both are read.
    """
    for name in ("cache", "past_key_values"):
        value = getattr(out, name, None)
        if value is not None:
            return value, name
    raise RuntimeError(f"{type(out).__name__} carries no key/value cache (use_cache=True)")


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
        # One learned query per region for its <ST_PRE> token: with a shared vector only the
        # position tells 69 prediction tokens apart.
        self.pre_region = (
            nn.Parameter(torch.randn(facts.num_regions, d) * scale)
            if cfg.pre_query != "shared" else None
        )
        # Which source (taxi, bike, ...) a window comes from, when the teacher is tuned on several.
        n_src = len(facts.segments or [])
        self.source_embed = nn.Embedding(n_src, d) if n_src > 1 else None
        if self.source_embed is not None:
            nn.init.normal_(self.source_embed.weight, std=0.02)
        self._seg_offsets = torch.tensor([int(g["offset"]) for g in facts.segments or [{"offset": 0}]])
        h, out = cfg.head_hidden, facts.output_len * num_channels
        self.head_his = nn.Linear(d, h) if cfg.head_his != "none" else None
        self.head_pre = nn.Linear(d, h)
        self.head_out = nn.Linear((1 if cfg.head_his == "none" else 2) * h, out)
        self.level_skip = None
        if cfg.level == "linear":
            self.level_skip = nn.Linear(facts.input_len * num_channels, out)
            nn.init.zeros_(self.level_skip.weight)
            nn.init.zeros_(self.level_skip.bias)
        self._prefix_cache: Any = None

    # ------------------------------------------------------------------ prompts
    @property
    def uses_prefix_cache(self) -> bool:
        return self.cfg.cache_prefix and self.cfg.layout == "city"

    def prefix_ids(self) -> torch.Tensor:
        """(1, P) token ids of the constant instruction prefix (city layout)."""
        ids = self.tokenizer(city_prefix(self.facts), add_special_tokens=False)["input_ids"]
        return torch.as_tensor(ids, dtype=torch.long)[None]

    def tokenize(self, windows: list[int]) -> TokenBatch:
        """Right-padded token ids of the prompts (without the cached prefix, when it is cached).

        City prompts are tokenized as prefix + body, with or without the cache, so both paths see
        the same tokens.
        """
        if self.cfg.layout == "city":
            body = [city_body(self.facts, int(w)) for w in windows]
            enc = self.tokenizer(body, add_special_tokens=False)["input_ids"]
            if not self.uses_prefix_cache:
                prefix = self.prefix_ids()[0].tolist()
                enc = [prefix + e for e in enc]
        else:
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

        ``st_his`` is (P, d) in prompt order: window-major, region-minor in both layouts. Each
        ``<ST_PRE>`` gets the shared PRE vector plus, per ``pre_query``, its region's query and its
        region's encoder vector.
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
        if self.pre_region is not None:
            pre = (ids == self.pre_id).unsqueeze(-1)
            n = self.num_regions
            query = self.pre_region.to(x.dtype).repeat(st_his.shape[0] // n, 1)
            if self.cfg.pre_query == "region+his":
                query = query + st_his
            x = x + torch.zeros_like(x).masked_scatter(pre, query)
        return x

    def train(self, mode: bool = True) -> STLLMTeacher:
        self._prefix_cache = None  # weights may change: the prefix's keys/values with them
        return super().train(mode)

    def _prefix_kv(
        self, batch: int, device: torch.device, dtype: torch.dtype
    ) -> tuple[Any, int, str]:
        """Keys/values of the constant prefix, computed once (once per call while training), its
        length, and the keyword the decoder takes them back by."""
        reuse = not self.training and not torch.is_grad_enabled()
        if reuse and self._prefix_cache is not None:
            cache, plen, kw = self._prefix_cache
        else:
            pids = self.prefix_ids().to(device)
            emb = self.decoder.get_input_embeddings()(pids).to(dtype)
            cache, kw = decoder_cache(self.decoder(inputs_embeds=emb, use_cache=True))
            plen = pids.shape[1]
            if reuse:
                self._prefix_cache = (cache, plen, kw)
        cache = copy.deepcopy(cache) if reuse else cache
        cache.batch_repeat_interleave(batch)
        return cache, plen, kw

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
        level = None
        if self.cfg.level == "window-mean":
            level = x.mean(dim=1, keepdim=True)  # (B, 1, N, C)
            x = x - level
        st = self.encoder(x, tod, dow)  # (B, N, d)
        if self.source_embed is not None:
            src = torch.searchsorted(self._seg_offsets, index.cpu(), right=True) - 1
            st = st + self.source_embed(src.to(x.device))[:, None, :]
        st = st.reshape(b * n, -1)
        tokens = self.tokenize([int(w) for w in index.tolist()])
        emb = self.embed(tokens, st)
        dtype = next(self.decoder.parameters()).dtype
        mask = tokens.mask.to(x.device)
        if self.uses_prefix_cache:
            cache, plen, kw = self._prefix_kv(emb.shape[0], x.device, dtype)
            mask = torch.cat([mask.new_ones(mask.shape[0], plen), mask], dim=1)
            hidden = self.decoder(
                inputs_embeds=emb.to(dtype), attention_mask=mask, **{kw: cache}
            ).last_hidden_state.float()
        else:
            hidden = self.decoder(inputs_embeds=emb.to(dtype), attention_mask=mask).last_hidden_state
            hidden = hidden.float()
        ids = tokens.ids.to(x.device)
        h_pre = hidden[ids == self.pre_id]  # (B*N, d) in prompt order
        if h_pre.shape[0] != b * n:
            raise DataError("teacher prompts", f"{h_pre.shape[0]} <ST_PRE> tokens for {b * n}")
        parts = [F.relu(self.head_pre(h_pre))]
        if self.head_his is not None:
            h_his = hidden[ids == self.his_id]
            h_his = h_his.detach() if self.cfg.head_his == "detached" else h_his
            parts.insert(0, F.relu(self.head_his(h_his)))
        y = self.head_out(torch.cat(parts, -1))
        if self.level_skip is not None:
            y = y + self.level_skip(x.permute(0, 2, 1, 3).reshape(b * n, -1))
        y = y.reshape(b, n, self.output_len, self.num_channels).permute(0, 2, 1, 3)
        if level is not None:
            y = y + level
        return y.contiguous()

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
