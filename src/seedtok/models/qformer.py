"""Q-Former: learned queries reading an encoder through cross-attention (paper sec. 3.1).

One class serves both SEED Q-Formers:
- the Causal Q-Former (``causal=True``): 32 queries, self-attention causal among queries,
  cross-attention to the ViT features every 2nd layer -> causal embeddings (B, 32, H);
- the Reverse Q-Former (``causal=False``): 77 bidirectional queries reading the de-quantized
  causal embeddings -> (B, 77, H), projected afterwards to generation embeddings.

BERT conventions (post-norm residuals, LayerNorm on the query embeddings, exact GELU) follow
BLIP-2's Q-Former, which SEED initialises from. With ``vocab_size > 0`` the module also holds
the text branch used by stage-1 contrastive training: the text runs through the same
self-attention layers with its own FFN (BLIP-2's "text transformer"). With
``text_tower='minilm'`` the text side is instead a small head over a frozen pretrained text
encoder's token states (:class:`~seedtok.models.texthead.TextHead`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from seedtok.config import QFormerConfig
from seedtok.models.texthead import TextHead


class BertAttention(nn.Module):
    """Post-norm multi-head attention: norm(x + out(attn(q(x), k(ctx), v(ctx))))."""

    def __init__(self, dim: int, context_dim: int, num_heads: int, ln_eps: float) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.q_proj = nn.Linear(dim, dim)
        self.k_proj = nn.Linear(context_dim, dim)
        self.v_proj = nn.Linear(context_dim, dim)
        self.out_proj = nn.Linear(dim, dim)
        self.norm = nn.LayerNorm(dim, eps=ln_eps)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        B, N, C = x.shape
        return x.view(B, N, self.num_heads, C // self.num_heads).transpose(1, 2)  # (B, H, N, d)

    def forward(
        self, x: torch.Tensor, context: torch.Tensor | None = None, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """x (B, N, C); context (B, M, Cc) or None for self-attention; mask bool, True = attend."""
        ctx = x if context is None else context
        q, k, v = self._heads(self.q_proj(x)), self._heads(self.k_proj(ctx)), self._heads(self.v_proj(ctx))
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # (B, H, N, d)
        out = out.transpose(1, 2).reshape(x.shape)
        return self.norm(x + self.out_proj(out))


class BertFeedForward(nn.Module):
    """Post-norm FFN: norm(x + fc2(gelu(fc1(x))))."""

    def __init__(self, dim: int, hidden: int, ln_eps: float) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)
        self.norm = nn.LayerNorm(dim, eps=ln_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x + self.fc2(F.gelu(self.fc1(x))))


class QFormerLayer(nn.Module):
    def __init__(self, config: QFormerConfig, cross_attention: bool) -> None:
        super().__init__()
        c = config
        self.self_attn = BertAttention(c.hidden_size, c.hidden_size, c.num_heads, c.ln_eps)
        self.cross_attn = (
            BertAttention(c.hidden_size, c.encoder_width, c.num_heads, c.ln_eps) if cross_attention else None
        )
        self.ffn = BertFeedForward(c.hidden_size, c.intermediate_size, c.ln_eps)
        self.text_ffn = BertFeedForward(c.hidden_size, c.intermediate_size, c.ln_eps) if c.has_text_branch else None

    def forward_queries(
        self, x: torch.Tensor, encoder_states: torch.Tensor, mask: torch.Tensor | None
    ) -> torch.Tensor:
        x = self.self_attn(x, mask=mask)
        if self.cross_attn is not None:
            x = self.cross_attn(x, context=encoder_states)
        return self.ffn(x)

    def forward_text(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        assert self.text_ffn is not None
        return self.text_ffn(self.self_attn(x, mask=mask))


class QFormer(nn.Module):
    def __init__(self, config: QFormerConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        self.query_tokens = nn.Parameter(torch.zeros(1, c.num_queries, c.hidden_size))
        self.embed_norm = nn.LayerNorm(c.hidden_size, eps=c.ln_eps)
        self.layers = nn.ModuleList(QFormerLayer(c, c.has_cross_attention(i)) for i in range(c.num_layers))
        self.grad_checkpointing = False
        if c.has_text_branch:
            self.word_embed = nn.Embedding(c.vocab_size, c.hidden_size, padding_idx=c.pad_token_id)
            self.pos_embed = nn.Embedding(c.max_text_len, c.hidden_size)
        if c.has_text_head:
            self.text_head = TextHead(c.text_state_dim, c.hidden_size, c.hidden_size, num_heads=c.num_heads)
        if c.is_contrastive:
            self.vision_proj = nn.Linear(c.hidden_size, c.proj_dim)
            self.text_proj = nn.Linear(c.hidden_size, c.proj_dim)
            self.temp = nn.Parameter(torch.tensor(0.07))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, std=0.02)
                if isinstance(m, nn.Linear) and m.bias is not None:
                    nn.init.zeros_(m.bias)
        nn.init.normal_(self.query_tokens, std=0.02)
        with torch.no_grad():
            if self.config.has_text_branch:
                self.word_embed.weight[self.config.pad_token_id].zero_()
            if self.config.is_contrastive:
                self.temp.fill_(0.07)

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute layer activations in backward (memory for compute at large batch)."""
        self.grad_checkpointing = enable

    def query_mask(self, device: torch.device) -> torch.Tensor | None:
        """(Q, Q) bool, True where query i may attend query j: j <= i when causal."""
        if not self.config.causal:
            return None
        n = self.config.num_queries
        return torch.ones(n, n, dtype=torch.bool, device=device).tril()

    def forward(self, encoder_states: torch.Tensor) -> torch.Tensor:
        """encoder_states (B, M, encoder_width) -> query outputs (B, num_queries, hidden)."""
        queries = self.query_tokens.expand(encoder_states.shape[0], -1, -1)
        x = self.embed_norm(queries)  # (B, Q, H)
        mask = self.query_mask(x.device)
        for layer in self.layers:
            if self.grad_checkpointing and torch.is_grad_enabled():
                x = checkpoint(layer.forward_queries, x, encoder_states, mask, use_reentrant=False)
            else:
                x = layer.forward_queries(x, encoder_states, mask)
        return x

    def encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Text branch (bidirectional, no cross-attention): ids (B, T) -> states (B, T, H)."""
        if not self.config.has_text_branch:
            raise RuntimeError("this Q-Former has no text branch (config.vocab_size == 0)")
        T = input_ids.shape[1]
        if T > self.config.max_text_len:
            raise ValueError(f"text of {T} tokens exceeds max_text_len={self.config.max_text_len}")
        positions = torch.arange(T, device=input_ids.device)
        x = self.embed_norm(self.word_embed(input_ids) + self.pos_embed(positions))  # (B, T, H)
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        mask = attention_mask.bool()[:, None, None, :]  # (B, 1, 1, T): keys that may be attended
        for layer in self.layers:
            x = layer.forward_text(x, mask)
        return x

    def text_embedding(self, text: dict[str, torch.Tensor]) -> torch.Tensor:
        """Stage-1 text side -> (B, proj_dim) L2-normalised. ``text`` holds ``input_ids`` +
        ``attention_mask`` for the own text branch ([CLS] state), or ``text_states`` (B, T, D) +
        ``text_mask`` from the frozen text encoder for ``text_tower='minilm'``."""
        if self.config.has_text_head:
            pooled = self.text_head(text["text_states"], text["text_mask"])  # (B, H)
        else:
            pooled = self.encode_text(text["input_ids"], text.get("attention_mask"))[:, 0]  # (B, H)
        return F.normalize(self.text_proj(pooled), dim=-1)
