"""Name registries behind the ``get``/``serialize``/``deserialize`` of each family.

activations, initializers, regularizers, constraints, losses and optimizers
each keep one :class:`Registry`.  An identifier may be a registered name, a
config dict ``{"class_name": ..., "config": {...}}``, an instance, or a
callable.
"""


class Registry:
    """Named classes and functions of one family (e.g. "initializer")."""

    def __init__(self, family):
        self.family = family
        self._by_name = {}
        self._by_folded_name = {}  # case-insensitive look-up, not listed as names

    def register(self, *names):
        """Decorator registering a class or function under ``names``."""

        def decorate(obj):
            for name in names or (obj.__name__,):
                self._by_name[name] = obj
                self._by_folded_name.setdefault(name.lower(), obj)
            return obj

        return decorate

    def names(self):
        """The registered names, as registered."""
        return sorted(self._by_name)

    def lookup(self, name):
        """The class or function registered as ``name``; ValueError listing the valid names."""
        # Only strings are looked up: an unhashable class_name (a list, a dict) must give
        # the ValueError below, not "unhashable type".
        obj = None
        if isinstance(name, str):
            obj = self._by_name.get(name) or self._by_folded_name.get(name.lower())
        if obj is None:
            raise ValueError(
                f"unknown {self.family} {name!r}; valid names are: {', '.join(self.names())}"
            )
        return obj

    def get(self, identifier):
        """Resolve a name, config dict, instance or callable (None stays None)."""
        if identifier is None:
            return None
        if isinstance(identifier, str):
            obj = self.lookup(identifier)
            return obj() if isinstance(obj, type) else obj
        if isinstance(identifier, dict):
            return self.deserialize(identifier)
        if callable(identifier):
            return identifier
        raise TypeError(
            f"could not interpret {self.family} identifier; received {identifier!r} "
            f"(expected a name, a config dict, an instance or a callable)"
        )

    def serialize(self, obj):
        """A registered function's name, or ``{"class_name", "config"}`` of an instance."""
        if obj is None:
            return None
        for name, registered in self._by_name.items():
            if registered is obj and name == name.lower():
                return name
        if hasattr(obj, "get_config"):
            return {"class_name": type(obj).__name__, "config": obj.get_config()}
        raise ValueError(f"cannot serialize {self.family} {obj!r}: it is not registered "
                         "and has no get_config()")

    def deserialize(self, config):
        """Inverse of :meth:`serialize`."""
        if isinstance(config, str):
            return self.get(config)
        if not isinstance(config, dict) or "class_name" not in config:
            raise ValueError(
                f"{self.family} config must be a name or a dict with 'class_name' and 'config'; "
                f"received {config!r}"
            )
        obj = self.lookup(config["class_name"])
        if not isinstance(obj, type):
            return obj
        settings = config.get("config") or {}
        if hasattr(obj, "from_config"):
            return obj.from_config(settings)
        return obj(**settings)


class Configurable:
    """``get_config`` / ``from_config`` / ``repr`` shared by every registered family's base class.

    Subclasses list their constructor arguments in ``get_config``; ``from_config``
    calls the constructor with them, so the two round-trip.
    """

    def get_config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        settings = ", ".join(f"{key}={value!r}" for key, value in self.get_config().items())
        return f"{type(self).__name__}({settings})"
