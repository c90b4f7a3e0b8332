"""The built-in experiment: train small models of several block patterns on a synthetic task at equal parameter budgets.

Default: multi-query associative recall, comparing pure RG-LRU recurrence (`R:3`), Griffin
(`RRA:3`), pure local attention (`A:3`), pure Mamba-2 (`M:3`) and a Mamba-2 + attention
hybrid (`MMA:3`). Letters: `R` RG-LRU, `A` local multi-query attention, `M` Mamba-2, `G`
global grouped-query attention with RoPE, each sized from the experiment's width and
followed by a gated MLP; `ExperimentConfig.kinds` binds more letters to any registered
kind. Budgets are equalised by giving each pattern the MLP width that brings its parameter
count closest to the first hybrid pattern's (the mixers differ in size; the recurrent
states and the attention window do not change). Writes `metrics.jsonl`, `summary.json` and
`accuracy.png` into `out`.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import time
from typing import Any

import jax

from hybrid_seq.architecture import HybridConfig
from hybrid_seq.blocks import AttentionConfig, GatedMLPConfig, LocalAttentionConfig, Mamba2Config, RecurrentConfig
from hybrid_seq.distributed.layout import Layout
from hybrid_seq.kinds import KindConfig
from hybrid_seq.model import Model
from hybrid_seq.params import param_count
from hybrid_seq.training.optim import OptimConfig, make_optimizer
from hybrid_seq.training.step import StepConfig
from hybrid_seq.training.tasks import get_task
from hybrid_seq.training.trainer import Trainer, TrainerConfig


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
    """Task, model family and budget of the pattern comparison (defaults: the `hybrid-seq train` main job)."""

    task: str = "mqar"
    patterns: tuple[str, ...] = ("R:3", "RRA:3", "A:3", "M:3", "MMA:3")
    kinds: tuple[tuple[str, KindConfig], ...] = ()
    width: int = 32
    num_heads: int = 2
    mlp_expansion: int = 2
    vocab_size: int = 64
    seq_len: int = 64
    num_pairs: int = 12
    attention_window: int | None = None
    steps: int = 800
    batch_size: int = 32
    peak_lr: float = 5e-3
    warmup_steps: int = 50
    eval_every: int = 50
    eval_batch_size: int = 256
    seed: int = 0
    out: str = "runs/experiment"

    def make_task(self, *, seed: int, batch_size: int):
        fields = dict(vocab_size=self.vocab_size, seq_len=self.seq_len, batch_size=batch_size, seed=seed)
        if self.task == "mqar":
            fields["num_pairs"] = self.num_pairs
        return get_task(self.task, **fields)


def letter_kinds(cfg: ExperimentConfig) -> dict[str, KindConfig]:
    """The kinds the experiment's letters name (see the module docstring), and `cfg.kinds`."""
    head_dim = min(16, cfg.width)
    return {
        "R": RecurrentConfig(num_heads=cfg.num_heads),
        "A": LocalAttentionConfig(num_heads=cfg.num_heads, window_size=cfg.attention_window or cfg.seq_len),
        "M": Mamba2Config(num_heads=max(1, 2 * cfg.width // head_dim), head_dim=head_dim, state_size=16, n_groups=1),
        "G": AttentionConfig(num_heads=cfg.num_heads, num_kv_heads=1),
        **dict(cfg.kinds),
    }


def _config(cfg: ExperimentConfig, pattern: str, mlp_width: int) -> HybridConfig:
    kinds = letter_kinds(cfg)
    return HybridConfig(
        vocab_size=cfg.vocab_size,
        width=cfg.width,
        pattern=pattern,
        kinds={letter: kinds[letter] for letter in _letters(pattern, kinds)},
        channel=GatedMLPConfig(expanded_width=mlp_width),
    )


def _letters(pattern: str, kinds: dict[str, Any]) -> list[str]:
    letters = sorted({c for c in pattern.partition(":")[0] if c not in " ,"})
    unknown = [c for c in letters if c not in kinds]
    if unknown:
        raise ValueError(
            f"pattern {pattern!r}: letters {unknown} are not bound (built in: R, A, M, G; bind more with kinds=)"
        )
    return letters


def matched_configs(cfg: ExperimentConfig) -> dict[str, HybridConfig]:
    """One config per pattern, MLP width chosen so total parameters match the reference pattern's as closely as possible.

    The reference is the first pattern with more than one kind of layer (else the first).
    """
    base = cfg.mlp_expansion * cfg.width
    hybrid = [p for p in cfg.patterns if len(set(_config(cfg, p, base).layer_kinds)) > 1]
    reference = hybrid[0] if hybrid else cfg.patterns[0]
    target = param_count(_config(cfg, reference, base)).total
    configs = {}
    for pattern in cfg.patterns:
        # The count is affine in the MLP width (three E-sized projections per layer): solve for E, then round.
        at_base = param_count(_config(cfg, pattern, base)).total
        slope = param_count(_config(cfg, pattern, base + 1)).total - at_base
        configs[pattern] = _config(cfg, pattern, max(1, base + round((target - at_base) / slope)))
    return configs


def run_name(pattern: str) -> str:
    """A file-name-safe run name for a pattern (`RRA:3` -> `RRA-3`)."""
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in pattern)


def run_experiment(
    cfg: ExperimentConfig, *, verbose: bool = True, progress: bool | None = None, layout: Layout | None = None
) -> dict:
    """Train every pattern; write metrics, summary and plot into `cfg.out`; return the summary.

    With `verbose`, prints each pattern's size, its eval lines and the final summary table,
    and shows each pattern's tqdm step bar (`progress`, see `Trainer`). With a `layout`
    every pattern trains on its mesh; with several processes only the first writes and prints.
    """
    main = jax.process_index() == 0
    verbose = verbose and main
    out = pathlib.Path(cfg.out)
    if main:
        out.mkdir(parents=True, exist_ok=True)
        (out / "metrics.jsonl").unlink(missing_ok=True)
    configs = matched_configs(cfg)
    train_task = cfg.make_task(seed=cfg.seed, batch_size=cfg.batch_size)
    eval_task = cfg.make_task(seed=cfg.seed + 1_000_003, batch_size=cfg.eval_batch_size)
    optim = OptimConfig(peak_lr=cfg.peak_lr, warmup_steps=cfg.warmup_steps, total_steps=cfg.steps)
    results = {}
    for pattern, model_config in configs.items():
        counts = param_count(model_config)
        mlp_width = model_config.channel.expanded_width
        if verbose:
            print(f"== {pattern}: {counts.total:,} parameters (MLP width {mlp_width})", flush=True)
        model = Model(model_config, key=jax.random.PRNGKey(cfg.seed))
        trainer = Trainer(
            model,
            make_optimizer(optim),
            train_task,
            config=TrainerConfig(
                total_steps=cfg.steps,
                log_every=max(cfg.eval_every, 1),
                eval_every=cfg.eval_every,
                out_dir=str(out),
                name=run_name(pattern),
            ),
            step_config=StepConfig(),
            eval_data=eval_task,
            schedule=optim.schedule(),
            record={"pattern": pattern},
            verbose=verbose,
            progress=progress,
            layout=layout,
        )
        start = time.perf_counter()
        trainer.run()
        results[pattern] = {
            "params": counts.total,
            "non_embedding_params": counts.non_embedding,
            "mlp_width": mlp_width,
            "wall_s": time.perf_counter() - start,
        }
    if not main:
        return {"results": results}
    curves = accuracy_curves(out / "metrics.jsonl")
    for pattern in results:
        results[pattern]["accuracy"] = curves[pattern]
        results[pattern]["final_accuracy"] = curves[pattern][-1][1] if curves[pattern] else None
    summary = {"config": {**dataclasses.asdict(cfg), "kinds": {k: v.to_dict() for k, v in cfg.kinds}}, "results": results}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    plot_accuracy(curves, out / "accuracy.png", title=_title(cfg))
    if verbose:
        print(format_summary(summary), flush=True)
    return summary


def _title(cfg: ExperimentConfig) -> str:
    detail = f", {cfg.num_pairs} pairs" if cfg.task == "mqar" else ""
    return f"{cfg.task}: T={cfg.seq_len}{detail}, width {cfg.width}"


def accuracy_curves(metrics_path: str | pathlib.Path) -> dict[str, list[tuple[int, float]]]:
    """Eval accuracy vs step per pattern, from a metrics JSONL file."""
    curves: dict[str, list[tuple[int, float]]] = {}
    for line in pathlib.Path(metrics_path).read_text().splitlines():
        entry = json.loads(line)
        if entry.get("split") == "eval":
            curves.setdefault(entry["pattern"], []).append((entry["step"], entry["accuracy"]))
    return curves


def plot_accuracy(curves: dict[str, list[tuple[int, float]]], path: str | pathlib.Path, *, title: str) -> None:
    """Write a PNG of accuracy vs step, one line per pattern (matplotlib, Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for pattern, points in curves.items():
        ax.plot([s for s, _ in points], [a for _, a in points], marker="o", markersize=3, label=pattern)
    ax.set_xlabel("step")
    ax.set_ylabel("eval accuracy")
    ax.set_ylim(0, 1)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def format_summary(summary: dict) -> str:
    """A plain-text table: accuracy per pattern at each eval step, then parameters and wall time."""
    results = summary["results"]
    patterns = list(results)
    steps = sorted({s for r in results.values() for s, _ in r["accuracy"]})
    width = max(8, *(len(p) for p in patterns))
    lines = ["accuracy vs step", "step".rjust(6) + "".join(p.rjust(width + 2) for p in patterns)]
    for step in steps:
        row = [dict(results[p]["accuracy"]).get(step) for p in patterns]
        lines.append(str(step).rjust(6) + "".join(("-" if a is None else f"{a:.3f}").rjust(width + 2) for a in row))
    lines.append("params".rjust(6) + "".join(f"{results[p]['params']:,}".rjust(width + 2) for p in patterns))
    lines.append("wall s".rjust(6) + "".join(f"{results[p]['wall_s']:.0f}".rjust(width + 2) for p in patterns))
    return "\n".join(lines)
