"""ISMF-Net reference architecture (PyTorch).

Four sequence encoders (sag T1W, sag T2W, sag T2FS, ax T2W), each over its 2.5-D stack of
5 planes × 160 × 160 produced by the Rust preprocessing (`ismf dataset`); a clinical encoder
over the 9-value clinical vector; cross-modal fusion by self-attention over the five tokens; a
5-class head (SCN, MNG, AST, EPN, MET).

Chosen for tract on an edge CPU (measurements in BENCHMARKS.md):
- plain (not depthwise) 3 × 3 stride-2 convolutions whose width doubles as the grid halves, so
  the first layer stays narrow on the full 160² grid (where tract loses most to onnxruntime) and
  the wide layers run on small grids (where it comes closest). A 4 × 4 stride-4 patchify stem was
  tried first: cheaper, but it smears the few-pixel cues (hemosiderin cap, dural tail, cyst wall)
  that separate the look-alike classes.
- batch norm folds into the convolutions on export; static shapes; opset 17.
- the fusion block is written out (Linear, MatMul, Softmax, LayerNorm, ReLU) rather than taken
  from `nn.TransformerEncoderLayer`, so the exported graph holds only standard ONNX ops whatever
  torch's fast paths do, and its MatMuls are what a QOperator quantizer can turn into
  QLinearMatMul.
"""

import torch
from torch import nn

SEQUENCES = ("sag_t1w", "sag_t2w", "sag_t2fs", "ax_t2w")
CLASSES = ("SCN", "MNG", "AST", "EPN", "MET")
PLANES = 5
GRID = 160
CLINICAL = 9


def conv_bn(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, 2, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class SequenceEncoder(nn.Module):
    """5 × 160 × 160 → one `dim`-wide token: five stride-2 stages to 5 × 5, then the mean and the
    maximum over the grid, projected to the token.

    The maximum matters: a lesion is a few pixels of a 280 mm field of view, and a mean over the
    whole grid dilutes it (model version 1.0.0 pooled by the mean alone; with the maximum beside it the
    sag T2FS ablation fitted its training set better and gained 0.5 / 2.7 points on the internal /
    external test). Extra stride-1 convolutions at 20² and 10² were tried too: they doubled the
    encoder's cost for a gain the CPU training budget here could not confirm.
    """

    def __init__(self, planes: int = PLANES, dim: int = 128):
        super().__init__()
        widths = [planes, 16, 32, 64, 128, dim]
        self.body = nn.Sequential(*[conv_bn(a, b) for a, b in zip(widths, widths[1:])])
        self.proj = nn.Linear(2 * dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        return self.proj(torch.cat([y.mean((2, 3)), y.amax((2, 3))], 1))


class FusionLayer(nn.Module):
    """Pre-norm transformer encoder layer over the modality tokens (batch, tokens, dim)."""

    def __init__(self, dim: int, heads: int, dropout: float = 0.1):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.ff = nn.Sequential(nn.Linear(dim, 2 * dim), nn.ReLU(inplace=True), nn.Dropout(dropout), nn.Linear(2 * dim, dim))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        h = self.heads
        q, k, v = self.qkv(self.norm1(x)).reshape(b, t, 3, h, d // h).permute(2, 0, 3, 1, 4)
        attn = torch.softmax(q @ k.transpose(-1, -2) * (d // h) ** -0.5, dim=-1)
        y = (attn @ v).transpose(1, 2).reshape(b, t, d)
        x = x + self.drop(self.proj(y))
        return x + self.drop(self.ff(self.norm2(x)))


class IsmfNet(nn.Module):
    """The full model; `use_sequences` / `use_clinical` build the ablations with the same recipe."""

    def __init__(self, dim: int = 128, layers: int = 2, heads: int = 4, use_sequences=SEQUENCES,
                 use_clinical: bool = True, token_dropout: float = 0.15):
        super().__init__()
        self.token_dropout = token_dropout
        self.use_sequences = tuple(use_sequences)
        self.use_clinical = use_clinical
        self.encoders = nn.ModuleDict({k: SequenceEncoder(dim=dim) for k in self.use_sequences})
        self.clinical = nn.Sequential(nn.Linear(CLINICAL, dim), nn.ReLU(inplace=True), nn.Linear(dim, dim))
        tokens = len(self.use_sequences) + int(use_clinical)
        self.type_embedding = nn.Parameter(torch.zeros(1, tokens, dim))
        self.fusion = nn.Sequential(*[FusionLayer(dim, heads) for _ in range(layers)])
        self.head = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, len(CLASSES)))
        # Clinical priors (age, sex, region) act on the class odds directly, as a Bayes factor would;
        # through the attention alone model version 1.0.0 learnt nothing from them (a product of the
        # image-only and clinical-only models beat it).
        self.clinical_logits = nn.Linear(CLINICAL, len(CLASSES)) if use_clinical else None
        # Training-only heads, one per sequence token (model 1.2.0). Trained jointly, the fusion
        # model leant on the easiest sequences and under-trained the other encoders ("modality
        # competition"): with simulator 2 it reached 78.1 / 74.2 % (internal / external test)
        # where a plain ensemble of the four separately trained single-sequence models reached
        # 82.9 / 80.7 %. A loss on each encoder's own prediction keeps every encoder
        # discriminative; the heads are not part of the exported graph.
        self.aux_heads = (nn.ModuleDict({k: nn.Linear(dim, len(CLASSES)) for k in self.use_sequences})
                          if len(self.use_sequences) > 1 else None)

    def forward(self, sag_t1w, sag_t2w, sag_t2fs, ax_t2w, clinical, with_aux: bool = False):
        """Logits (batch, 5); the exported graph appends a softmax. `with_aux` (training) also
        returns each sequence head's logits."""
        inputs = {"sag_t1w": sag_t1w, "sag_t2w": sag_t2w, "sag_t2fs": sag_t2fs, "ax_t2w": ax_t2w}
        tokens = [self.encoders[k](inputs[k]) for k in self.use_sequences]
        aux = ([self.aux_heads[k](t) for k, t in zip(self.use_sequences, tokens)]
               if with_aux and self.aux_heads is not None else [])
        if self.use_clinical:
            tokens.append(self.clinical(clinical))
        x = torch.stack(tokens, 1)
        if self.training and self.token_dropout > 0 and x.shape[1] > 1:
            # Modality dropout: each token is hidden now and then, so no one sequence carries the
            # decision alone and the fusion learns what each adds.
            keep = (torch.rand(x.shape[:2], device=x.device) >= self.token_dropout).to(x.dtype)
            x = x * keep.unsqueeze(-1)
        x = self.fusion(x + self.type_embedding)
        logits = self.head(x.mean(1))
        if self.clinical_logits is not None:
            logits = logits + self.clinical_logits(clinical)
        return (logits, aux) if with_aux else logits


class Exported(nn.Module):
    """What ships: the model in eval mode followed by softmax, so the graph outputs probabilities."""

    def __init__(self, model: IsmfNet):
        super().__init__()
        self.model = model

    def forward(self, sag_t1w, sag_t2w, sag_t2fs, ax_t2w, clinical):
        return torch.softmax(self.model(sag_t1w, sag_t2w, sag_t2fs, ax_t2w, clinical), dim=-1)


def count_macs(model: IsmfNet) -> int:
    """Multiply-accumulates of one forward pass (convolutions and linear layers; attention is tiny)."""
    macs = 0
    hooks = []

    def conv_hook(m, _inp, out):
        nonlocal macs
        macs += out.numel() // out.shape[0] * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]

    def linear_hook(m, _inp, out):
        nonlocal macs
        macs += out.numel() // out.shape[0] * m.in_features

    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            hooks.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            hooks.append(m.register_forward_hook(linear_hook))
    model.eval()
    with torch.no_grad():
        device = next(model.parameters()).device
        x = torch.zeros(1, PLANES, GRID, GRID, device=device)
        model(x, x, x, x, torch.zeros(1, CLINICAL, device=device))
    for h in hooks:
        h.remove()
    return macs
