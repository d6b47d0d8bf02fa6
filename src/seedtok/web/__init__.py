"""``seedtok serve``: a local web demo of the tokenizer, de-tokenizer and SEED LLM (issue 10).

- :mod:`seedtok.web.bundle`: load the models of a bundle directory once (with untrained
  fallbacks and banners saying so);
- :mod:`seedtok.web.handlers`: the request handlers, plain Python (no Gradio), with upload
  limits, timeouts and user-facing errors;
- :mod:`seedtok.web.render`: the HTML of token strips and codebook-usage maps;
- :mod:`seedtok.web.app`: the Gradio app (the optional ``seedtok[web]`` extra).
"""
