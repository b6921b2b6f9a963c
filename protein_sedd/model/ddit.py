"""DDiT: the diffusion transformer that scores noisy protein sequences.

tokens -> embedding -> N x [adaLN-modulated rotary attention + adaLN-modulated MLP, gated residuals]
-> adaLN final layer -> logits over the vocabulary. Conditioning c = SiLU(MLP(sinusoidal(sigma_bar))).
adaLN layers and the output layer start at zero, so at initialisation every block is the identity
and the network outputs zeros.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from protein_sedd.model.attention import attention, attention_at
from protein_sedd.model.config import DDiTConfig
from protein_sedd.model.rotary import Rotary, apply_rotary


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale) + shift


GELU_TANH = math.sqrt(2 / math.pi)


class TanhGELU(nn.Module):
    """GELU's tanh approximation, x (1 + tanh(k (x + 0.044715 x^3))) / 2 with k = sqrt(2 / pi), as
    nn.GELU(approximate="tanh") computes it, and as the network trains. Inference on a CPU takes faster
    forms (torch's tanh kernels are not vectorised there; this was a fifth of a design pass,
    workflows/benchmarks/design_throughput.py): float32 runs x sigmoid(2k (x + 0.044715 x^3)) in place,
    the same function to float32 rounding, about twice as fast; bfloat16 (autocast) runs the exact, erf
    GELU, 4.6x faster, which differs from the approximation by at most 4.7e-4, under a thirtieth of
    bfloat16's own rounding of the output (1.6e-2 at the largest activations)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type != "cpu" or (torch.is_grad_enabled() and x.requires_grad):
            return F.gelu(x, approximate="tanh")
        if x.dtype == torch.bfloat16:
            return F.gelu(x)
        u = x * x
        u.mul_(0.044715 * 2 * GELU_TANH).add_(2 * GELU_TANH).mul_(x)
        return u.sigmoid_().mul_(x)


class TimestepEmbedder(nn.Module):
    """sigma_bar -> sinusoidal features -> 2-layer SiLU MLP."""

    def __init__(self, cond_dim: int, frequency_dim: int = 256):
        super().__init__()
        self.frequency_dim = frequency_dim
        self.mlp = nn.Sequential(nn.Linear(frequency_dim, cond_dim), nn.SiLU(), nn.Linear(cond_dim, cond_dim))

    def sinusoidal(self, sigma: torch.Tensor, max_period: float = 10_000.0) -> torch.Tensor:
        half = self.frequency_dim // 2
        freqs = torch.exp(
            -math.log(max_period) * torch.arange(half, device=sigma.device, dtype=torch.float32) / half
        )
        args = sigma.float()[:, None] * freqs[None]
        return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)

    def forward(self, sigma: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.sinusoidal(sigma))


class DDiTBlock(nn.Module):
    def __init__(self, config: DDiTConfig):
        super().__init__()
        d = config.hidden_size
        self.n_heads = config.n_heads
        self.causal = config.causal
        self.norm_attn = nn.LayerNorm(d, bias=False)
        self.qkv = nn.Linear(d, 3 * d, bias=False)
        self.attn_out = nn.Linear(d, d, bias=False)
        self.norm_mlp = nn.LayerNorm(d, bias=False)
        self.mlp = nn.Sequential(
            nn.Linear(d, config.mlp_ratio * d),
            TanhGELU(),
            nn.Linear(config.mlp_ratio * d, d),
        )
        self.dropout = nn.Dropout(config.dropout)
        self.adaLN = nn.Linear(config.cond_dim, 6 * d)
        nn.init.zeros_(self.adaLN.weight)
        nn.init.zeros_(self.adaLN.bias)

    def forward(self, x, c, cos, sin, lengths):
        shift_a, scale_a, gate_a, shift_m, scale_m, gate_m = self.adaLN(c)[:, None].chunk(6, dim=-1)
        h = modulate(self.norm_attn(x), shift_a, scale_a)
        q, k, v = rearrange(self.qkv(h), "b l (three h d) -> three b l h d", three=3, h=self.n_heads)
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        h = rearrange(attention(q, k, v, lengths, self.causal), "b l h d -> b l (h d)")
        x = x + gate_a * self.dropout(self.attn_out(h))
        h = modulate(self.norm_mlp(x), shift_m, scale_m)
        return x + gate_m * self.dropout(self.mlp(h))

    def forward_at(self, x, c, cos, sin, lengths, rows, cols):
        """The block's output at positions (rows[e], cols[e]) only [E, d], as `forward` gives it there.

        Keys and values come from every position of each row; the query, the attention output and the
        MLP run at the E positions alone (a last block that feeds only those positions' logits).
        """
        d = x.shape[-1]
        shift_a, scale_a, gate_a, shift_m, scale_m, gate_m = self.adaLN(c).chunk(6, dim=-1)  # [B, d] each
        h = modulate(self.norm_attn(x), shift_a[:, None], scale_a[:, None])
        k, v = rearrange(
            F.linear(h, self.qkv.weight[d:]), "b l (two h d) -> two b l h d", two=2, h=self.n_heads
        )
        q = rearrange(F.linear(h[rows, cols], self.qkv.weight[:d]), "e (h d) -> e 1 h d", h=self.n_heads)
        q, k = apply_rotary(q, cos[cols][:, None], sin[cols][:, None]), apply_rotary(k, cos, sin)
        # each position attends over its own row: [E, 1, heads, head_dim] against that row's keys
        out = attention_at(q, k, v, rows, lengths, self.causal, cols)
        x = x[rows, cols] + gate_a[rows] * self.attn_out(rearrange(out, "e 1 h d -> e (h d)"))
        h = modulate(self.norm_mlp(x), shift_m[rows], scale_m[rows])
        return x + gate_m[rows] * self.mlp(h)


class FinalLayer(nn.Module):
    def __init__(self, config: DDiTConfig):
        super().__init__()
        self.norm = nn.LayerNorm(config.hidden_size, bias=False)
        self.linear = nn.Linear(config.hidden_size, config.vocab_size)
        self.adaLN = nn.Linear(config.cond_dim, 2 * config.hidden_size)
        for layer in (self.linear, self.adaLN):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, x, c):
        """x [B, L, d], c [B, cond] -> [B, L, vocab]; or x [E, d] with c [E, cond] -> [E, vocab]."""
        shift, scale = self.adaLN(c).chunk(2, dim=-1)
        if x.dim() == 3:
            shift, scale = shift[:, None], scale[:, None]
        return self.linear(modulate(self.norm(x), shift, scale))


class DDiT(nn.Module):
    def __init__(self, config: DDiTConfig):
        super().__init__()
        if config.hidden_size % config.n_heads:
            raise ValueError(f"hidden_size {config.hidden_size} is not divisible by n_heads {config.n_heads}")
        self.config = config
        self.embedding = nn.Embedding(config.vocab_size, config.hidden_size)
        nn.init.kaiming_uniform_(self.embedding.weight, a=math.sqrt(5))
        if config.end_embeddings:
            self.from_start = nn.Embedding(config.max_length, config.hidden_size)
            self.from_end = nn.Embedding(config.max_length, config.hidden_size)
            for table in (self.from_start, self.from_end):
                nn.init.normal_(table.weight, std=0.02)
        self.time_embedding = TimestepEmbedder(config.cond_dim)
        self.rotary = Rotary(config.hidden_size // config.n_heads)
        self.blocks = nn.ModuleList(DDiTBlock(config) for _ in range(config.n_layers))
        self.final = FinalLayer(config)

    def forward(self, tokens: torch.Tensor, sigma_bar: torch.Tensor, lengths: torch.Tensor | None = None):
        """tokens [B, L] (right-padded), sigma_bar [B], lengths [B] or None -> logits [B, L, vocab]."""
        x, c = self._trunk(tokens, sigma_bar, lengths)
        return self.final(x, c).float()

    def logits_at(
        self,
        tokens: torch.Tensor,
        sigma_bar: torch.Tensor,
        lengths: torch.Tensor | None,
        rows: torch.Tensor,
        cols: torch.Tensor,
    ) -> torch.Tensor:
        """forward(tokens, sigma_bar, lengths)[rows, cols]: logits [E, vocab] at E positions, float32.

        The last block runs only its keys and values at every position and the rest at the E positions,
        which is most of a block's work when a few positions per row are wanted (the event sampler).
        """
        x, c = self._trunk(tokens, sigma_bar, lengths, blocks=self.blocks[:-1])
        cos, sin = self.rotary.cos_sin(tokens.shape[1], tokens.device)
        if lengths is None:
            lengths = torch.full((tokens.shape[0],), tokens.shape[1], device=tokens.device)
        x = self.blocks[-1].forward_at(x, c, cos, sin, lengths, rows, cols)
        return self.final(x, c[rows]).float()

    def hidden_states(
        self, tokens: torch.Tensor, sigma_bar: torch.Tensor, lengths: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The last block's output [B, L, hidden_size], before the final norm and projection."""
        return self._trunk(tokens, sigma_bar, lengths)[0]

    def _trunk(self, tokens, sigma_bar, lengths, blocks=None) -> tuple[torch.Tensor, torch.Tensor]:
        """(the output of `blocks` (default: all), the conditioning vector)."""
        if tokens.shape[1] > self.config.max_length:
            raise ValueError(
                f"sequence length {tokens.shape[1]} exceeds the model context {self.config.max_length}"
            )
        if not self.config.time_conditioning:
            sigma_bar = torch.zeros_like(sigma_bar)  # time-independent parametrisation
        c = F.silu(self.time_embedding(sigma_bar))
        x = self.embedding(tokens)
        if self.config.end_embeddings:
            x = x + self._end_embeddings(tokens, lengths)
        cos, sin = self.rotary.cos_sin(tokens.shape[1], tokens.device)
        for block in self.blocks if blocks is None else blocks:
            x = block(x, c, cos, sin, lengths)
        return x, c

    def _end_embeddings(self, tokens: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
        batch, length = tokens.shape
        positions = torch.arange(length, device=tokens.device)
        if lengths is None:
            lengths = torch.full((batch,), length, device=tokens.device)
        to_end = (lengths[:, None] - 1 - positions[None, :]).clamp(min=0)  # pads: clamped, never attended
        return self.from_start(positions)[None] + self.from_end(to_end)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
