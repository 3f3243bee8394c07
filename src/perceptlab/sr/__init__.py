"""Super-resolution: the benchmark evaluation protocol and training data."""

from perceptlab.sr.data import SRTrainingSet, degrade
from perceptlab.sr.protocol import BenchmarkImage, benchmark_lr, load_benchmark, make_benchmark, sr_metrics

__all__ = ["BenchmarkImage", "SRTrainingSet", "benchmark_lr", "degrade", "load_benchmark", "make_benchmark", "sr_metrics"]
