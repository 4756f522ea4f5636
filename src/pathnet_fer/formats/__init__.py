"""Versioned file contracts shared by the stages that write and read them.

``model_file``: the ``pathnet-fer-model`` file (a path, or a chain's heads) that
experiments export and predict loads. A contract lives here, below both, so that neither
stage imports the other.
"""
