"""A small training loop: a tqdm progress bar, periodic eval, atomic checkpoints with exact resume, and a JSONL metrics log.

Resume is bit-exact because everything that determines the future is saved or derived:
the model and optimizer state (serialised leaves), the step (JSON), and the data, whose
batch for step `s` is a pure function of `(seed, s)` (see `data.DataSource`).
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import time
from typing import Any

import equinox as eqx
import optax
from tqdm import tqdm

from hybrid_seq.config import ModelConfig
from hybrid_seq.model import Model
from hybrid_seq.pattern import parse_pattern
from hybrid_seq.training.checkpoint import (
    latest_checkpoint,
    load_checkpoint,
    prune_checkpoints,
    read_meta,
    save_checkpoint,
)
from hybrid_seq.training.data import DataSource
from hybrid_seq.training.loss import LossTerms
from hybrid_seq.training.step import StepConfig, make_eval_step, make_train_step


@dataclasses.dataclass(frozen=True)
class TrainerConfig:
    """Loop settings. `out_dir` holds `metrics.jsonl` (entries tagged `"run": name`) and `checkpoints/<name>/`; nothing is written without it."""

    total_steps: int
    log_every: int = 10
    eval_every: int | None = None
    eval_batches: int = 1
    checkpoint_every: int | None = None
    keep_checkpoints: int = 2
    out_dir: str | None = None
    name: str = "train"


@dataclasses.dataclass
class TrainState:
    """Everything the loop carries: the model (fp32 master weights), the optax state and the number of steps done."""

    model: Model
    opt_state: Any
    step: int


class Trainer:
    """Train `model` on `train_data` with `optimizer`; see `TrainerConfig`. Call `restore()` to resume, then `run()`.

    Output: with `verbose`, a tqdm bar over the steps on stderr (loss, masked-token accuracy,
    tokens/s and lr as its postfix, refreshed every `log_every` steps) when `progress` is
    True, or is None and stderr is a terminal; and one line per eval and per resume on
    stdout. `verbose=False` prints nothing. `metrics.jsonl` is written either way.
    """

    def __init__(
        self,
        model: Model,
        optimizer: optax.GradientTransformation,
        train_data: DataSource,
        *,
        config: TrainerConfig,
        step_config: StepConfig = StepConfig(),
        eval_data: DataSource | None = None,
        schedule: optax.Schedule | None = None,
        record: dict | None = None,
        verbose: bool = True,
        progress: bool | None = None,
    ):
        self.optimizer, self.train_data, self.eval_data = optimizer, train_data, eval_data
        self.config, self.step_config, self.schedule = config, step_config, schedule
        self.record = dict(record or {})
        self.verbose, self.progress = verbose, progress
        self.state = TrainState(model, optimizer.init(eqx.filter(model, eqx.is_inexact_array)), 0)
        self._train_step = make_train_step(optimizer, step_config)
        self._eval_step = make_eval_step(step_config)
        self.out_dir = None if config.out_dir is None else pathlib.Path(config.out_dir)

    @property
    def metrics_path(self) -> pathlib.Path | None:
        return None if self.out_dir is None else self.out_dir / "metrics.jsonl"

    @property
    def checkpoint_dir(self) -> pathlib.Path | None:
        return None if self.out_dir is None else self.out_dir / "checkpoints" / self.config.name

    def _say(self, text: str) -> None:
        if self.verbose:
            tqdm.write(text)

    def _bar(self) -> tqdm:
        """The step bar of `run` (current step of `total_steps`); drawn as the class docstring says."""
        disable = True if not self.verbose else (None if self.progress is None else not self.progress)
        return tqdm(total=self.config.total_steps, initial=self.state.step, desc=self.config.name, unit="step",
                    disable=disable)

    def _log(self, entry: dict) -> None:
        if self.metrics_path is not None:
            self.metrics_path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.metrics_path, "a") as f:
                f.write(json.dumps({"run": self.config.name, **self.record, **entry}) + "\n")

    def save(self) -> pathlib.Path:
        """Checkpoint the current state (model, optimizer state, step)."""
        if self.checkpoint_dir is None:
            raise ValueError("TrainerConfig.out_dir is needed to save checkpoints")
        path = save_checkpoint(
            self.checkpoint_dir,
            (self.state.model, self.state.opt_state),
            step=self.state.step,
            metadata={"model_config": self.state.model.config.to_dict(), "name": self.config.name},
        )
        prune_checkpoints(self.checkpoint_dir, self.config.keep_checkpoints)
        return path

    def restore(self, path: str | pathlib.Path | None = None) -> bool:
        """Load `path` (default: the latest checkpoint of this run, if any); drops metrics logged after it. True if restored.

        The checkpoint's saved model config must equal this trainer's model's (a ValueError
        names each differing field otherwise): settings such as the attention window, the
        soft cap or the embedding scale leave the shapes alone, so the weights would load
        silently into a different model.
        """
        path = path if path is not None else (None if self.checkpoint_dir is None else latest_checkpoint(self.checkpoint_dir))
        if path is None:
            return False
        _check_saved_config(read_meta(path).get("model_config"), self.state.model.config, path)
        (model, opt_state), meta = load_checkpoint(path, (self.state.model, self.state.opt_state))
        self.state = TrainState(model, opt_state, int(meta["step"]))
        if self.metrics_path is not None and self.metrics_path.exists():
            kept = [line for line in self.metrics_path.read_text().splitlines() if _keep(json.loads(line), self.config.name, self.state.step)]
            self.metrics_path.write_text("".join(line + "\n" for line in kept))
        self._say(f"{self.config.name}: resumed from {path} at step {self.state.step}")
        return True

    def evaluate(self) -> dict:
        """Loss and accuracy over `eval_batches` batches of `eval_data` (masked tokens only)."""
        if self.eval_data is None:
            raise ValueError("no eval_data given")
        terms = None
        for i in range(self.config.eval_batches):
            t = self._eval_step(self.state.model, self.eval_data.batch(i))
            terms = t if terms is None else terms + t
        return _summary(terms)

    def step(self) -> dict:
        """One optimizer step on the batch for the current step; returns its (host) metrics."""
        batch = self.train_data.batch(self.state.step)
        model, opt_state, metrics = self._train_step(self.state.model, self.state.opt_state, batch)
        self.state = TrainState(model, opt_state, self.state.step + 1)
        return {"metrics": metrics, "tokens": batch.num_tokens}

    def run(self, until: int | None = None) -> TrainState:
        """Train up to step `until` (default `total_steps`), logging, evaluating and checkpointing on schedule."""
        cfg = self.config
        until = cfg.total_steps if until is None else until
        window_tokens, window_start, pending = 0, time.perf_counter(), None
        with self._bar() as bar:
            while self.state.step < until:
                out = self.step()
                s = self.state.step
                bar.update(1)
                window_tokens += out["tokens"]
                pending = out["metrics"]
                if s % cfg.log_every == 0 or s == until:
                    loss, grad_norm = float(pending.loss), float(pending.grad_norm)
                    elapsed = time.perf_counter() - window_start
                    entry = {
                        "step": s,
                        "split": "train",
                        "loss": loss,
                        "accuracy": int(pending.num_correct) / max(int(pending.num_tokens), 1),
                        "grad_norm": grad_norm,
                        "tokens_per_s": window_tokens / elapsed,
                    }
                    if self.schedule is not None:
                        entry["lr"] = float(self.schedule(s - 1))
                    self._log(entry)
                    bar.set_postfix_str(
                        f"loss {loss:.4f} acc {entry['accuracy']:.3f} {entry['tokens_per_s'] / 1e3:.1f}k tok/s"
                        + (f" lr {entry['lr']:.2e}" if "lr" in entry else "")
                    )
                    window_tokens, window_start = 0, time.perf_counter()
                if self.eval_data is not None and cfg.eval_every and (s % cfg.eval_every == 0 or s == until):
                    result = self.evaluate()
                    self._log({"step": s, "split": "eval", **result})
                    self._say(f"{cfg.name} eval step {s}: loss {result['loss']:.4f} accuracy {result['accuracy']:.3f}")
                    window_start = time.perf_counter()
                if cfg.checkpoint_every and self.checkpoint_dir is not None and (
                    s % cfg.checkpoint_every == 0 or s == until
                ):
                    self.save()
                    window_start = time.perf_counter()
        return self.state


def _check_saved_config(saved: dict | None, config: ModelConfig, path: str | pathlib.Path) -> None:
    """Raise unless `saved` (a checkpoint's `ModelConfig.to_dict()`; None: not recorded) describes `config`."""
    if saved is None:
        return
    current = config.to_dict()

    def same(name: str) -> bool:
        if name not in saved or name not in current:
            return False
        if name == "block_pattern":
            return parse_pattern(saved[name]).layer_kinds == config.layer_kinds
        return saved[name] == current[name]

    def show(values: dict, name: str) -> str:
        return repr(values[name]) if name in values else "absent"

    differing = [name for name in [*current, *(k for k in saved if k not in current)] if not same(name)]
    if differing:
        raise ValueError(
            f"{path}: the checkpoint was saved from a model with another config: "
            + "; ".join(
                f"{name} is {show(saved, name)} in the checkpoint but {show(current, name)} in this model"
                for name in differing
            )
        )


def _keep(entry: dict, name: str, step: int) -> bool:
    """Whether a logged entry survives resuming run `name` at `step` (entries of other runs always do)."""
    return entry.get("run") != name or entry["step"] <= step


def _summary(terms: LossTerms) -> dict:
    count = max(int(terms.num_tokens), 1)
    return {"loss": float(terms.nll_sum) / count, "accuracy": int(terms.num_correct) / count, "num_tokens": int(terms.num_tokens)}
