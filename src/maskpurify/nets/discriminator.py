"""SimGAN's local adversarial discriminator: one real/fake logit per image patch.

Judging patches instead of whole images (Shrivastava et al. 2017) keeps the discriminator from
keying on global layout, stabilises training and gives many samples per image. Any input size works.
"""

from __future__ import annotations

import torch
from torch import nn


class PatchDiscriminator(nn.Module):
    """(N,3,H,W) in [0,1] -> (N,1,ceil(H/4),ceil(W/4)) logits, each seeing a patch of about 15x15 pixels.

    Layout after SimGAN's D: two stride-2 3x3 convs, a 3x3 conv, a 1x1 conv and a 1x1 logit conv,
    LeakyReLU between, no normalisation (batch statistics would leak between real and fake batches).
    """

    def __init__(self, base_channels: int = 32, in_channels: int = 3) -> None:
        super().__init__()
        c = base_channels
        act = nn.LeakyReLU(0.2, inplace=True)
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, c, 3, stride=2, padding=1), act,
            nn.Conv2d(c, 2 * c, 3, stride=2, padding=1), act,
            nn.Conv2d(2 * c, 2 * c, 3, padding=1), act,
            nn.Conv2d(2 * c, c, 1), act,
            nn.Conv2d(c, 1, 1),
        )

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        # Centre the input so the first layer starts from zero-mean data.
        return self.net(image * 2.0 - 1.0)
