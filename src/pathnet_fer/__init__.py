"""pathnet-fer: PathNet transfer learning for facial emotion recognition on video.

Pipeline stages, one sub-package each: ``data`` (dataset adapters) -> ``faces``
(frames, Viola-Jones faces, cached crops) -> ``pathnet`` (super-network) ->
``evolution`` (tournament GA, transfer) -> ``experiments`` (protocol, metrics,
reports) -> ``baselines`` (fine-tuned CNNs, MLP, progressive nets) -> ``predict``.
"""

__version__ = "0.1.0"
