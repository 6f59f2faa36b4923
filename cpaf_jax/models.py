"""The paper's networks (Flax NNX), each taking any registered activation by name.

Choices where the paper is silent (SPEC.md section 3), and why:

* 4.1 and 4.2: 3x3 VALID convolutions, 2x2 max-pooling after the first two convolutions.
  For 4.2 this gives 14,754 activation elements, the nearest reading to the 14,790 of Fig. 14;
  for 4.1 it is what makes the last conv output exactly 1x1x2, the 2-D feature the paper
  plots, without any extra flattening layer.
* 4.3: 3x3 SAME convolutions (the flatten sizes 2048/1024 imply it); each conv is followed by
  its activation and then batch norm, as the table lists them ("conv = conv with the
  activation", then "BN"); dropout 0.25 after each pooling block and 0.5 after each FC512.
* Weight initialisation: Flax defaults (LeCun normal kernels, zero biases), identical across
  activations for a given seed because activation parameters draw no random numbers by
  default.

Every model follows Flax's NNX idiom: it is called as ``model(x)``, ``x`` ``[N, H, W, C]``
float, the result ``[N, num_classes]`` logits. ``model.train()`` (the mode a model is built in)
makes CifarNet's batch norm use batch statistics and its dropout drop, with keys from the
model's own ``nnx.Rngs`` (the ``dropout`` stream if the ``rngs`` given have one, else their
default stream); ``model.eval()`` uses the running statistics and no dropout.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from cpaf_jax.activations.registry import activation
from cpaf_jax.ops.fused_pool import activation_max_pool_2x2
from cpaf_jax.ops.max_pool import max_pool_2x2

Array = jax.Array


def _act(name, shape, sharing, kwargs, rngs):
    return activation(name, shape, sharing=sharing, rngs=rngs, **dict(kwargs or {}))


def _conv(cin: int, cout: int, padding: str, rngs: nnx.Rngs) -> nnx.Conv:
    return nnx.Conv(cin, cout, kernel_size=(3, 3), padding=padding, rngs=rngs)


def _conv_act_pool(conv: nnx.Conv, act, x: Array, fused: bool = True) -> Array:
    """``max_pool_2x2(act(conv(x)))``, with the bias, activation and pool fused.

    The convolution runs without its bias, which goes to ``activation_max_pool_2x2`` (its
    gradient is then summed at the pooled size); the values are those of ``conv(x)``.
    ``fused=False`` computes the plain composition (to measure what fusing buys).
    """
    if not fused:
        return max_pool_2x2(act(conv(x)))
    kernel = conv.kernel[...]
    bias = conv.bias[...] if conv.bias is not None else None
    dtype = jnp.result_type(x, kernel, *([] if bias is None else [bias]))  # as nnx.Conv does
    y = jax.lax.conv_general_dilated(
        x.astype(dtype),
        kernel.astype(dtype),
        window_strides=(1, 1),
        padding=conv.padding,
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
    )
    return activation_max_pool_2x2(act, y, None if bias is None else bias.astype(dtype))


class MnistFeatureNet(nnx.Module):
    """Experiment 4.1: conv 16-8-4-2 to a 2-D feature, then a linear 2 -> 10 head.

    Shapes (28x28x1 input): conv16 26x26 -> pool 13 -> conv8 11 -> pool 5 -> conv4 3 ->
    conv2 1x1x2 = the feature ``[z1, z2]``, activated like every other layer.

    Args:
      activation: a registered activation name.
      sharing: parameter sharing of parametric activations (per element in the paper).
      activation_kwargs: extra arguments for the activation modules (``k``, ``a_init``...).
      input_shape: per-example input shape.
      num_classes: output classes.
      fuse_pooling: compute each conv -> activation -> pool block with
        ``cpaf_jax.ops.fused_pool.activation_max_pool_2x2`` (the default; same values and gradients,
        faster and lighter); ``False`` composes the three.
    """

    default_sharing = "element"

    def __init__(
        self,
        activation: str,
        *,
        sharing: Any = "element",
        activation_kwargs: Mapping | None = None,
        input_shape=(28, 28, 1),
        num_classes: int = 10,
        fuse_pooling: bool = True,
        rngs: nnx.Rngs,
    ):
        h, w, c = input_shape
        widths = (16, 8, 4, 2)
        pools = (True, True, False, False)
        convs, acts = [], []
        cin = c
        for width, pool in zip(widths, pools, strict=True):
            convs.append(_conv(cin, width, "VALID", rngs))
            h, w = h - 2, w - 2
            if h < 1 or w < 1:
                raise ValueError(f"input shape {input_shape} is too small for MnistFeatureNet")
            acts.append(_act(activation, (h, w, width), sharing, activation_kwargs, rngs))
            if pool:
                h, w = h // 2, w // 2
            cin = width
        if (h, w) != (1, 1):
            raise ValueError(
                f"MnistFeatureNet needs inputs that reduce to 1x1 (28x28 does); "
                f"{input_shape} gives {h}x{w}"
            )
        self.convs = nnx.List(convs)
        self.acts = nnx.List(acts)
        self.pools = pools
        self.fuse_pooling = bool(fuse_pooling)
        self.head = nnx.Linear(2, num_classes, rngs=rngs)

    def features(self, x: Array) -> Array:
        """The 2-D feature ``[N, 2]`` of Fig. 11."""
        for conv, act, pool in zip(self.convs, self.acts, self.pools, strict=True):
            x = _conv_act_pool(conv, act, x, self.fuse_pooling) if pool else act(conv(x))
        return x.reshape(x.shape[0], -1)

    def __call__(self, x: Array) -> Array:
        return self.head(self.features(x))


class FashionNet(nnx.Module):
    """Experiment 4.2: conv 16-32-4, dense 30, softmax output.

    Shapes (28x28x1 input): conv16 26x26 -> pool 13 -> conv32 11x11 -> pool 5 -> conv4 3x3 ->
    flatten 36 -> dense 30 -> dense ``num_classes``. Activation elements per example:
    26*26*16 + 11*11*32 + 3*3*4 + 30 = 14,754.

    Args: as ``MnistFeatureNet``, plus ``hidden``, the width of the dense layer, and
    ``width``, a multiplier of every layer's width (conv channels 16, 32, 4 and ``hidden``,
    each rounded to a whole number >= 1): ``width > 1`` is the wider baseline whose weight
    count matches a network with per-element activation parameters (see
    ``cpaf_jax.experiments.reproduction_plan.WIDE_RELU_WIDTH``).
    """

    default_sharing = "element"

    def __init__(
        self,
        activation: str,
        *,
        sharing: Any = "element",
        activation_kwargs: Mapping | None = None,
        input_shape=(28, 28, 1),
        num_classes: int = 10,
        hidden: int = 30,
        width: float = 1.0,
        fuse_pooling: bool = True,
        rngs: nnx.Rngs,
    ):
        if not width > 0:
            raise ValueError(f"FashionNet width must be a number > 0, got {width!r}")
        c1, c2, c3, hidden = (max(1, round(n * width)) for n in (16, 32, 4, hidden))
        self.fuse_pooling = bool(fuse_pooling)
        h, w, c = input_shape
        kw = activation_kwargs
        self.conv1 = _conv(c, c1, "VALID", rngs)
        h, w = h - 2, w - 2
        self.act1 = _act(activation, (h, w, c1), sharing, kw, rngs)
        h, w = h // 2, w // 2
        self.conv2 = _conv(c1, c2, "VALID", rngs)
        h, w = h - 2, w - 2
        self.act2 = _act(activation, (h, w, c2), sharing, kw, rngs)
        h, w = h // 2, w // 2
        self.conv3 = _conv(c2, c3, "VALID", rngs)
        h, w = h - 2, w - 2
        if h < 1 or w < 1:
            raise ValueError(f"input shape {input_shape} is too small for FashionNet")
        self.act3 = _act(activation, (h, w, c3), sharing, kw, rngs)
        self.dense = nnx.Linear(h * w * c3, hidden, rngs=rngs)
        self.act4 = _act(activation, (hidden,), sharing, kw, rngs)
        self.out = nnx.Linear(hidden, num_classes, rngs=rngs)

    def __call__(self, x: Array) -> Array:
        x = _conv_act_pool(self.conv1, self.act1, x, self.fuse_pooling)
        x = _conv_act_pool(self.conv2, self.act2, x, self.fuse_pooling)
        x = self.act3(self.conv3(x))
        x = x.reshape(x.shape[0], -1)
        x = self.act4(self.dense(x))
        return self.out(x)


_CIFAR_STRUCTURES = {
    # (widths per block, batch norm, FC512 layers)
    1: ((32, 64, 128), True, 0),
    2: ((32, 64, 64), False, 2),
    3: ((32, 64, 64), True, 2),
}


class CifarNet(nnx.Module):
    """Experiment 4.3, Structures 1-3 of Table 3.

    Each block: (conv3x3 SAME -> activation [-> BN]) x 2 -> 2x2 max-pool -> dropout. Then
    flatten (4*4*width), Structures 2 and 3 add two FC512 layers with activation and dropout,
    and a dense softmax output.

    Args:
      structure: 1, 2 or 3.
      activation: a registered activation name.
      sharing: per channel in the paper.
      conv_dropout, fc_dropout: dropout rates (the paper does not state them).
      fuse_pooling: as for ``MnistFeatureNet``; applies where a pool follows an activation
        directly (Structure 2; with batch norm the pool follows the norm).
    """

    default_sharing = "channel"

    def __init__(
        self,
        activation: str,
        *,
        structure: int = 1,
        sharing: Any = "channel",
        activation_kwargs: Mapping | None = None,
        input_shape=(32, 32, 3),
        num_classes: int = 10,
        conv_dropout: float = 0.25,
        fc_dropout: float = 0.5,
        fuse_pooling: bool = True,
        rngs: nnx.Rngs,
    ):
        if structure not in _CIFAR_STRUCTURES:
            raise ValueError(
                f"structure must be one of {sorted(_CIFAR_STRUCTURES)}, got {structure}"
            )
        widths, use_bn, n_fc = _CIFAR_STRUCTURES[structure]
        h, w, cin = input_shape
        kw = activation_kwargs
        convs, acts, norms = [], [], []
        for width in widths:
            for _ in range(2):
                convs.append(_conv(cin, width, "SAME", rngs))
                acts.append(_act(activation, (h, w, width), sharing, kw, rngs))
                norms.append(nnx.BatchNorm(width, momentum=0.99, rngs=rngs) if use_bn else None)
                cin = width
            h, w = h // 2, w // 2
        self.structure = structure
        self.fuse_pooling = bool(fuse_pooling)
        self.convs = nnx.List(convs)
        self.acts = nnx.List(acts)
        self.norms = nnx.List(norms)
        flat = h * w * cin
        fcs, fc_acts = [], []
        for _ in range(n_fc):
            fcs.append(nnx.Linear(flat, 512, rngs=rngs))
            fc_acts.append(_act(activation, (512,), sharing, kw, rngs))
            flat = 512
        self.fcs = nnx.List(fcs)
        self.fc_acts = nnx.List(fc_acts)
        self.out = nnx.Linear(flat, num_classes, rngs=rngs)
        # Built last: each dropout forks a key from ``rngs``, which must not move the weights'
        # keys (the weights of a seed are those of the networks without dropout).
        self.conv_dropout = nnx.Dropout(conv_dropout, rngs=rngs)
        self.fc_dropout = nnx.Dropout(fc_dropout, rngs=rngs)

    def __call__(self, x: Array) -> Array:
        for i, (conv, act, norm) in enumerate(zip(self.convs, self.acts, self.norms, strict=True)):
            pool = i % 2 == 1
            if pool and norm is None:
                x = _conv_act_pool(conv, act, x, self.fuse_pooling)
            else:
                x = act(conv(x))
                if norm is not None:
                    x = norm(x)
                if pool:
                    x = max_pool_2x2(x)
            if pool:
                x = self.conv_dropout(x)
        x = x.reshape(x.shape[0], -1)
        for fc, act in zip(self.fcs, self.fc_acts, strict=True):
            x = act(fc(x))
            x = self.fc_dropout(x)
        return self.out(x).astype(jnp.float32)


MODELS = {"mnist_features": MnistFeatureNet, "fashion_mnist": FashionNet, "cifar": CifarNet}


def build_model(
    kind: str,
    activation: str,
    *,
    seed: int = 0,
    sharing: Any = None,
    **kwargs,
) -> nnx.Module:
    """Builds a paper network by kind (``"mnist_features"``, ``"fashion_mnist"``, ``"cifar"``).

    ``sharing=None`` takes the paper's default for that network; ``seed`` fixes the weights.
    """
    try:
        cls = MODELS[kind]
    except KeyError:
        raise ValueError(f"unknown model {kind!r}; known models are {sorted(MODELS)}") from None
    sharing = cls.default_sharing if sharing is None else sharing
    return cls(activation, sharing=sharing, rngs=nnx.Rngs(seed), **kwargs)
