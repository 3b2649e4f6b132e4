"""Command line: one module per verb (``add_parser`` + ``run``); ``__main__`` only wires them."""
