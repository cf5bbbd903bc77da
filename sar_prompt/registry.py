"""Registering our trainers and datasets into Dassl's registries without fighting the host.

A host suite (CoOp's, KgCoOp's, ...) may register classes under the same names as ours
(`CoOp`, `Caltech101`). Whoever comes first, the host's object wins and we say so once.
Our SAR trainers subclass our own classes, so they never depend on which one a name holds.
"""
_ours = set()  # ids of the objects we registered, which yield to a host's later registration
_patched_registry_classes = set()
_reported = set()  # (registry, name) conflicts already logged


def _say_once(registry, name, message):
    key = (id(registry), name)
    if key not in _reported:
        _reported.add(key)
        print(message)


def _allow_host_to_replace_ours(registry_cls):
    if registry_cls in _patched_registry_classes:
        return
    original = registry_cls._do_register

    def _do_register(self, name, obj, force=False):
        current = self._obj_map.get(name)
        if current is not None and id(current) in _ours and current is not obj and not force:
            _say_once(self, name, f'[sar_prompt] {self._name} "{name}": the host suite\'s '
                                  f"{obj.__module__}.{obj.__qualname__} replaces sar_prompt's")
            self._obj_map[name] = obj
            return
        return original(self, name, obj, force=force)

    registry_cls._do_register = _do_register
    _patched_registry_classes.add(registry_cls)


def register(registry, obj):
    """Register `obj` under its class name unless the host already holds that name."""
    _allow_host_to_replace_ours(type(registry))
    name = obj.__name__
    if name in registry.registered_names():
        current = registry.get(name)
        if current is not obj:
            _say_once(registry, name,
                      f'[sar_prompt] {getattr(registry, "_name", "registry")} "{name}" is '
                      f"already registered by {current.__module__}; keeping the host's. "
                      f"sar_prompt's is {obj.__module__}.{obj.__qualname__}.")
        return
    registry.register(obj)
    _ours.add(id(obj))
