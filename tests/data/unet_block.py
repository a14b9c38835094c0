"""A diffusion U-Net down block (Stable-Diffusion-like: ResNet blocks with a time embedding, self- and
cross-attention transformer blocks, a strided downsample) in plain torch, for `hwsim predict --module`."""
import torch
import torch.nn.functional as F
from torch import nn


class ResBlock(nn.Module):
    def __init__(self, cin, cout, temb=1280):
        super().__init__()
        self.norm1 = nn.GroupNorm(32, cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.time = nn.Linear(temb, cout)
        self.norm2 = nn.GroupNorm(32, cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x, t):
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.time(F.silu(t))[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return self.skip(x) + h


class CrossAttention(nn.Module):
    def __init__(self, dim, context_dim, heads=8):
        super().__init__()
        self.heads = heads
        self.to_q = nn.Linear(dim, dim, bias=False)
        self.to_k = nn.Linear(context_dim, dim, bias=False)
        self.to_v = nn.Linear(context_dim, dim, bias=False)
        self.to_out = nn.Linear(dim, dim)

    def forward(self, x, context):
        b, n, d = x.shape
        q = self.to_q(x).view(b, n, self.heads, -1).transpose(1, 2)
        k = self.to_k(context).view(b, context.shape[1], self.heads, -1).transpose(1, 2)
        v = self.to_v(context).view(b, context.shape[1], self.heads, -1).transpose(1, 2)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.to_out(out.transpose(1, 2).reshape(b, n, d))


class Transformer(nn.Module):
    def __init__(self, dim, context_dim):
        super().__init__()
        self.norm = nn.GroupNorm(32, dim)
        self.proj_in = nn.Linear(dim, dim)
        self.norm1, self.attn1 = nn.LayerNorm(dim), CrossAttention(dim, dim)
        self.norm2, self.attn2 = nn.LayerNorm(dim), CrossAttention(dim, context_dim)
        self.norm3 = nn.LayerNorm(dim)
        self.ff = nn.Sequential(nn.Linear(dim, dim * 8), nn.GELU(), nn.Linear(dim * 4 * 2, dim))
        self.proj_out = nn.Linear(dim, dim)

    def forward(self, x, context):
        b, c, h, w = x.shape
        y = self.proj_in(self.norm(x).flatten(2).transpose(1, 2))
        y = y + self.attn1(self.norm1(y), self.norm1(y))
        y = y + self.attn2(self.norm2(y), context)
        y = y + self.ff(self.norm3(y))
        return x + self.proj_out(y).transpose(1, 2).reshape(b, c, h, w)


class DownBlock(nn.Module):
    def __init__(self, cin=320, cout=640, context_dim=768, layers=2):
        super().__init__()
        self.resnets = nn.ModuleList(ResBlock(cin if i == 0 else cout, cout) for i in range(layers))
        self.attentions = nn.ModuleList(Transformer(cout, context_dim) for _ in range(layers))
        self.down = nn.Conv2d(cout, cout, 3, stride=2, padding=1)

    def forward(self, x, t, context):
        for resnet, attn in zip(self.resnets, self.attentions):
            x = attn(resnet(x, t), context)
        return self.down(x)


def build(batch=2):
    with torch.device("meta"):
        block = DownBlock().to(torch.float16)
        x = torch.empty(batch, 320, 64, 64, dtype=torch.float16)
        t = torch.empty(batch, 1280, dtype=torch.float16)
        context = torch.empty(batch, 77, 768, dtype=torch.float16)
    return block, (x, t, context)
