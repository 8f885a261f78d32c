"""Reference inference harness: timm models + dataset -> streamed multi-label metrics -> report.

    from mlmetrics.harness import run_eval
    report, result, namer = run_eval(model="resnet50", checkpoint="resnet50.pth", data="/data/imagenet/val")

``mlmetrics eval`` / ``mlmetrics rescore`` are thin layers over :func:`run_eval_many` and
:func:`rescore`. The harness needs the ``[eval]`` extra (timm, tqdm): ``pip install "mlmetrics[eval]"``.
"""
from .annotations import Annotations, read_annotations, read_real
from .data import EvalDataset, build_dataset, collate_skip, detect_class_subset, resolve_class_subset
from .demo import DEMO_ANNOTATIONS, DEMO_MODELS, demo_checkpoint, demo_data, demo_paths
from .deps import MissingDependency, require
from .engine import EvalResult, ModelSlot, evaluate, evaluate_models, resolve_device
from .model import (CheckpointError, PretrainedUnavailable, create_model, data_config, load_checkpoint,
                    read_checkpoint, remap_state_dict)
from .rescore import rescore
from .run import ModelSpec, parse_model_spec, read_models_file, run_eval, run_eval_many
from .scorer import Records, Scorer, sample_groups, score_logits
from .store import StoreError, open_source, open_store, read_logits_file, write_store
from .targets import read_targets_file, real_index

__all__ = [
    "Annotations", "CheckpointError", "DEMO_ANNOTATIONS", "DEMO_MODELS", "EvalDataset", "EvalResult", "MissingDependency",
    "ModelSlot", "ModelSpec", "PretrainedUnavailable", "Records", "Scorer", "StoreError", "build_dataset",
    "collate_skip", "create_model", "data_config", "demo_checkpoint", "demo_data", "demo_paths",
    "detect_class_subset", "evaluate", "evaluate_models", "load_checkpoint", "open_source", "open_store",
    "parse_model_spec", "read_annotations", "read_checkpoint", "read_logits_file", "read_models_file",
    "read_real", "read_targets_file", "real_index", "remap_state_dict", "require", "rescore",
    "resolve_class_subset", "resolve_device", "run_eval", "run_eval_many", "sample_groups", "score_logits",
    "write_store",
]

