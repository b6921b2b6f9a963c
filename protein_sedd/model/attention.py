"""Multi-head attention kernels: flash-attn varlen on CUDA when installed, else PyTorch SDPA.

Both take right-padded [batch, length, heads, head_dim] tensors and a key padding mask, and never let
padding change the output at real positions.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

try:  # optional extra: pip install 'protein-sedd[gpu]'
    from flash_attn import flash_attn_varlen_func
except ImportError:  # pragma: no cover - depends on the machine
    flash_attn_varlen_func = None


def flash_attn_available(tensor: torch.Tensor) -> bool:
    return (
        flash_attn_varlen_func is not None
        and tensor.is_cuda
        and tensor.dtype in (torch.float16, torch.bfloat16)
    )


def sdpa_attention(q, k, v, lengths: torch.Tensor | None, causal: bool) -> torch.Tensor:
    batch, length = q.shape[:2]
    q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # [B, H, L, D]
    mask = None
    if lengths is not None and bool((lengths < length).any()):
        positions = torch.arange(length, device=q.device)
        mask = (positions[None, :] < lengths[:, None])[:, None, None, :]  # keys that are real
        if causal:
            mask = mask & torch.ones(length, length, dtype=torch.bool, device=q.device).tril()
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    else:
        out = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    return out.transpose(1, 2)


def flash_varlen_attention(q, k, v, lengths: torch.Tensor, causal: bool) -> torch.Tensor:
    """Unpad to the real tokens (cu_seqlens), run flash-attn varlen, pad back with zeros."""
    batch, length, heads, dim = q.shape
    real = torch.arange(length, device=q.device)[None, :] < lengths[:, None]
    index = real.flatten().nonzero().squeeze(1)
    cu_seqlens = F.pad(lengths.cumsum(0, dtype=torch.int32), (1, 0))
    max_len = int(lengths.max())
    q_u, k_u, v_u = (t.reshape(batch * length, heads, dim)[index] for t in (q, k, v))
    out_u = flash_attn_varlen_func(q_u, k_u, v_u, cu_seqlens, cu_seqlens, max_len, max_len, causal=causal)
    out = torch.zeros(batch * length, heads, dim, dtype=out_u.dtype, device=q.device)
    out[index] = out_u
    return out.view(batch, length, heads, dim)


def attention(q, k, v, lengths: torch.Tensor | None, causal: bool = False) -> torch.Tensor:
    if lengths is not None and flash_attn_available(q):
        return flash_varlen_attention(q, k, v, lengths, causal)
    return sdpa_attention(q, k, v, lengths, causal)


def attention_at(q, k, v, rows: torch.Tensor, lengths: torch.Tensor, causal: bool, cols: torch.Tensor):
    """Single queries q [E, 1, heads, dim] (query e: row rows[e], position cols[e]) against their rows'
    keys and values k, v [B, L, heads, dim], real positions only (up to cols[e] if causal) -> q's shape."""
    length = k.shape[1]
    positions = torch.arange(length, device=q.device)
    limit = lengths[rows] if not causal else torch.minimum(lengths[rows], cols + 1)
    mask = (positions[None, :] < limit[:, None])[:, None, None, :]  # [E, 1, 1, L]
    k, v = (t[rows].transpose(1, 2) for t in (k, v))  # [E, heads, L, dim]
    out = F.scaled_dot_product_attention(q.transpose(1, 2), k, v, attn_mask=mask)
    return out.transpose(1, 2)
