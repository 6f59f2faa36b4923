"""Swapping the activations of a trained network for a trainable family, each fitted to the
function it replaces (``swap.swap_activations``), and where a model holds its activations
(``sites``)."""
