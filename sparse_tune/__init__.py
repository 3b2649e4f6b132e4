"""sparse_tune: fine-tune learned-sparse and dense retrievers; evaluate them in-process or on OpenSearch."""

__version__ = "0.1.0"
