"""The QCA law (Aetheria's 2-level U-Net, shared/specs/qca-step.md) and one engine step, in PyTorch.

Parameter names match the state_dict of Aetheria's UNet / UNetUnitary, so ferrite's
models::QcaUnet loads the same safetensors by name. Used by make_qca_fixtures.py and qca.py.
"""
import torch
from torch import nn


def group_norm_groups(channels):
    """C/8 groups when C > 8 and C/8 divides C, else 1 (ferrite::group_norm_groups)."""
    if channels > 8:
        g = channels // 8
        if channels % g == 0:
            return g
    return 1


class ConvBlock(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        g = group_norm_groups(cout)
        self.conv_block = nn.Sequential(
            nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.GroupNorm(g, cout), nn.ELU(inplace=True),
            nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.GroupNorm(g, cout), nn.ELU(inplace=True))

    def forward(self, x):
        return self.conv_block(x)


class QcaUNet(nn.Module):
    def __init__(self, d_state=8, hidden=32, small_outc=True):
        super().__init__()
        c, h = 2 * d_state, hidden
        self.inc = ConvBlock(c, h)
        self.down1 = nn.Sequential(nn.MaxPool2d(2), ConvBlock(h, 2 * h))
        self.down2 = nn.Sequential(nn.MaxPool2d(2), ConvBlock(2 * h, 4 * h))
        self.bot = ConvBlock(4 * h, 8 * h)
        self.up1 = nn.ConvTranspose2d(8 * h, 4 * h, kernel_size=2, stride=2)
        self.conv_up1 = ConvBlock(6 * h, 4 * h)
        self.up2 = nn.ConvTranspose2d(4 * h, 2 * h, kernel_size=2, stride=2)
        self.conv_up2 = ConvBlock(3 * h, h)
        self.outc = nn.Conv2d(h, c, kernel_size=1)
        if small_outc:  # Aetheria's "small deltas" init
            nn.init.normal_(self.outc.weight, std=1e-5)

    def forward(self, x):
        x1 = self.inc(x)
        x2 = self.down1(x1)
        x3 = self.down2(x2)
        b = self.bot(x3)
        c1 = self.conv_up1(torch.cat([self.up1(b), x2], dim=1))
        c2 = self.conv_up2(torch.cat([self.up2(c1), x1], dim=1))
        return self.outc(c2)


def qca_step(model, psi, law, gamma=0.01):
    """One step. psi: complex64 [B, H, W, d]; law: 'unet' (additive) or 'unet-unitary' (product)."""
    d = psi.shape[-1]
    x = torch.cat([psi.real, psi.imag], dim=-1).permute(0, 3, 1, 2).contiguous()
    o = model(x).permute(0, 2, 3, 1)
    m = torch.complex(o[..., :d].contiguous(), o[..., d:].contiguous())
    g = m * psi if law == "unet-unitary" else m
    psi1 = psi + g - gamma * psi
    return psi1 / (torch.sqrt((psi1.abs() ** 2).sum(-1, keepdim=True)) + 1e-9)


def complex_noise_state(batch, height, width, d_state, generator):
    n = 0.1 * torch.randn(batch, height, width, d_state, generator=generator)
    return torch.complex(torch.cos(n), torch.sin(n))


def as_real(psi):
    """complex64 [..., d] -> f32 [..., d, 2], ferrite's storage of psi."""
    return torch.view_as_real(psi).contiguous()


def from_real(t):
    return torch.view_as_complex(t.contiguous())
