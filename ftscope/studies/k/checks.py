"""What Study K checks before anything runs: problems in the config and its data (`problems`), warnings
(`notes`), what the plan costs (`costs`), and the prompts it will give a model (`prompt_cases`)."""

from pydantic import ValidationError

from ftscope import datasets, engines
from ftscope.context import PromptCase
from ftscope.costs import calibrate as measure
from ftscope.costs import estimate, human, local_model, rates_of
from ftscope.models import load_tokenizer
from ftscope.prompts import Prompter, prompt_problems
from ftscope.registry import unknown
from ftscope.sources import data_problem
from ftscope.store import Store
from ftscope.studies.k.data import dataset_spec, load_data, the_dataset
from ftscope.studies.k.grid import grid, unfit_cells
from ftscope.studies.k.mastery import phrasings
from ftscope.studydata import StudyData


def problems(cfg) -> list[str]:
    problems = []
    try:
        spec = dataset_spec(cfg)
    except (KeyError, ValueError, FileNotFoundError) as e:
        return [f"data.dataset: {e}"]
    if spec.type != "cbqa":
        return [f"data.dataset: {spec.name} is a {spec.type} dataset; Study K needs a cbqa dataset"]
    problems += [f"data.id_relations: {unknown('relation', r, spec.subsets)} (the relations of {spec.name})"
                 for r in cfg.data.id_relations or [] if r not in spec.subsets]
    short = sorted(r for r in spec.subsets if len(spec.phrasings(r)) < cfg.mastery.n_map)
    if short:
        problems.append(f"mastery.n_map is {cfg.mastery.n_map} but relations {short} of {spec.name} have fewer "
                        f"phrasings (stems x framings); lower n_map or describe more")
    source, reader = datasets.source_of(spec)
    if reader.options is not None:  # generated data: the options it takes are its reader's
        try:
            reader.options(**{k: v for k, v in cfg.data.options.items() if k != "id_relations"})
        except ValidationError as e:
            return problems + [f"data.options.{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors()]
    elif cfg.data.options:
        problems.append(f"data.options: dataset {spec.name} is read from files ({source.format}), it takes no options")
    if reader.takes_path and not (cfg.data.path or (source.model_extra or {}).get("path")):
        problems.append(f"data.path: dataset {spec.name} ({source.format}) is read from a local directory or a "
                        f"dataset id; set data.path")
    if cfg.data.path and (problem := data_problem(cfg.data.path)):
        problems.append(f"data.path: {problem}")
    if problems:
        return problems
    try:  # read the records now: a broken file is named (file, record, field) before any pretraining
        data = load_data(cfg)
    except (ValueError, KeyError, OSError) as e:
        return [f"data: {e}"]
    ds = the_dataset(data)
    n_train = sum(it["split"] == "train" and it["domain"] == "id" for it in ds.items)
    if not ds.split("test") or not n_train:
        problems.append(f"data: {ds.name} has {len(ds.split('test'))} test items and no in-domain training items "
                        f"(in-domain relations: {cfg.data.id_relations or spec.groups.get('id')})")
    elif n_train < min(cfg.grid.sample_counts):
        problems.append(f"data: {n_train} ID training items in all, fewer than every sample count "
                        f"{cfg.grid.sample_counts} (grid.sample_counts): no cell could train; lower them or enlarge "
                        f"the data")
    problems += prompt_problems(cfg.models, ds)
    return problems


def notes(cfg) -> list[str]:
    notes = _stored_unfit(cfg)
    try:
        ds = the_dataset(load_data(cfg))
    except (ValueError, KeyError, OSError):
        return notes
    n_train = sum(it["split"] == "train" and it["domain"] == "id" for it in ds.items)
    if too_many := [n for n in cfg.grid.sample_counts if n > n_train]:
        notes.append(f"warning: sample counts {too_many} exceed the {n_train} ID training items: their cells will "
                     f"be recorded as not run")
    return notes


def costs(cfg, calibrate: bool = False) -> list[str]:
    """Mastery samples, evaluation prompts and training tokens of the plan, with a time estimate for
    mastery (the most expensive step) per model."""
    data = load_data(cfg)
    ds = the_dataset(data)
    m = cfg.mastery
    n_items, n_test = len(ds.items), len(ds.split("test"))
    samples = sum(min(m.n_map, len(ds.spec.phrasings(it["relation"]))) for it in ds.items) * m.n_sample
    cells = grid(cfg)
    trained = [c for c in cells if dict(c.axes)]
    words = sum(len(it["question"].split()) + len(it["answers"][0].split()) + 3 for it in ds.items) / max(1, n_items)
    lines = [f"data: {n_items:,} items ({len(ds.split('train')):,} train, {n_test:,} test) in {ds.name}",
             f"evaluation: {n_test:,} greedy answers and {n_test:,} KL prompts per cell, {human(n_test * len(cells))} "
             f"answers over {len(cells)} cells",
             f"training: about {human(max(cfg.grid.sample_counts) * cfg.train.epochs * words)} tokens in the largest "
             f"cell ({max(cfg.grid.sample_counts)} items x {cfg.train.epochs:g} epochs x ~{words:.0f} words); "
             f"{len(trained)} cells train or edit a model"]
    for model in cfg.models:
        rates, how = rates_of(cfg, model), "generation.samples_per_second"
        if calibrate:
            path = local_model(cfg, model, data)
            if path is None:
                lines.append(f"model {model.name}: cannot calibrate before the model exists here (pretrain it "
                             f"with `ftscope run`, or give a local path)")
            else:
                prompter = Prompter(ds.spec, model.prompt, None if model.prompt.style != "chat" else
                                    load_tokenizer(path, model.trust_remote_code))
                prompts = [prompter.text({**it, "question": q}) for it in ds.items[:20]
                           for q in phrasings(prompter, it, m.n_map)]
                rates = {engines.backend_of(cfg, model): measure(
                    cfg, model, path, prompts, n_sample=m.n_sample, max_new_tokens=m.max_new_tokens,
                    temperature=m.temperature)}
                how = "measured now on this machine"
        lines.append(f"model {model.name}: mastery {n_items:,} items x {m.n_map} phrasings x {m.n_sample} samples "
                     f"= {human(samples)} samples" + (", " + estimate(samples, rates, model.gpus, how) if rates else ""))
    if not all(rates_of(cfg, model) for model in cfg.models) and not calibrate:
        lines.append(estimate(samples, {}, 0, ""))  # how to get one, said once for the study
    return lines


def prompt_cases(cfg, data: StudyData):
    """Each item asked in its relation's longest phrasing with room for the longest answer decoded, and with
    its target (training, KL)."""
    ds = the_dataset(data)
    room = max(cfg.mastery.max_new_tokens, cfg.eval.max_new_tokens)
    longest = {r: max(ds.spec.phrasings(r)[:cfg.mastery.n_map], key=len) for r in ds.spec.subsets}
    for it in ds.items:
        q = longest[it["relation"]].format(s=it["subject"])
        yield PromptCase(f"{it['item_id']} asked as {q!r}", ds, {**it, "question": q}, room=room)
        yield PromptCase(f"{it['item_id']} with its answer", ds, it, cap=cfg.train.max_length)


def _stored_unfit(cfg) -> list[str]:
    """Where mastery is already scored: the cells that will not run, one line per model and level."""
    try:
        mastery = Store(cfg.results_dir).read("mastery").to_pylist()
    except OSError:
        return []
    levels: dict[str, dict[str, int]] = {}
    items = {}
    for r in mastery:
        if any(m.name == r["model"] for m in cfg.models):
            levels.setdefault(r["model"], {})[r["item_id"]] = r["level"]
            items[r["item_id"]] = {"item_id": r["item_id"], "split": r["split"], "domain": r["domain"]}
    unfit = unfit_cells(cfg, grid(cfg), list(items.values()), levels)
    grouped: dict[str, list[str]] = {}
    for cell, why in unfit.items():
        grouped.setdefault(why, []).append(cell.label)
    return [f"warning: {len(labels)} cell(s) will be recorded as {why} (mastery is scored already): "
            f"{', '.join(sorted(labels)[:6])}{' ...' if len(labels) > 6 else ''}" for why, labels in grouped.items()]
