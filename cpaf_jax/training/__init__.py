"""Training: state, optimiser groups, the training engine, checkpoints and device meshes."""
