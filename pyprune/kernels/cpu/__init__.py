"""CPU kernel registry: op name -> kernel class. Importing this compiles nothing: Numba
compiles (or loads from its cache) each kernel on its first call."""

from .activation import (BatchNormKernel, ChannelAffineKernel, ClipKernel, IdentityKernel,
                         LeakyReluKernel, LrnKernel, ReluKernel, SigmoidKernel, SoftmaxKernel)
from .base import Act, CpuKernel
from .conv import ConvKernel
from .gated_conv import GatedConvKernel
from .linear import LinearKernel
from .pool import GlobalPoolKernel, PoolKernel
from .tensor import AddKernel, ConcatKernel, FlattenKernel

CPU_KERNELS = {
    "Conv2d": ConvKernel, "GatedConv2d": GatedConvKernel, "BatchNorm2d": BatchNormKernel,
    "Relu": ReluKernel, "Relu6": ClipKernel, "Clip": ClipKernel, "LeakyRelu": LeakyReluKernel,
    "Sigmoid": SigmoidKernel, "Softmax": SoftmaxKernel, "Dropout": IdentityKernel,
    "MaxPool2d": PoolKernel, "AvgPool2d": PoolKernel, "GlobalAvgPool": GlobalPoolKernel,
    "GlobalMaxPool": GlobalPoolKernel, "Concat": ConcatKernel, "Add": AddKernel,
    "Flatten": FlattenKernel, "Linear": LinearKernel, "Scale": ChannelAffineKernel,
    "AddBias": ChannelAffineKernel, "LRN": LrnKernel,
}

__all__ = ["Act", "CpuKernel", "CPU_KERNELS"]
