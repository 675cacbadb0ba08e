"""Turning a question into model input, per model: raw template, few-shot prefix, or chat template."""

from ftscope.config import PromptConfig


def build_prompt(question: str, prompt: PromptConfig, tokenizer=None) -> str:
    body = prompt.template.format(question=question)
    if prompt.style == "raw":
        return body
    if prompt.style == "few_shot":
        return prompt.few_shot_prefix + body
    if tokenizer is None or not getattr(tokenizer, "chat_template", None):
        raise ValueError("prompt.style 'chat' needs a tokenizer with a chat template; use 'raw' or 'few_shot'")
    return tokenizer.apply_chat_template([{"role": "user", "content": body}], tokenize=False,
                                         add_generation_prompt=True)


def build_target(prompt_text: str, answer: str) -> str:
    """The supervised continuation: the answer, separated from a prompt that ends mid-line."""
    return answer if prompt_text[-1:].isspace() else " " + answer
