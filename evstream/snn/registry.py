"""The model registries, importing no model (as timm's ``_registry``): families register themselves by
decorator where they are defined, conversion modes (ANN -> SNN runners) likewise.

    @register_arch("mst")
    class MST(SpikingModel): ...

    @register_conversion("ecmt")
    class ECMTRunner(SpikingRunner): ...

``evstream.snn`` imports every family and mode, so ``ARCHS`` / ``CONVERSIONS`` are complete once it is
imported (any ``evstream.snn.*`` import does that first).
"""

from __future__ import annotations

ARCHS: dict[str, type] = {}
CONVERSIONS: dict[str, type] = {}


def _register(table: dict, what: str, attr: str, name: str):
    def add(cls):
        if name in table and table[name] is not cls:
            raise ValueError(f"{what} {name!r} registered twice")
        setattr(cls, attr, name)
        table[name] = cls
        return cls
    return add


def register_arch(name: str):
    """Class decorator: a model family (a ``SpikingModel``) as ``ARCHS[name]``; sets ``cls.arch``."""
    return _register(ARCHS, "architecture", "arch", name)


def register_conversion(name: str):
    """Class decorator: a streaming runner (a ``SpikingRunner``) as ``CONVERSIONS[name]``; sets ``cls.mode``."""
    return _register(CONVERSIONS, "conversion mode", "mode", name)


def model_class(arch) -> type:
    """The family registered as ``arch``; ``ValueError`` (one line) otherwise."""
    if not isinstance(arch, str) or arch not in ARCHS:
        raise ValueError(f"unknown architecture {arch!r:.60} (known: {', '.join(ARCHS)})")
    return ARCHS[arch]


def runner_class(mode: str) -> type:
    if mode not in CONVERSIONS:
        raise ValueError(f"unknown conversion mode {mode!r} (known: {', '.join(CONVERSIONS)})")
    return CONVERSIONS[mode]


def make_config(arch, config):
    """``arch``'s validated config object from a dict (see :mod:`evstream.snn.config`)."""
    return model_class(arch).make_config(config)


def build_model(arch: str = "mst", config: dict | None = None):
    """A new model of family ``arch`` from a config dict (``{"preset": "tiny", ...overrides}``)."""
    return model_class(arch)(config)
