"""CUDA kernel registry: op name -> kernel class, the GPU twins of kernels/cpu. Importing
this needs numba-cuda (the `cuda` extra); devices/cuda.py imports it only when a session
asks for the GPU. Kernels compile on first launch."""

from .activation import ChannelAffineKernel, IdentityKernel, LrnKernel, SoftmaxKernel, UnaryKernel
from .conv import ConvKernel
from .gated_conv import GatedConvKernel
from .linear import LinearKernel
from .pool import GlobalPoolKernel, PoolKernel
from .tensor import AddKernel, ConcatKernel, FlattenKernel

CUDA_KERNELS = {
    "Conv2d": ConvKernel, "GatedConv2d": GatedConvKernel, "BatchNorm2d": ChannelAffineKernel,
    "Relu": UnaryKernel, "Relu6": UnaryKernel, "Clip": UnaryKernel, "LeakyRelu": UnaryKernel,
    "Sigmoid": UnaryKernel, "Softmax": SoftmaxKernel, "Dropout": IdentityKernel,
    "MaxPool2d": PoolKernel, "AvgPool2d": PoolKernel, "GlobalAvgPool": GlobalPoolKernel,
    "GlobalMaxPool": GlobalPoolKernel, "Concat": ConcatKernel, "Add": AddKernel,
    "Flatten": FlattenKernel, "Linear": LinearKernel, "Scale": ChannelAffineKernel,
    "AddBias": ChannelAffineKernel, "LRN": LrnKernel,
}

__all__ = ["CUDA_KERNELS"]
