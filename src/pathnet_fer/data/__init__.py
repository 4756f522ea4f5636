"""Dataset adapters: a folder on disk -> a table of labelled samples."""
