"""YAML config files below every stage that reads one: bounds, ``extends:``, ``--set``,
and the type checker that turns a section into a stage's settings dataclass. A study's
schema (``experiments.config``) and ``pathnet-fer evaluate``'s dataset definitions both
build on it.
"""
