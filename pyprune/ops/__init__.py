"""The op registry: op name (as written in model files) -> Op instance."""

from .channel import LRN, AddBias, Scale
from .activation import Clip, Dropout, LeakyRelu, Relu, Relu6, Sigmoid, Softmax
from .conv import Conv2d, GatedConv2d
from .linear import Linear
from .norm import BatchNorm2d
from .pool import AvgPool2d, GlobalAvgPool, GlobalMaxPool, MaxPool2d
from .tensor import Add, Concat, Flatten

OPS = {op.name: op for op in (
    Conv2d(), GatedConv2d(), BatchNorm2d(), Relu(), Relu6(), Clip(), LeakyRelu(), Sigmoid(),
    Softmax(), Dropout(), MaxPool2d(), AvgPool2d(), GlobalAvgPool(), GlobalMaxPool(),
    Concat(), Add(), Flatten(), Linear(), Scale(), AddBias(), LRN(),
)}
