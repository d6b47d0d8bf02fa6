"""Metrics and evaluation loops (no model code), shared by ``seedtok train bench``, ``llm bench``,
``bench decode``, ``ablate``, ``seedtok demo`` and the web demo:

- :mod:`~seedtok.eval.retrieval`: image-text Recall@k (paper Table 1 protocol);
- :mod:`~seedtok.eval.tokenizer`: retrieval from causal embeddings and from codes, stand-in probes;
- :mod:`~seedtok.eval.codebook`: codebook usage, perplexity, distinct codes per position;
- :mod:`~seedtok.eval.images`: images scored by the exact shapes scene parser;
- :mod:`~seedtok.eval.decode`: reconstruction image -> ids -> image, decoder upper bound, latency;
- :mod:`~seedtok.eval.llm`: captioning (exact scene, BLEU-4, CIDEr), VQA, text-to-image;
- :mod:`~seedtok.eval.probe`: the per-cell linear probe of a frozen image encoder.
"""
