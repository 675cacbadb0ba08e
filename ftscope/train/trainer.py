"""One training path for every method that trains (full SFT, LoRA, FTICL): the transformers Trainer
on prompt/target examples. Under torchrun/deepspeed the same code runs on every rank.
"""

import logging
from functools import cache
from pathlib import Path

import torch

from ftscope import prefix
from ftscope.faults import kill_point
from ftscope.progress import Progress
from ftscope.train.config import TrainConfig

log = logging.getLogger("ftscope.train")


def training_arguments(cfg: TrainConfig, out_dir: str, *, lr: float, seed: int, deepspeed: dict | None = None):
    """Build these before loading the model: with a ZeRO-3 config they make from_pretrained partition
    the weights across ranks as they load, instead of materialising the whole model on every rank."""
    from transformers import TrainingArguments  # deferred: the trainer stack, seconds to import

    on_cpu = not torch.cuda.is_available()
    return TrainingArguments(
        output_dir=out_dir, num_train_epochs=cfg.epochs, per_device_train_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum, learning_rate=lr, lr_scheduler_type=cfg.lr_scheduler,
        warmup_steps=cfg.warmup_ratio, weight_decay=cfg.weight_decay, seed=seed, data_seed=seed,
        logging_steps=10, report_to=[], use_cpu=on_cpu and deepspeed is None, dataloader_num_workers=0,
        save_strategy="epoch" if cfg.checkpoint_each_epoch else "no", save_total_limit=1,
        bf16=cfg.bf16 and not on_cpu, deepspeed=deepspeed, disable_tqdm=True, log_level="warning",
        remove_unused_columns=False)  # the examples' `shared` reaches the collator


def train(model, tokenizer, examples: list[dict], args, resume: bool = False, callbacks: list | None = None,
          progress: Progress | None = None):
    """Fit `model` on `examples` in place; returns the Trainer (its model may be DeepSpeed-wrapped).
    `resume`: continue from the newest checkpoint in args.output_dir (a retried cell). `progress` hears the
    steps, epochs and loss."""
    from transformers import DataCollatorForSeq2Seq  # deferred: as above

    tokenizer.padding_side = "right"
    collator = prefix.Collator(DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=-100))
    trainer = _trainer()(model=model, args=args, train_dataset=examples, data_collator=collator, callbacks=callbacks)
    quiet(trainer, progress or Progress("training"))
    trainer.train(resume_from_checkpoint=True if resume else None)
    return trainer


def quiet(trainer, progress: Progress) -> None:
    """No progress bar or printed loss dict per step: the steps go to `progress` (one log line per phase)."""
    from transformers import PrinterCallback, ProgressCallback  # deferred: the trainer stack, seconds to import

    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    trainer.add_callback(_steps_callback()(progress))


@cache
def _trainer():
    from transformers import Trainer  # deferred: the trainer stack, seconds to import

    class SharedPrefixTrainer(Trainer):
        """The Trainer, for batches whose rows share a prefix (`prefix_ids`, ftscope/prefix.py): computed once."""

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            if "prefix_ids" in inputs:
                inputs = prefix.continued(model, inputs)
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)

    return SharedPrefixTrainer


@cache
def _steps_callback():
    from transformers import TrainerCallback  # deferred: the trainer stack, seconds to import

    class Steps(TrainerCallback):
        """Training steps, epoch and loss to a Progress."""

        def __init__(self, progress: Progress):
            self.progress, self.loss = progress, None

        def on_train_begin(self, args, state, control, **kw):
            self.progress.phase("train", total=state.max_steps, unit="steps")

        def on_log(self, args, state, control, logs=None, **kw):
            if logs and "loss" in logs:
                self.loss = float(logs["loss"])
            if logs and "train_runtime" in logs:
                self.progress.update(state.global_step, samples_per_s=float(logs.get("train_samples_per_second", 0)),
                                     loss=float(logs.get("train_loss", float("nan"))))

        def on_step_end(self, args, state, control, **kw):
            self.progress.update(state.global_step, epoch=round(state.epoch or 0, 2),
                                 **({"loss": self.loss} if self.loss is not None else {}))

        def on_epoch_end(self, args, state, control, **kw):
            kill_point("train")

        def on_train_end(self, args, state, control, **kw):
            self.progress.end_phase()

    return Steps


def has_checkpoint(trainer_dir: Path) -> bool:
    return any(trainer_dir.glob("checkpoint-*"))
