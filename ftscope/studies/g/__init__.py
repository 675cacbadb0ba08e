"""Study G (Yang et al., NAACL 2024): after fine-tuning on one task, how well does a model do on the
same task in-domain, out-of-domain and on other tasks, compared with in-context learning (ICL); and
does fine-tuning with in-context examples (FTICL) generalize better?

A test set is in-domain when it shares the training set's task and domain, out-of-domain when it shares only
the task, cross-task otherwise; the base model's rows (method `icl`) are placed against the training set of
their own task. The recipe, one file a step:
    config.py   its sections: data, grid, eval
    data.py     the datasets: test sets and training sets, their prompt maps, how a test set relates to training
    labels.py   preparation: each base model's tokenizer must tell every classification test set's label
                words apart
    grid.py     the cells: training set x size x method x seed
    cell.py     one cell, top to bottom: the method's model -> every test set x prompt map x shots ->
                parameter difference -> rows
    checks.py   what `validate` says before anything runs
    report.py   tables, README block, figures and the paper's findings, from the store
"""

from ftscope.studies.g import cell, checks, data, grid, labels
from ftscope.studies.g.config import SECTIONS
from ftscope.studies.g.report import REPORT
from ftscope.studies.study import Study, StudyChecks, register

STUDY = register(Study(
    kind="g", title="Study G: generalization", sections=SECTIONS,
    load_data=data.load_data,
    prepare=labels.label_problems,
    grid=grid.grid, cell_config=grid.cell_config, cell_reads=grid.cell_reads,
    run_cell=cell.run_cell,
    checks=StudyChecks(problems=checks.problems, notes=checks.notes, costs=checks.costs,
                       prompt_cases=checks.prompt_cases, unfit=grid.unfit),
    report=REPORT))
