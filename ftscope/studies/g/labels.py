"""Study G's preparation of each base model: with its tokenizer, the label words of every classification test
set must differ in their first token (a label is scored by that token); a model where they do not has its cells
recorded as not run, with why."""

from ftscope.evaluate import LabelError, label_token_ids
from ftscope.models import load_tokenizer
from ftscope.prompts import Prompter
from ftscope.studydata import StudyData


def label_problems(cfg, model, base_path: str, data: StudyData, store) -> list[str]:
    """Before any cell: with this model's tokenizer, the label words of every classification test set
    must differ in their first token. Returns the problems (none: an empty list)."""
    tok, problems = load_tokenizer(base_path, model.trust_remote_code), []
    for name in cfg.data.test:
        ds = data.dataset(name)
        if ds.spec.type == "classification" and ds.split("test"):
            for pm in cfg.eval.prompt_maps:
                try:
                    label_token_ids(tok, Prompter(ds.spec, model.prompt, tok), ds.split("test")[0], pm)
                except LabelError as e:
                    problems.append(f"model {model.name}: {e}")
    return sorted(set(problems))


