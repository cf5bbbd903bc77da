"""Registering our trainers and datasets into Dassl's registries without fighting the host.

A host suite (CoOp's, KgCoOp's, ...) may register classes under the same names as ours
(`CoOp`, `Caltech101`). Whoever comes first, the host's object wins. The log says so in
one line: `import sar_prompt` reports the names the host already held once it has
registered everything (`report_kept`), and the first time a host registers over one of
ours, one line says that this happens (later ones are only recorded in `CONFLICTS`).
Our SAR trainers subclass our own classes, so they never depend on which one a name holds.
"""
_ours = set()  # ids of the objects we registered, which yield to a host's later registration
_patched_registry_classes = set()
CONFLICTS = {"kept": [], "replaced": []}  # "REGISTRY name" the host's object holds
_reported = set()  # which kinds of conflict were already logged


def _label(registry, name):
    return f'{getattr(registry, "_name", "registry")} "{name}"'


def _allow_host_to_replace_ours(registry_cls):
    if registry_cls in _patched_registry_classes:
        return
    original = registry_cls._do_register

    def _do_register(self, name, obj, force=False):
        current = self._obj_map.get(name)
        if current is not None and id(current) in _ours and current is not obj and not force:
            label = _label(self, name)
            if label not in CONFLICTS["replaced"]:
                CONFLICTS["replaced"].append(label)
            if "replaced" not in _reported:
                _reported.add("replaced")
                print(f"[sar_prompt] the host suite registers its own classes under names "
                      f"sar_prompt also registered (first: {label}, "
                      f"{obj.__module__}.{obj.__qualname__}); the host's replace sar_prompt's. "
                      "sar_prompt's SAR trainers keep using sar_prompt's own classes.")
            self._obj_map[name] = obj
            return
        return original(self, name, obj, force=force)

    registry_cls._do_register = _do_register
    _patched_registry_classes.add(registry_cls)


def register(registry, obj):
    """Register `obj` under its class name unless the host already holds that name (then
    it is recorded, and `report_kept` names it)."""
    _allow_host_to_replace_ours(type(registry))
    name = obj.__name__
    if name in registry.registered_names():
        if registry.get(name) is not obj:
            label = _label(registry, name)
            if label not in CONFLICTS["kept"]:
                CONFLICTS["kept"].append(label)
        return
    registry.register(obj)
    _ours.add(id(obj))


def report_kept():
    """One log line for every name the host held before us; said once per process."""
    kept = CONFLICTS["kept"]
    if not kept or "kept" in _reported:
        return
    _reported.add("kept")
    print(f"[sar_prompt] the host suite already registered {len(kept)} name(s) sar_prompt "
          f"also provides ({', '.join(kept)}); keeping the host's. sar_prompt's SAR trainers "
          "use sar_prompt's own classes.")
