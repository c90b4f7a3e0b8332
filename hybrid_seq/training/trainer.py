"""A small training loop: a tqdm progress bar, periodic eval, atomic checkpoints with exact resume, and a JSONL metrics log.

Resume is bit-exact because everything that determines the future is saved or derived:
the model and optimizer state (serialised leaves), the step and the data position (JSON),
and the data, whose batch for step `s` is a pure function of `(seed, s)` (see
`data.DataSource`).

On a mesh (`layout=`, a `hybrid_seq.distributed.Layout`) the model and optimizer state
live sharded, every step runs on the mesh, checkpoints are orbax's sharded ones
(`hybrid_seq.distributed.checkpoint`, restorable onto another mesh), and with several
processes only the first prints and writes `metrics.jsonl`.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import time
from typing import Any

import equinox as eqx
import jax
import optax
from tqdm import tqdm

from hybrid_seq.config import ModelConfig
from hybrid_seq.distributed.layout import Layout, fetch
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
        log_lines: bool = False,
        layout: Layout | None = None,
    ):
        """`log_lines` also prints one line per train log (step, loss, accuracy); `layout` trains on its mesh."""
        self.optimizer, self.train_data, self.eval_data = optimizer, train_data, eval_data
        self.config, self.step_config, self.schedule = config, step_config, schedule
        self.record = dict(record or {})
        self.main = jax.process_index() == 0
        self.verbose, self.progress, self.log_lines = verbose and self.main, progress, log_lines
        self.layout = layout
        if layout is None:
            opt_state = optimizer.init(eqx.filter(model, eqx.is_inexact_array))
        else:
            model = layout.shard_model(model)
            opt_state = layout.init_state(optimizer, model)
        self.state = TrainState(model, opt_state, 0)
        self._train_step = make_train_step(optimizer, step_config, layout=layout)
        self._eval_step = make_eval_step(step_config, layout=layout)
        self.out_dir = None if config.out_dir is None else pathlib.Path(config.out_dir)
        self._sharded: Any = None

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
        if self.metrics_path is not None and self.main:
            self.metrics_path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.metrics_path, "a") as f:
                f.write(json.dumps({"run": self.config.name, **self.record, **entry}) + "\n")

    def data_position(self, step: int) -> dict:
        """Where the data stands after `step` batches: the next batch index and the rows read so far."""
        rows = getattr(self.train_data, "batch_size", None)
        return {"next_batch": step, "rows_seen": None if rows is None else step * rows}

    def _checkpoints(self) -> Any:
        if self._sharded is None:
            from hybrid_seq.distributed.checkpoint import Checkpoints

            self._sharded = Checkpoints(self.checkpoint_dir, keep=self.config.keep_checkpoints)
        return self._sharded

    def save(self) -> pathlib.Path:
        """Checkpoint the current state (model, optimizer state, step, data position)."""
        if self.checkpoint_dir is None:
            raise ValueError("TrainerConfig.out_dir is needed to save checkpoints")
        metadata = {
            "model_config": self.state.model.config.to_dict(),
            "name": self.config.name,
            "data_position": self.data_position(self.state.step),
        }
        if self.layout is not None:
            metadata["mesh"] = dict(self.layout.mesh.shape)
            tree = {"model": self.state.model, "opt_state": self.state.opt_state}
            return self._checkpoints().save(self.state.step, tree, metadata)
        tree = (self.state.model, self.state.opt_state)
        path = save_checkpoint(self.checkpoint_dir, tree, step=self.state.step, metadata=metadata)
        prune_checkpoints(self.checkpoint_dir, self.config.keep_checkpoints)
        return path

    def restore(self, path: str | pathlib.Path | None = None) -> bool:
        """Load `path` (default: the latest checkpoint of this run, if any); drops metrics logged after it. True if restored.

        The checkpoint's saved model config must equal this trainer's model's (a ValueError
        names each differing field otherwise): settings such as the attention window, the
        soft cap or the embedding scale leave the shapes alone, so the weights would load
        silently into a different model.
        """
        if self.layout is not None:
            loaded = self._restore_sharded(path)
            if loaded is None:
                return False
            path, (model, opt_state), meta = loaded
        else:
            path = path if path is not None else (None if self.checkpoint_dir is None else latest_checkpoint(self.checkpoint_dir))
            if path is None:
                return False
            _check_saved_config(read_meta(path).get("model_config"), self.state.model.config, path)
            (model, opt_state), meta = load_checkpoint(path, (self.state.model, self.state.opt_state))
        self._check_data_position(meta, path)
        self.state = TrainState(model, opt_state, int(meta["step"]))
        if self.main and self.metrics_path is not None and self.metrics_path.exists():
            kept = [line for line in self.metrics_path.read_text().splitlines() if _keep(json.loads(line), self.config.name, self.state.step)]
            self.metrics_path.write_text("".join(line + "\n" for line in kept))
        self._say(f"{self.config.name}: resumed from {path} at step {self.state.step}")
        return True

    def _restore_sharded(self, path: str | pathlib.Path | None) -> tuple[pathlib.Path, Any, dict] | None:
        """The newest sharded checkpoint (or the one at `path`, a `<dir>/<step>` folder) read onto this layout."""
        from hybrid_seq.distributed.checkpoint import Checkpoints

        if path is not None:
            path = pathlib.Path(path)
            checkpoints, step = Checkpoints(path.parent, keep=None), int(path.name)
        elif self.checkpoint_dir is None:
            return None
        else:
            checkpoints, step = self._checkpoints(), self._checkpoints().latest_step()
            if step is None:
                return None
        path = checkpoints.path(step)
        _check_saved_config(checkpoints.metadata(step).get("model_config"), self.state.model.config, path)
        like = {"model": self.state.model, "opt_state": self.state.opt_state}
        shardings = {
            "model": self.layout.model_shardings(self.state.model),
            "opt_state": self.layout.state_shardings(self.state.opt_state, self.state.model),
        }
        tree, meta = checkpoints.restore(step, like, shardings)
        return path, (tree["model"], tree["opt_state"]), meta

    def _check_data_position(self, meta: dict, path: str | pathlib.Path) -> None:
        """Raise unless the checkpoint's data position is where this data source stands after its step."""
        saved = meta.get("data_position")
        if saved is None:
            return
        here = self.data_position(int(meta["step"]))
        if saved != here:
            raise ValueError(
                f"{path}: the checkpoint's data position {saved} is not this data source's after step {meta['step']} "
                f"({here}): another batch size or data source"
            )

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
                    pending = fetch(pending)
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
                    if self.log_lines:
                        self._say(f"{cfg.name} step {s}: loss {loss:.6f} accuracy {entry['accuracy']:.3f}")
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
    terms = fetch(terms)
    count = max(int(terms.num_tokens), 1)
    return {"loss": float(terms.nll_sum) / count, "accuracy": int(terms.num_correct) / count, "num_tokens": int(terms.num_tokens)}
