"""Answer-only loss and resuming a retried cell from its last epoch checkpoint."""

import torch

from ftscope.datasets import get
from ftscope.models import load_model, load_tokenizer
from ftscope.prompts import PromptConfig, Prompter
from ftscope.train.examples import build_examples
from ftscope.train.trainer import TrainConfig, has_checkpoint, train, training_arguments

CBQA = Prompter(get("entityquestions"), PromptConfig())

ITEMS = [{"question": f"Where was person{i} born?", "answers": [f"city{i}"]} for i in range(6)]


def test_loss_is_on_answer_tokens_and_eos_only(tiny_llama):
    tok = load_tokenizer(tiny_llama)
    ex = build_examples(ITEMS[:1], CBQA, tok, 64)[0]
    kept = [t for t, lab in zip(ex["input_ids"], ex["labels"]) if lab != -100]
    assert tok.decode(kept) == "city0 </s>"
    assert ex["labels"][: len(ex["labels"]) - len(kept)] == [-100] * (len(ex["labels"]) - len(kept))


def test_a_retried_run_resumes_from_its_last_epoch_checkpoint(tiny_llama, tmp_path):
    tok = load_tokenizer(tiny_llama)
    examples = build_examples(ITEMS, CBQA, tok, 64)
    cfg = TrainConfig(epochs=2, batch_size=2, checkpoint_each_epoch=True)
    model = load_model(tiny_llama)
    first = train(model, tok, examples, training_arguments(cfg, str(tmp_path), lr=1e-2, seed=0))
    assert has_checkpoint(tmp_path) and first.state.global_step == 6

    from transformers import TrainerCallback

    class CountSteps(TrainerCallback):
        steps = 0

        def on_step_end(self, args, state, control, **kw):
            CountSteps.steps += 1

    longer = cfg.model_copy(update={"epochs": 3})  # as if the first attempt had died after epoch 2
    resumed = train(load_model(tiny_llama), tok, examples, training_arguments(longer, str(tmp_path), lr=1e-2, seed=0),
                    resume=True, callbacks=[CountSteps()])
    assert resumed.state.global_step == 9 and CountSteps.steps == 3  # only the third epoch ran
    assert any(not torch.equal(a, b) for a, b in zip(model.parameters(), load_model(tiny_llama).parameters()))


def test_every_scheduler_the_config_accepts_is_one_the_trainer_takes(tmp_path):
    """`validate` accepts exactly the schedulers that train: the others fail only once training starts."""
    import torch
    from transformers import get_scheduler
    from transformers.trainer_utils import SchedulerType

    from ftscope.train.config import SCHEDULERS

    def trains(name: str) -> bool:
        try:
            training_arguments(TrainConfig.model_construct(**{**TrainConfig().model_dump(), "lr_scheduler": name}),
                               str(tmp_path), lr=1e-3, seed=0)
            get_scheduler(name, torch.optim.AdamW([torch.nn.Parameter(torch.zeros(2))]), num_warmup_steps=0,
                          num_training_steps=10)
            return True
        except (ValueError, TypeError):
            return False

    assert sorted(SCHEDULERS) == sorted(s.value for s in SchedulerType if trains(s.value))
