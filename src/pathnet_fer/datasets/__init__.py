"""Datasets as the pipeline sees them, below the stages that train on or score them.

``spec``: a ``datasets:`` entry (``DatasetSpec``) and the catalog loading needs
(``DatasetCatalog``); ``loading``: a dataset's face crops as model inputs
(``load_dataset``); ``folds``: subject-independent folds; ``one_dataset``: the
catalog ``pathnet-fer evaluate`` crops a dataset with.
"""
