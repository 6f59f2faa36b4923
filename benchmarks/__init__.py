"""Benchmark suite of cpaf-jax: ``python -m benchmarks [--quick | --smoke] [--out DIR]``.

Sections (one module each): ``activation`` (the activation alone), ``train_step`` (a training step
of each paper network, with its compiled memory), ``epoch`` (an epoch of the training engine,
``cpaf_jax.training.fit``, against the step alone), ``torch_peer`` (the same network in PyTorch
eager), ``loop_strategy`` (Python loop of jitted steps against ``lax.scan``). ``report`` writes
``BENCHMARKS.md`` and the JSON.
"""
