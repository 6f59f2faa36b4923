"""The engine's epoch loop over an executor: steps, logging, evaluation, checkpoints.

One ``EpochRunner`` drives one executor (``cpaf_jax.training.executors``) through the epochs
of one engine call; it is the only training loop in the package. Dispatch is asynchronous:
the host waits only every ``log_every`` steps, when it reads the running metrics and the
members' ``failed_step``.
"""

from __future__ import annotations

import sys
import time

import numpy as np
from tqdm.auto import tqdm

from cpaf_jax.training import hosts
from cpaf_jax.training import records as rec
from cpaf_jax.training.members import member_epoch_indices
from cpaf_jax.training.results import TrainResult


class EpochRunner:
    """Trains the executor's members epoch by epoch and keeps their history.

    Args:
      ex: a loaded-or-empty executor.
      cfg: the engine's ``TrainConfig``.
      members: the engine's members.
      steps: steps per epoch; n: training images.
      ckpt: the engine's ``RunCheckpoints``.
      on_records: called with every batch of new records (or ``None``).
    """

    def __init__(self, ex, cfg, members, steps: int, n: int, ckpt, on_records=None):
        self.ex, self.cfg, self.members, self.steps, self.n = ex, cfg, members, steps, n
        self.ckpt, self.names = ckpt, [m.label for m in members]
        self.on_records = on_records
        self.m = len(members)
        self.history: list[list[dict]] = [[] for _ in members]
        self.failed: list[int | None] = [None] * self.m
        self.epoch_seconds: list[float] = []
        self.train_seconds, self.final = 0.0, None
        self.log, self.done = None, 0

    # -- set-up ---------------------------------------------------------------------------
    def load(self, states, start: int, meta: dict | None) -> None:
        """Loads the members' states (resumed from ``meta`` at epoch ``start`` if given)."""
        self.ex.load(states, steps_done=start * self.steps)
        if meta is not None:
            self.history = [list(h) for h in meta["history"]]
            self.failed = list(meta["failed"])
            self.epoch_seconds = list(meta["epoch_seconds"])
            self.train_seconds = float(sum(self.epoch_seconds))
            for j, f in enumerate(self.failed):
                if f is not None:
                    self.ex.deactivate(j)
        # Process 0 alone writes metrics.jsonl: every process holds every member's records.
        self.log = rec.MetricsLog(self.cfg.out_dir if hosts.is_writer() else None, self.history)

    def _write(self, records: list[dict]) -> None:
        for r in records:
            self.history[self.names.index(r["name"])].append(r)
        self.log.write(records)
        if self.on_records is not None and records:
            self.on_records(records)

    # -- the loop -------------------------------------------------------------------------
    def run(self, start: int, on_epoch_end=None) -> None:
        """Trains epochs ``start .. cfg.epochs - 1`` (none when a resumed run had finished)."""
        total = max(0, self.cfg.epochs - start) * self.steps
        self.bar = tqdm(total=total, desc=self._desc(), disable=not self.cfg.progress, leave=False)
        try:
            for epoch in range(start, self.cfg.epochs):
                if not self._epoch(epoch):
                    break
                if on_epoch_end is not None:
                    on_epoch_end(epoch + 1, self)
        finally:
            self.bar.close()

    def _desc(self) -> str:
        if self.m == 1:
            return self.cfg.name
        return f"{self.cfg.name} [M={self.m}, {self.ex.name}]"

    def _epoch(self, epoch: int) -> bool:
        """One epoch; False when every member has failed (training stops)."""
        self.ex.set_epoch(
            member_epoch_indices(
                [m.seed for m in self.members], epoch, self.n, self.steps, self.cfg.batch_size
            )
        )
        self.t_epoch, self.eval_time = time.perf_counter(), 0.0
        self.t_log, self.seen, self.epoch_sums = time.perf_counter(), 0, np.zeros((self.m, 3))
        for i in range(self.steps):
            self.ex.step(i)
            self.seen += 1
            self.done += 1
            step = epoch * self.steps + i + 1
            last = i == self.steps - 1
            if step % self.cfg.log_every == 0 or last:
                if self._log_train(epoch, step):
                    return False
            every = self.cfg.trajectory_every
            if every and (step % every == 0 or step == 1):
                self._trajectory(step)
            if self.cfg.eval_every and step % self.cfg.eval_every == 0 and not last:
                t0 = time.perf_counter()
                self._evaluate(epoch, step)
                self.eval_time += time.perf_counter() - t0
                self.t_log += time.perf_counter() - t0
        self._end_epoch(epoch)
        return True

    def _log_train(self, epoch: int, step: int) -> bool:
        """Reads the running sums: ``"train"`` records, progress, failures. True: all failed."""
        sums = self.ex.pop_train_metrics()
        self.epoch_sums += sums
        all_failed = self._check_failed(epoch)
        now = time.perf_counter()
        ips = self.seen * self.cfg.batch_size * self._active() / max(now - self.t_log, 1e-9)
        records = [
            rec.train_record(self.names[j], epoch, step, sums[j], ips)
            for j in range(self.m)
            if self.failed[j] is None
        ]
        self._write(records)
        if records:
            loss = np.nanmean([r["train_loss"] for r in records])
            acc = np.nanmean([r["train_accuracy"] for r in records])
            self.bar.set_postfix(loss=f"{loss:.4f}", acc=f"{acc:.3f}", img_s=f"{ips:,.0f}")
        self.bar.update(self.done - self.bar.n)
        self.t_log, self.seen = time.perf_counter(), 0
        return all_failed

    def _active(self) -> int:
        return sum(f is None for f in self.failed) or 1

    def _check_failed(self, epoch: int) -> bool:
        for j, f in enumerate(self.ex.failed_steps()):
            if f >= 0 and self.failed[j] is None:
                self.failed[j] = int(f)
                self._write(
                    [
                        {
                            "kind": "diverged",
                            "name": self.names[j],
                            "step": int(f),
                            "epoch": epoch + 1,
                        }
                    ]
                )
                self.ex.deactivate(j)
        return all(f is not None for f in self.failed)

    def _trajectory(self, step: int) -> None:
        summaries = self.ex.map_params(rec.activation_summary)
        if not summaries[0]:
            return  # no activation parameters to follow
        self._write(
            [rec.trajectory_record(self.names[j], step, summaries[j]) for j in range(self.m)]
        )

    def _evaluate(self, epoch: int, step: int) -> np.ndarray:
        sums = self.ex.evaluate()
        secs = self.train_seconds + (time.perf_counter() - self.t_epoch - self.eval_time)
        self._write(
            [rec.eval_record(self.names[j], epoch, step, sums[j], secs) for j in range(self.m)]
        )
        return sums

    def _end_epoch(self, epoch: int) -> None:
        self.ex.block()
        secs = time.perf_counter() - self.t_epoch - self.eval_time
        self.epoch_seconds.append(secs)
        self.final = self._evaluate(epoch, (epoch + 1) * self.steps)
        self.train_seconds += secs
        records = []
        for j in range(self.m):
            tr, ev = self.epoch_sums[j], self.history[j][-1]
            records.append(
                {
                    "kind": "epoch",
                    "name": self.names[j],
                    "epoch": epoch + 1,
                    "step": (epoch + 1) * self.steps,
                    "epoch_seconds": secs,
                    "train_loss": rec.ratio(tr[0], tr[2]),
                    "train_accuracy": rec.ratio(tr[1], tr[2]),
                    "test_loss": ev["test_loss"],
                    "test_accuracy": ev["test_accuracy"],
                }
            )
        self._write(records)
        self._print_epoch(epoch, records, secs)
        meta = {"history": self.history, "failed": self.failed, "epoch_seconds": self.epoch_seconds}
        self.ckpt.save(epoch + 1, self.ex.states(), meta)

    def _print_epoch(self, epoch: int, records: list[dict], secs: float) -> None:
        if not self.cfg.progress:
            return
        ok = [r for r, f in zip(records, self.failed, strict=True) if f is None] or records
        acc = np.array([r["test_accuracy"] for r in ok])
        loss = np.nanmean([r["train_loss"] for r in ok])
        ips = self.steps * self.cfg.batch_size * self._active() / max(secs, 1e-9)
        spread = f" [{acc.min():.4f}, {acc.max():.4f}] over {len(ok)}" if len(ok) > 1 else ""
        tqdm.write(
            f"{self.cfg.name} epoch {epoch + 1}/{self.cfg.epochs}: train loss {loss:.4f}, "
            f"test accuracy {np.nanmean(acc):.4f}{spread}, {ips:,.0f} img/s, {secs:.1f} s",
            file=sys.stderr,
        )

    # -- the result -----------------------------------------------------------------------
    def result(self, graphdef, timings: dict, wall: float):
        """The engine's ``TrainResult``."""
        final = self.final if self.final is not None else self.ex.evaluate()
        loss = final[:, 0] / np.maximum(final[:, 2], 1)
        acc = final[:, 1] / np.maximum(final[:, 2], 1)
        bad = np.array([f is not None for f in self.failed])
        loss[bad], acc[bad] = np.nan, np.nan
        steady = self.epoch_seconds[1:] if len(self.epoch_seconds) > 1 else self.epoch_seconds
        images = self.steps * self.cfg.batch_size * self.m * len(steady)
        return TrainResult(
            members=self.members,
            graphdef=graphdef,
            state=self.ex.states(),
            test_loss=loss,
            test_accuracy=acc,
            failed_step=self.failed,
            history=self.history,
            strategy=self.ex.name,
            chunk_size=self.ex.chunk_size,
            wall_seconds=wall,
            train_seconds=self.train_seconds,
            epoch_seconds=self.epoch_seconds,
            images_per_second=images / sum(steady) if sum(steady) else 0.0,
            member_steps_per_second=self.m
            * self.steps
            * len(self.epoch_seconds)
            / max(self.train_seconds, 1e-9),
            timings=timings,
            checkpoint=self.ckpt.last_good,
        )


__all__ = ["EpochRunner"]
