"""Chooses the demo's recipe on validation data only: a plan is pretrained on 90% of the demo's
training corpus and scored on data the demo's held-out numbers never use.

    python benchmarks/demo_recipe.py --plan=bert_pretrain/plans/demo.toml --work_dir=/tmp/recipe/demo
    python benchmarks/demo_recipe.py --plan=my.toml --work_dir=/tmp/recipe/my --seeds=1,2,3

Validation MLM: every tenth document of builtin:python-docstrings (by position) is held out of
pretraining and made into the phases' eval data; the plan trains on the other nine tenths.
Validation task: the docstring task's *training* examples only, each package's last quarter (the
texts come in sorted module order, so mostly whole modules) scored after fine-tuning on the first
three quarters (a text also in the first three quarters is dropped), with the demo's fine-tuning
recipe; the pretrained encoder and the random one, one row per seed. The task's held-out modules,
builtin:python-topics and the demo's own model are never read. Prints one result line (JSON) with
the time of each stage; docs/demo.md records the runs.
"""

import json
import os
import sys
import time

from absl import app, flags

STARTED = time.perf_counter()

flags.DEFINE_string("plan", "bert_pretrain/plans/demo.toml", "Plan to try (its downstream task is not run).")
flags.DEFINE_string("work_dir", "", "Where the split, the data and the model go (data is reused).")
flags.DEFINE_string("data_dir", "", "Phase data of the split (default <work_dir>/data); share it between "
                    "plans with the same data settings to skip making it again.")
flags.DEFINE_integer("data_vocab_size", 8000, "WordPiece vocab size when the data is made.")
flags.DEFINE_list("seeds", ["12345"], "Fine-tuning seeds (the same for both encoders).")
flags.DEFINE_string("precision", "", "Override the plan's precision (empty: the plan's).")
FLAGS = flags.FLAGS

VALIDATION_EVERY = 10      # document i of the training corpus is validation when i % 10 == 9
TASK_VALIDATION_SHARE = 4  # the last quarter of each package's training texts


def write_corpus_split(directory: str) -> tuple[str, str]:
    """The demo's training corpus as two google-research text files (one sentence per line)."""
    from bert_pretrain.data import builtin_corpus
    paths = os.path.join(directory, "corpus-train.txt"), os.path.join(directory, "corpus-validation.txt")
    if all(os.path.exists(p) for p in paths):
        return paths
    documents = builtin_corpus.load("python-docstrings")
    os.makedirs(directory, exist_ok=True)
    for path, keep in zip(paths, (lambda i: i % VALIDATION_EVERY != VALIDATION_EVERY - 1,
                                  lambda i: i % VALIDATION_EVERY == VALIDATION_EVERY - 1)):
        with open(path + ".tmp", "w", encoding="utf-8") as handle:
            for index, document in enumerate(documents):
                if keep(index):
                    handle.write("\n".join(s.replace("\n", " ") for s in document) + "\n\n")
        os.replace(path + ".tmp", path)
    return paths


def write_task_split(directory: str) -> tuple[str, str]:
    """The docstring task's training texts as two TSV files (text, package): fit and validation."""
    from bert_pretrain.finetune import docstrings
    paths = os.path.join(directory, "task-fit.tsv"), os.path.join(directory, "task-validation.tsv")
    by_package = docstrings._texts_by_package("train")   # pylint: disable=protected-access
    rows = {"fit": [], "validation": []}
    for package, texts in by_package.items():
        cut = len(texts) - len(texts) // TASK_VALIDATION_SHARE
        fit, seen = texts[:cut], set(texts[:cut])
        validation = [t for t in texts[cut:] if t not in seen]
        for split, chosen, cap in (("fit", fit, 90), ("validation", validation, 30)):
            step = max(1, len(chosen) / cap)
            rows[split] += [(chosen[int(i * step)], package) for i in range(min(len(chosen), cap))]
    for path, split in zip(paths, ("fit", "validation")):
        with open(path + ".tmp", "w", encoding="utf-8") as handle:
            for text, package in rows[split]:
                handle.write(text.replace("\t", " ") + "\t" + package + "\n")
        os.replace(path + ".tmp", path)
    return paths


def main(argv):
    del argv
    import dataclasses
    import tomllib

    work_dir = FLAGS.work_dir or sys.exit("--work_dir is required")
    split_dir = os.path.join(os.path.dirname(os.path.abspath(work_dir)), "split")
    corpus, eval_corpus = write_corpus_split(split_dir)
    fit_file, validation_file = write_task_split(split_dir)
    with open(FLAGS.plan, "rb") as handle:
        raw = tomllib.load(handle)
    raw.pop("downstream", None)
    if FLAGS.precision:
        raw.setdefault("engine", {})["precision"] = FLAGS.precision
    os.makedirs(work_dir, exist_ok=True)
    plan_path = os.path.join(work_dir, "plan.toml")
    with open(plan_path, "w", encoding="utf-8") as handle:
        handle.write(_toml(raw))

    from bert_pretrain import run as run_lib
    from bert_pretrain import strategy as strategy_lib
    from bert_pretrain.finetune import encoder, recipes, tasks

    imported = time.perf_counter()
    data_dir = FLAGS.data_dir or os.path.join(work_dir, "data")
    model_dir = os.path.join(work_dir, "model")
    stamps, made = [], []

    def log(line):
        stamps.append((time.perf_counter(), line))
        print(line, flush=True)

    def make_strategy():
        made.append(strategy_lib.make_strategy())
        return made[0]

    started = time.perf_counter()
    results = run_lib.run(run_lib.RunOptions(plan=plan_path, data_dir=data_dir, model_dir=model_dir,
                                             corpus=corpus, eval_corpus=eval_corpus,
                                             data_vocab_size=FLAGS.data_vocab_size), make_strategy, log)
    names = [phase["name"] for phase in raw["phases"]]
    marks = [started] + [next((t for t, line in stamps if test(line)), None) for test in (
        lambda line: "global batch" in line,                              # data made, training starts
        *[lambda line, n=n: line.startswith(f"{n}: starting from") for n in names[1:]],
        lambda line: line.startswith("plot:"))]                           # trained and evaluated
    stages = zip(["data"] + names, marks, marks[1:])   # a phase done by an earlier run has no time
    row = {"plan": raw, "import_s": round(imported - STARTED, 1),
           "stage_s": {name: round(b - a, 1) for name, a, b in stages if a and b},
           "validation_mlm": [round(r.get("eval_mlm_accuracy", float("nan")), 4) for r in results],
           "final_on_phase1_validation": round(results[-1].get(f"eval_{names[0]}_mlm_accuracy",
                                                               results[-1].get("eval_mlm_accuracy")), 4)}
    settings = recipes.recipe("docstrings")
    strategy = made[0]
    pretrained = encoder.from_directory(os.path.join(model_dir, names[-1]), dropout=0.1)
    scores = {"pretrained": [], "random": []}
    started = time.perf_counter()
    for seed in map(int, FLAGS.seeds):
        config = tasks.recipe_config("docstrings", seed)
        for name, source in (("pretrained", pretrained), ("random", dataclasses.replace(pretrained, checkpoint=None))):
            options = tasks.FinetuneOptions(
                task="classification", output_dir=os.path.join(work_dir, f"task-{name}-{seed}"),
                pretrained=source, config=config, max_seq_length=settings["max_seq_length"],
                train_file=fit_file, eval_file=validation_file, tsv_layout="text")
            scores[name].append(round(tasks.finetune(options, strategy, log)["scores"]["accuracy"], 1))
    row |= {"seeds": list(map(int, FLAGS.seeds)), "validation_task": scores,
            "finetune_s": round(time.perf_counter() - started, 1)}
    print("RESULT " + json.dumps(row, sort_keys=True), flush=True)


def _toml(raw: dict) -> str:
    """The few TOML shapes a plan uses: scalars, one [engine] table, [[phases]] tables."""
    def value(v):
        return json.dumps(v) if isinstance(v, str) else str(v).lower() if isinstance(v, bool) else repr(v)
    lines = [f"{k} = {value(v)}" for k, v in raw.items() if not isinstance(v, (dict, list))]
    for phase in raw["phases"]:
        lines += ["", "[[phases]]"] + [f"{k} = {value(v)}" for k, v in phase.items()]
    if raw.get("engine"):
        lines += ["", "[engine]"] + [f"{k} = {value(v)}" for k, v in raw["engine"].items()]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    app.run(main)
