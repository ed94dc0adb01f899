"""torchvision's model builders as test workloads, on the CPU build of torch.

PyPI's torchvision wheel is built against the CUDA build of torch: its `_C` extension links
libtorch_cuda.so, so on torch's CPU build it does not load, and `import torchvision` then dies
registering fake kernels for two ops that only `_C` defines (`torchvision::nms`, `qnms`). The model
builders need none of torchvision's compiled ops, so defining those two schemas (with no kernel)
and importing again gives the full `torchvision.models` package. scripts/setup.sh installs it
into build/test-packages (requirements/test-packages.txt), outside the environment, where other
programs' `import transformers` would trip over it.
"""

import importlib.util
import sys
from pathlib import Path

import torch

TEST_PACKAGES = Path(__file__).resolve().parents[2] / "build" / "test-packages"
if TEST_PACKAGES.is_dir() and str(TEST_PACKAGES) not in sys.path:
    sys.path.append(str(TEST_PACKAGES))  # after the environment: its torch, not a copy, is imported


def import_torchvision(required=True):
    """Imports torchvision, defining the two op schemas its missing `_C` would have defined.
    required=False: returns None when torchvision is not installed."""
    if not required and importlib.util.find_spec("torchvision") is None:
        return None
    try:
        import torchvision

        return torchvision
    except RuntimeError as error:
        if "torchvision::nms" not in str(error):
            raise
    for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
        del sys.modules[name]  # the failed import left a half-initialized package
    library = torch.library.Library("torchvision", "DEF")
    for op in ("nms", "qnms"):  # the schemas of torchvision's csrc/ops/nms.cpp
        library.define(f"{op}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    import_torchvision.library = library  # a Library's definitions last as long as the object
    import torchvision

    return torchvision


def build(name: str, torchvision):
    """(model in eval with seeded random weights, input) for one torchvision family, at the
    smallest input its architecture takes. The transformers (ViT, Swin, MaxViT) are built from
    their classes with tiny configs; VGG's and AlexNet's 4096-wide classifiers (100M+ weights)
    are narrowed to 64 (same layers: flatten, linear, ReLU, dropout, linear)."""
    from torch import nn
    import models  # tests/python/models.py: seeded weights, non-trivial batch-norm statistics

    M = torchvision.models
    size = 32
    if name == "vit":
        from torchvision.models.vision_transformer import VisionTransformer

        model = VisionTransformer(
            image_size=32, patch_size=8, num_layers=2, num_heads=2, hidden_dim=32, mlp_dim=64, num_classes=10
        )
    elif name in ("swin", "swin_v2"):
        from torchvision.models import swin_transformer as swin

        v2 = (
            {"block": swin.SwinTransformerBlockV2, "downsample_layer": swin.PatchMergingV2} if name == "swin_v2" else {}
        )
        model = swin.SwinTransformer(
            patch_size=[4, 4], embed_dim=16, depths=[2, 2], num_heads=[2, 2], window_size=[4, 4], num_classes=10, **v2
        )
    elif name == "maxvit":
        from torchvision.models.maxvit import MaxVit

        model = MaxVit(
            input_size=(32, 32),
            stem_channels=8,
            partition_size=4,
            block_channels=[16, 32],
            block_layers=[1, 1],
            head_dim=8,
            stochastic_depth_prob=0.0,
            num_classes=10,
        )
    elif name in ("deeplabv3_mobilenet_v3_large", "deeplabv3_resnet50", "fcn_resnet50", "lraspp_mobilenet_v3_large"):
        aux = {} if name.startswith("lraspp") else {"aux_loss": False}
        model = getattr(M.segmentation, name)(weights=None, weights_backbone=None, num_classes=3, **aux)
    elif name in ("googlenet", "inception_v3"):
        model = getattr(M, name)(weights=None, num_classes=10, aux_logits=False, init_weights=False)
        size = 75 if name == "inception_v3" else 32  # inception_v3's stem needs 75 x 75
    else:
        model = getattr(M, name)(weights=None, num_classes=10)
        size = 64 if name == "alexnet" else 32  # AlexNet's stride-4 stem and three pools need 63 x 63
        if name in ("alexnet", "vgg11_bn"):
            flat = model.classifier[1 if name == "alexnet" else 0].in_features
            model.classifier = nn.Sequential(nn.Linear(flat, 64), nn.ReLU(), nn.Dropout(), nn.Linear(64, 10))
    return OutputTensor(models.seeded(model)).eval(), torch.randn(
        1, 3, size, size, generator=torch.Generator().manual_seed(0)
    )


class OutputTensor(torch.nn.Module):
    """The model's output tensor (segmentation models return {"out": ...})."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        y = self.model(x)
        return y["out"] if isinstance(y, dict) else y
