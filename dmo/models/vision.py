"""The vision side of the MoD MLLM: a small ViT tower and LLaVA-1.5's MLP projector."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dmo.models.configuration_mod_mllm import ModMLLMConfig


class VisionAttention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, P, D = x.shape
        qkv = self.qkv(x).view(B, P, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])  # (B, heads, P, D/heads), bidirectional
        return self.proj(y.transpose(1, 2).reshape(B, P, D))


class VisionMLP(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, 4 * dim)
        self.fc2 = nn.Linear(4 * dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class VisionBlock(nn.Module):
    """Pre-norm ViT block."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = VisionAttention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = VisionMLP(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class VisionTower(nn.Module):
    """A small ViT: conv patch embedding + learned positions + pre-norm blocks."""

    def __init__(self, config: ModMLLMConfig):
        super().__init__()
        dim, p = config.vision_hidden_size, config.patch_size
        self.image_size = config.image_size
        self.patch_embed = nn.Conv2d(3, dim, kernel_size=p, stride=p)
        self.position_embedding = nn.Parameter(torch.zeros(1, config.patches_per_frame, dim))
        self.num_frames = config.num_frames
        # A video model's frames share the patch positions and add their own place in time. An image
        # model has no such parameter, so its checkpoints keep their tensors.
        self.frame_embedding = nn.Parameter(torch.zeros(config.num_frames, dim)) if config.num_frames > 1 else None
        self.blocks = nn.ModuleList(
            VisionBlock(dim, config.vision_heads) for _ in range(config.vision_layers)
        )
        self.post_norm = nn.LayerNorm(dim)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) images, or (B, F, 3, H, W) videos in a model of F frames, to (B, F·P, D) features,
        frame after frame. Frames are encoded independently (attention within a frame), as a video
        LLM's image encoder does; the decoder relates them."""
        frames = pixel_values.shape[1] if pixel_values.dim() == 5 else 1
        if tuple(pixel_values.shape[-3:]) != (3, self.image_size, self.image_size) or frames != self.num_frames:
            shape = f"(B, {self.num_frames}, 3, S, S)" if self.num_frames > 1 else "(B, 3, S, S)"
            raise ValueError(f"pixel_values must be {shape} with S = {self.image_size}, got {tuple(pixel_values.shape)}")
        batch = pixel_values.shape[0]
        x = self.patch_embed(pixel_values.reshape(batch * frames, *pixel_values.shape[-3:]))  # (B·F, D, H/p, W/p)
        x = x.flatten(2).transpose(1, 2) + self.position_embedding  # (B·F, P, D), row-major patches
        if self.frame_embedding is not None:
            x = x + self.frame_embedding.repeat(batch, 1)[:, None, :]
        for block in self.blocks:
            x = block(x)
        return self.post_norm(x).reshape(batch, -1, x.shape[-1])  # (B, F·P, D)


class Projector(nn.Module):
    """LLaVA-1.5's two-layer MLP from vision width to decoder width."""

    def __init__(self, config: ModMLLMConfig):
        super().__init__()
        self.linear_1 = nn.Linear(config.vision_hidden_size, config.hidden_size)
        self.linear_2 = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.linear_2(F.gelu(self.linear_1(features)))  # (B, P, d)
