"""What ``fit`` reports to: the History it returns and user callbacks' hooks."""


class History:
    """What ``fit`` returns: ``history`` maps each logged name to its per-epoch values."""

    def __init__(self, model=None, params=None):
        self.model = model
        self.params = params or {}
        self.epoch = []
        self.history = {}

    def append(self, epoch, logs):
        self.epoch.append(epoch)
        for key, value in logs.items():
            self.history.setdefault(key, []).append(value)

    def __repr__(self):
        return f"<History epochs={len(self.epoch)} keys={sorted(self.history)}>"


class CallbackList:
    """Calls the Keras-style hooks that each callback defines."""

    def __init__(self, callbacks, model):
        if callbacks is None:
            callbacks = []
        elif not isinstance(callbacks, (list, tuple)):
            raise TypeError(f"callbacks must be a list; received callbacks={callbacks!r:.80}")
        self.callbacks = list(callbacks)
        for callback in self.callbacks:
            if hasattr(callback, "set_model"):
                callback.set_model(model)

    def call(self, hook, *args):
        for callback in self.callbacks:
            method = getattr(callback, hook, None)
            if method is not None:
                method(*args)
