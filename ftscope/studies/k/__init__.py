"""Study K (Ye et al., EMNLP 2025): how the amount of SFT data and how well the base model already knows
it (mastery) change closed-book QA accuracy, token-level KL to the base model and parameters.

The recipe, one file a step:
    config.py   its sections: data, mastery, grid, eval, kl, params
    data.py     the facts: in-domain relations trained and tested, the others tested only
    mastery.py  preparation: mastery R of every item under each base model (21 phrasings x 10 samples)
    grid.py     the cells: mastery level 0..4 or mixed x sample count x method x seed
    cell.py     one cell, top to bottom: the method's model -> KL -> accuracy per domain and test mastery
                level -> parameter change -> rows
    checks.py   what `validate` says before anything runs
    report.py   tables, README block, figures and the paper's findings, from the store
"""

from ftscope.studies.k import cell, checks, data, grid, mastery
from ftscope.studies.k.config import SECTIONS
from ftscope.studies.k.report import REPORT
from ftscope.studies.study import Study, StudyChecks, register

STUDY = register(Study(
    kind="k", title="Study K: knowledge", sections=SECTIONS,
    load_data=data.load_data,
    prepare=mastery.prepare, prepares_on_gpus=True,  # mastery samples 21 x 10 answers per item
    grid=grid.grid, cell_config=grid.cell_config,
    run_cell=cell.run_cell,
    checks=StudyChecks(problems=checks.problems, notes=checks.notes, costs=checks.costs,
                       prompt_cases=checks.prompt_cases, unfit=grid.unfit),
    report=REPORT))
