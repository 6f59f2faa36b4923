"""Activation families: CPAF and its peers as NNX and Linen modules, the registry and export."""
