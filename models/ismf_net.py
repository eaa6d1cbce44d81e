"""ISMF-Net reference architecture (PyTorch).

Four sequence encoders (sag T1W, sag T2W, sag T2FS, ax T2W), each over its 2.5-D stack of
5 planes × 160 × 160 produced by the Rust preprocessing (`ismf dataset`); a clinical encoder
over the 9-value clinical vector; cross-modal fusion by a small transformer encoder over the
five tokens; a 5-class head (SCN, MNG, AST, EPN, MET).

Chosen for tract on an edge CPU (shared/PROBES.md): a 4×4 stride-4 patchify stem instead of
a large first convolution on the full grid, plain (not depthwise) convolutions, batch norm that
folds into the convolutions on export, static shapes, opset 17.
"""

import torch
from torch import nn

SEQUENCES = ("sag_t1w", "sag_t2w", "sag_t2fs", "ax_t2w")
CLASSES = ("SCN", "MNG", "AST", "EPN", "MET")


def conv_bn(cin: int, cout: int, k: int, s: int, p: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, s, p, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class SequenceEncoder(nn.Module):
    """5 × 160 × 160 → one 128-d token."""

    def __init__(self, planes: int = 5, width: int = 32, dim: int = 128):
        super().__init__()
        self.body = nn.Sequential(
            conv_bn(planes, width, 4, 4, 0),  # 40 × 40
            conv_bn(width, width * 2, 3, 2, 1),  # 20 × 20
            conv_bn(width * 2, width * 4, 3, 2, 1),  # 10 × 10
            conv_bn(width * 4, dim, 3, 2, 1),  # 5 × 5
        )
        self.pool = nn.AdaptiveAvgPool2d(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.body(x)).flatten(1)


class IsmfNet(nn.Module):
    def __init__(self, clinical: int = 9, dim: int = 128, layers: int = 2, heads: int = 4,
                 use_sequences=SEQUENCES, use_clinical: bool = True):
        super().__init__()
        self.use_sequences = tuple(use_sequences)
        self.use_clinical = use_clinical
        self.encoders = nn.ModuleDict({k: SequenceEncoder(dim=dim) for k in self.use_sequences})
        self.clinical = nn.Sequential(nn.Linear(clinical, dim), nn.ReLU(inplace=True), nn.Linear(dim, dim))
        tokens = len(self.use_sequences) + int(use_clinical)
        self.type_embedding = nn.Parameter(torch.zeros(1, tokens, dim))
        layer = nn.TransformerEncoderLayer(dim, heads, dim * 2, dropout=0.1, batch_first=True)
        self.fusion = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.head = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, len(CLASSES)))

    def forward(self, sag_t1w, sag_t2w, sag_t2fs, ax_t2w, clinical):
        inputs = {"sag_t1w": sag_t1w, "sag_t2w": sag_t2w, "sag_t2fs": sag_t2fs, "ax_t2w": ax_t2w}
        tokens = [self.encoders[k](inputs[k]) for k in self.use_sequences]
        if self.use_clinical:
            tokens.append(self.clinical(clinical))
        x = torch.stack(tokens, 1) + self.type_embedding
        x = self.fusion(x).mean(1)
        return self.head(x)
