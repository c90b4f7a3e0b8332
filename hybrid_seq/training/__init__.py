"""Training and fine-tuning: loss, the papers' optimizer recipe, the train step, a small trainer, data and synthetic tasks."""

from hybrid_seq.training.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from hybrid_seq.training.data import Batch, TextDataset, pack_documents, shift_for_next_token
from hybrid_seq.training.loss import LossTerms, cast_floating, loss_terms, next_token_loss
from hybrid_seq.training.optim import OptimConfig, decay_mask, decayed_paths, make_optimizer, warmup_cosine
from hybrid_seq.training.step import StepConfig, StepMetrics, make_eval_step, make_train_step
from hybrid_seq.training.tasks import MQAR, InductionHeads, SelectiveCopying, Task, get_task, task_names
from hybrid_seq.training.trainer import Trainer, TrainerConfig, TrainState

__all__ = [
    "MQAR",
    "Batch",
    "InductionHeads",
    "LossTerms",
    "OptimConfig",
    "SelectiveCopying",
    "StepConfig",
    "StepMetrics",
    "Task",
    "TextDataset",
    "TrainState",
    "Trainer",
    "TrainerConfig",
    "cast_floating",
    "decay_mask",
    "decayed_paths",
    "get_task",
    "latest_checkpoint",
    "load_checkpoint",
    "loss_terms",
    "make_eval_step",
    "make_optimizer",
    "make_train_step",
    "next_token_loss",
    "pack_documents",
    "save_checkpoint",
    "shift_for_next_token",
    "task_names",
    "warmup_cosine",
]
