from .build import build_evaluator, EVALUATOR_REGISTRY  # isort:skip

from .evaluator import EvaluatorBase, Classification
