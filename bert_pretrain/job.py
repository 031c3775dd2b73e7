"""One training job, built one way: the data, model and settings of one model_dir, checked
against each other before anything is built, then the Trainer.

`bert-pretrain train` makes one Job from its flags; `bert-pretrain run` makes one per phase of a
plan (`phases`). Both call `build_trainer`, so a check added here holds for both.
"""

import dataclasses

from bert_pretrain import datasets, vocab_record
from bert_pretrain.checkpoint_formats import google_research
from bert_pretrain.config import ModelConfig, TrainConfig
from bert_pretrain.trainer import Trainer


@dataclasses.dataclass(frozen=True)
class Job:
    model: ModelConfig
    training: TrainConfig
    model_dir: str
    train_data: datasets.DataSpec
    eval_data: datasets.DataSpec | None = None
    data_flag: str = "train_files"   # the flags a problem with the data is reported against
    eval_flag: str = "eval_files"
    init_from: str = ""              # a google-research checkpoint directory a fresh model_dir starts from


def data_from_globs(patterns: str, max_seq_length: int, max_predictions_per_seq: int,
                    flag: str) -> datasets.DataSpec:
    """The TFRecords matching comma-separated globs (an error naming `flag` if one matches
    nothing), with what their metadata.json says."""
    files = datasets.resolve_files(patterns, flag)
    return datasets.data_spec(files, max_seq_length, max_predictions_per_seq)


def build_trainer(job: Job, strategy) -> Trainer:
    """Checks the data against the model (metadata, then a scan of a sample), then builds the
    Trainer, which checks the settings and the model_dir, and keeps the data's vocab beside the
    checkpoints for fine-tuning (`vocab_record`). With `init_from`, a model_dir without checkpoints
    starts from that google-research checkpoint (its weights and vocab); one with checkpoints resumes."""
    datasets.check_data(job.train_data, job.model.vocab_size, job.data_flag)
    datasets.check_masking(job.train_data, job.training.masking, job.data_flag)
    if job.eval_data is not None:
        datasets.check_data(job.eval_data, job.model.vocab_size, job.eval_flag)
        datasets.check_masking(job.eval_data, job.training.masking, job.eval_flag, held_out=True)
    if job.init_from:
        google_research.check_sizes(google_research.model_config(job.init_from, job.model.dropout),
                                    job.model.to_dict())
        google_research.check_data(job.init_from, job.train_data.metadata, job.data_flag)
    trainer = Trainer(job.model, job.training, strategy, job.model_dir)
    fresh = not trainer.manager.latest_checkpoint
    if trainer.write_dir == job.model_dir:   # the chief
        if job.init_from and vocab_record.load(job.model_dir) is None:
            vocab_record.save_record(job.model_dir, google_research.vocab(job.init_from))
        vocab_record.save(job.model_dir, job.train_data.metadata, job.data_flag)
    if job.init_from and fresh:
        google_research.load_into(trainer.model, job.init_from)
    return trainer
