import os

import pytest

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory):
    """A randomly initialised Llama (~50k parameters) with a word-level tokenizer, saved to disk."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from ftscope.sandbox_model import build_tokenizer

    texts = ["Question: Where was Abo Kel born?\nAnswer: Varo", "Quick question: Who founded Zib Corp?",
             "Answer briefly: Which country is Tam Tower located in?"] + [f"city{i} person{i}" for i in range(50)]
    tok = build_tokenizer(texts)
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                      num_key_value_heads=2, intermediate_size=64, max_position_embeddings=128,
                      pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, bos_token_id=tok.bos_token_id)
    model = LlamaForCausalLM(cfg)
    path = tmp_path_factory.mktemp("tiny_llama")
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)
