"""One training path for every method: full SFT, or LoRA when the method asks for adapters.

Runs with the transformers Trainer; under torchrun/deepspeed the same code runs on every rank.
"""

from pathlib import Path

import torch

from ftscope.config import LoraConfig, TrainConfig


def wrap_lora(model, lora: LoraConfig):
    import peft

    cfg = peft.LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                          target_modules=lora.target_modules, task_type="CAUSAL_LM")
    return peft.get_peft_model(model, cfg)


def training_arguments(cfg: TrainConfig, out_dir: str, *, lr: float, seed: int, deepspeed: dict | None = None):
    """Build these before loading the model: with a ZeRO-3 config they make from_pretrained partition
    the weights across ranks as they load, instead of materialising the whole model on every rank."""
    from transformers import TrainingArguments

    on_cpu = not torch.cuda.is_available()
    return TrainingArguments(
        output_dir=out_dir, num_train_epochs=cfg.epochs, per_device_train_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum, learning_rate=lr, lr_scheduler_type=cfg.lr_scheduler,
        warmup_steps=cfg.warmup_ratio, weight_decay=cfg.weight_decay, seed=seed, data_seed=seed,
        logging_steps=10, report_to=[], use_cpu=on_cpu and deepspeed is None, dataloader_num_workers=0,
        save_strategy="epoch" if cfg.checkpoint_each_epoch else "no", save_total_limit=1,
        bf16=cfg.bf16 and not on_cpu, deepspeed=deepspeed, disable_tqdm=True)


def train(model, tokenizer, examples: list[dict], args, resume: bool = False, callbacks: list | None = None):
    """Fit `model` on `examples` in place; returns the Trainer (its model may be DeepSpeed-wrapped).
    `resume`: continue from the newest checkpoint in args.output_dir (a retried cell)."""
    from transformers import DataCollatorForSeq2Seq, Trainer

    tokenizer.padding_side = "right"
    collator = DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=-100)
    trainer = Trainer(model=model, args=args, train_dataset=examples, data_collator=collator, callbacks=callbacks)
    trainer.train(resume_from_checkpoint=True if resume else None)
    return trainer


def has_checkpoint(trainer_dir: Path) -> bool:
    return any(trainer_dir.glob("checkpoint-*"))
