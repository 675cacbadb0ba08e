"""The embedded default model: a word-level tokenizer and a small Llama pretrained on the sandbox
corpus on the CPU, saved as a normal HF checkpoint and cached by a fingerprint of its inputs."""

import logging
import os
import shutil
from pathlib import Path

import torch

from ftscope.damage import move_aside, sweep_temporaries, temporary_name
from ftscope.fingerprint import fingerprint
from ftscope.locks import exclusive
from ftscope.progress import Progress
from ftscope.prompts import dataset_texts
from ftscope.reproducible import kernels, pinned
from ftscope.sandbox.spec import SandboxModel
from ftscope.shards import checkpoint_problem
from ftscope.studydata import StudyData
from ftscope.train.trainer import quiet

log = logging.getLogger(__name__)
SPECIALS = ["<pad>", "<s>", "</s>", "<unk>"]
SOURCE = "ftscope-source.txt"  # what a checkpoint ftscope made was made from: part of its fingerprint


def build_tokenizer(texts):
    """Word-level: words, single punctuation marks and newlines are tokens; spaces are dropped."""
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers, trainers  # deferred: only pretraining builds a tokenizer
    from transformers import PreTrainedTokenizerFast  # deferred: transformers takes seconds to import

    tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(r"[ \t]+"), behavior="removed"),
        pre_tokenizers.Split(Regex(r"\n|\w+|[^\w\s]"), behavior="isolated")])
    tok.train_from_iterator(texts, trainers.WordLevelTrainer(special_tokens=SPECIALS, min_frequency=1))
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<s>",
                                   eos_token="</s>", unk_token="<unk>")


CHAT_TEMPLATE = ("{% for m in messages %}<s>{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
                 "{% if add_generation_prompt %}assistant:{% endif %}")


def build_bpe_tokenizer(texts, vocab_size: int):
    """Byte-level BPE with a chat template: the kind of vocabulary real checkpoints have (the engine tests and
    benchmarks build random Llamas on it; the sandbox models use the word-level one above)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers  # deferred: as above
    from transformers import PreTrainedTokenizerFast  # deferred: transformers takes seconds to import

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<pad>", "<s>", "</s>"],
                                                       initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<s>", eos_token="</s>")
    fast.chat_template = CHAT_TEMPLATE
    return fast


def _vocabulary_texts(data: StudyData):
    """Every string the model may see: the corpus, and whatever a prompt or target of a dataset holds."""
    yield from data.documents
    for ds in data.datasets.values():
        yield from dataset_texts(ds)


def sandbox_model_dir(spec: SandboxModel, data: StudyData, cache_dir: str, threads: int) -> Path:
    """Keyed by the model's spec, its data and how it is computed: the kernels it is pretrained under (a
    `reproducible: true` run never reuses a model pretrained with other kernels: it would print other numbers) and,
    without the pinned kernels, the thread count too (which then changes the weights)."""
    how = kernels() if pinned() else {**kernels(), "threads": threads}
    return Path(cache_dir) / "models" / f"sandbox-{fingerprint([spec.model_dump(), data.fingerprint, how])}"


def pretrain_threads(cfg) -> int:
    """The torch threads of each sandbox model's pretraining: the config's threads (default: the cores) shared among
    the sandbox models, which pretrain side by side."""
    models = sum(m.sandbox is not None for m in cfg.models)
    return max(1, (cfg.threads or len(os.sched_getaffinity(0))) // max(1, models))


def build_sandbox_model(spec: SandboxModel, data: StudyData, cache_dir: str, threads: int) -> str:
    """Pretrain (or reuse) the sandbox base model; returns its checkpoint directory. Runs that need the
    same model at once pretrain it once: the others wait for the first's lock, then reuse it."""
    out = sandbox_model_dir(spec, data, cache_dir, threads)
    out.parent.mkdir(parents=True, exist_ok=True)
    with exclusive(out.with_name(out.name + ".lock")):
        sweep_temporaries(out)  # a killed pretraining's half-written model
        if out.exists() and (problem := checkpoint_problem(out)):
            move_aside(out, f"the cached sandbox model is damaged ({problem})")
        if not out.exists():
            _pretrain_apart(spec, data, out, threads)
    return str(out)


def _pretrain_apart(spec: SandboxModel, data: StudyData, out: Path, threads: int) -> None:
    """Pretrain in a child process with `threads` threads (`python -m ftscope.sandbox.pretrain`). Base models (a
    family's replicas) then pretrain side by side: on a model this small one thread per model does more than two
    threads on one model (the demo's three took 140 s each, one after the other, at 75-130% of 2 cores). With the
    pinned kernels the weights do not depend on the thread count (tests/test_reproducible.py); without them the
    count is part of the model's key (a lone model, as in the Study G demo, gets all the threads). The child
    inherits the kernel pins from the environment, dies with this process, and prints its progress lines on its
    terminal."""
    import pickle  # deferred: only pretraining starts a child
    import subprocess  # deferred: as above
    import sys  # deferred: as above

    from ftscope.train.launcher import die_with_parent  # deferred: as above

    work = temporary_name(out.with_name(out.name + ".job"))
    work.mkdir(parents=True)
    try:
        (work / "job.pkl").write_bytes(pickle.dumps((spec, data, out, threads)))
        child = subprocess.run([sys.executable, "-m", "ftscope.sandbox.pretrain", str(work / "job.pkl")],
                               preexec_fn=die_with_parent, stdout=sys.stderr)
        if child.returncode != 0:
            raise RuntimeError(f"pretraining the sandbox model (seed {spec.seed}) failed (exit {child.returncode}); its "
                               f"output is above")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _child(job: Path) -> None:
    """The child: its threads, its progress lines (one per phase) on the terminal, then the pretraining."""
    import pickle  # deferred: the child's own

    spec, data, out, threads = pickle.loads(job.read_bytes())
    torch.set_num_threads(threads)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s | %(levelname)-7s | %(name)s - %(message)s",
                        datefmt="%H:%M:%S")
    logging.getLogger("ftscope").setLevel(logging.INFO)
    _pretrain(spec, data, out)


def _pretrain(spec: SandboxModel, data: StudyData, out: Path) -> None:
    from transformers import (  # deferred: the model code and trainer stack, seconds to import
        LlamaConfig,
        LlamaForCausalLM,
        Trainer,
        TrainingArguments,
    )

    torch.manual_seed(spec.seed)
    tok = build_tokenizer(_vocabulary_texts(data))
    config = LlamaConfig(vocab_size=len(tok), hidden_size=spec.hidden_size, num_hidden_layers=spec.layers,
                         num_attention_heads=spec.heads, num_key_value_heads=spec.heads,
                         intermediate_size=spec.intermediate_size, max_position_embeddings=spec.max_positions,
                         tie_word_embeddings=True, pad_token_id=tok.pad_token_id,
                         bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    model = LlamaForCausalLM(config)
    blocks = _pack(tok, data.documents, spec.block_size)
    log.info("pretraining sandbox model: %.2fM parameters, %d blocks of %d tokens, %d epochs",
             model.num_parameters() / 1e6, len(blocks), spec.block_size, spec.epochs)
    tmp = temporary_name(out)
    args = TrainingArguments(
        output_dir=str(tmp / "trainer"), num_train_epochs=spec.epochs, per_device_train_batch_size=spec.batch_size,
        learning_rate=spec.lr, lr_scheduler_type="cosine", warmup_steps=0.1, weight_decay=0.01,
        logging_steps=50, save_strategy="no", report_to=[], seed=spec.seed, use_cpu=not torch.cuda.is_available(),
        dataloader_num_workers=0, disable_tqdm=True, log_level="warning")
    trainer = Trainer(model=model, args=args, train_dataset=[{"input_ids": b, "labels": b} for b in blocks])
    quiet(trainer, Progress(f"pretraining the sandbox model (seed {spec.seed})"))
    trainer.train()
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    (tmp / SOURCE).write_text(f"pretrained sandbox model {out.name}: {spec.model_dump_json()}; kernels {kernels()}\n")
    shutil.rmtree(tmp / "trainer", ignore_errors=True)
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)


def _pack(tok, documents: list[str], block_size: int) -> list[torch.Tensor]:
    """Concatenate documents separated by EOS and cut into equal blocks (standard LM packing)."""
    ids: list[int] = []
    for enc in tok(documents, add_special_tokens=False)["input_ids"]:
        ids += enc + [tok.eos_token_id]
    n = len(ids) // block_size
    return list(torch.tensor(ids[: n * block_size]).view(n, block_size))


if __name__ == "__main__":
    import sys

    _child(Path(sys.argv[1]))
