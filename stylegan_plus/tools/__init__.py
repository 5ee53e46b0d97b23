"""Library code behind the top-level command-line tools (`dataset_tool.py`, ...)."""
