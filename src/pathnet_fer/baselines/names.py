"""Names of the CNN baselines, importable without torch (the CLI lists them at start-up)."""

CNN_MODELS: tuple[str, ...] = (
    "resnet18",
    "resnet50",
    "resnet101",
    "resnet152",
    "mobilenet_v2",
    "mobilenet_v3_small",
    "mobilenet_v3_large",
    "vgg19",
    "inception_v3",
    "efficientnet_lite0",
    "cifar",
)
