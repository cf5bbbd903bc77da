"""A run folder's identity: everything that changes the result it holds.

The identity of a run is its resolved config (trainer, dataset, shots, seed, the config
files' content and every trailing KEY VALUE override, as train.py layers them), less the
entries that only say where files are (`LOCATION_KEYS`), plus the sha256 of the
novel-class list a SAR trainer reads. A run folder's identity is read from its
fingerprint.json; a run asked for again into the same folder must have the same one
(see ownership.py). Package versions, the git revision and the CLIP weights' digest are
recorded in the fingerprint but do not block: they are reported when results are averaged.

Overrides also name the folder (`config_folder`): `<config>` without any, else
`<config>__<tag>`, the tag being the overrides sorted by key (`TRAINER.` dropped, numbers in
one canonical form), e.g. `vit_b16_ctxv1__SAR.WEIGHT=5`. An override that sets a key to the
value the config files (or sar_prompt's own defaults) already give it changes nothing, so it
names nothing: `TRAINER.SAR.WEIGHT 1` is the run without it, in the same folder
(`file_defaults`).
"""
import ast
import hashlib
import json
import re
import threading
from pathlib import Path

# Config entries that say where files are or how a run is kept, not what it computes. The
# novel-class list counts by its content (NOVEL_KEY), wherever it is.
NOVEL_FILE_KEY = "TRAINER.SAR.NOVEL_FILE"
LOCATION_KEYS = ("OUTPUT_DIR", "RESUME", "DATASET.ROOT", "TRAIN.CHECKPOINT_FREQ",
                 "MODEL.BACKBONE.PATH", "MODEL.INIT_WEIGHTS", "MODEL.TRUST_CHECKPOINT_CODE",
                 NOVEL_FILE_KEY)
# Left out of folder names: a novel-class file given does name its runs' folders.
UNNAMED_KEYS = tuple(k for k in LOCATION_KEYS if k != NOVEL_FILE_KEY)
NOVEL_KEY = "novel_classes.sha256"
SEPARATOR = "__"               # <config>__<tag>
MAX_TAG = 60                   # longer readable tags are cut and get a hash
NAME_CHARS = r"A-Za-z0-9._=+,-"
_BAD = re.compile(f"[^{NAME_CHARS}]")
_resolving = threading.Lock()  # the runner's GPU threads: registration happens once, whole


# -- identity ----------------------------------------------------------------------------------
def flatten(value, prefix=""):
    """{"A.B.C": leaf} of nested dicts."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            out.update(flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: value}


def config_identity(config):
    """The flat config entries that are part of a run's identity (`config` nested, as in a
    fingerprint)."""
    flat = flatten(config or {})
    for key in LOCATION_KEYS:
        flat.pop(key, None)
    return flat


def of_fingerprint(fp):
    """The identity a run folder's fingerprint records."""
    ident = config_identity(fp.get("config"))
    ident[NOVEL_KEY] = (fp.get("novel_classes") or {}).get("sha256")
    return ident


def _as_json(value):
    """What a config value reads as once written to fingerprint.json (tuples are lists)."""
    return json.loads(json.dumps(value))


def novel_file(cfg):
    """The novel-class list a SAR trainer reads for `cfg` (TRAINER.SAR.NOVEL_FILE, else the
    shipped list of the dataset, ImageNet's for its variants)."""
    from sar_prompt.catalog import novel_key_for
    from sar_prompt.novel import default_path

    return cfg.TRAINER.SAR.NOVEL_FILE or str(default_path(novel_key_for(cfg.DATASET.NAME)))


def _sha256(path):
    try:
        with open(path, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()
    except OSError:
        return None


def config_dict(cfg):
    """A yacs CfgNode as plain nested dicts and lists (JSON-ready)."""
    if isinstance(cfg, dict):
        return {k: config_dict(v) for k, v in cfg.items()}
    if isinstance(cfg, (list, tuple)):
        return [config_dict(v) for v in cfg]
    return cfg


def uses_sar(trainer_name):
    """Whether the registered trainer of that name reads a novel-class list."""
    from sar_prompt.dassl_glue.registration import register

    register()
    from dassl.engine import TRAINER_REGISTRY

    try:
        return bool(getattr(TRAINER_REGISTRY.get(trainer_name), "uses_sar", False))
    except KeyError:
        return False


def requested_fingerprint(cfg, sar=None):
    """The identity-bearing part of the fingerprint a run of `cfg` writes: {"config",
    "novel_classes"}. `sar`: whether the trainer reads a novel-class list (None: ask the
    trainer registry)."""
    sar = uses_sar(cfg.TRAINER.NAME) if sar is None else sar
    novel = None
    if sar:
        path = novel_file(cfg)
        novel = {"file": path, "sha256": _sha256(path)}
    return {"config": _as_json(config_dict(cfg)), "novel_classes": novel}


def requested_from_argv(argv, sar=None, light=False):
    """`requested_fingerprint` of train.py's command line `argv` (the config resolved as
    train.py resolves it, nothing built; `light`: without importing Dassl, then `sar` must
    be given, see command_line.dassl_defaults)."""
    from sar_prompt.config.command_line import build_parser, setup_cfg

    with _resolving:
        cfg = setup_cfg(build_parser().parse_args(list(argv)), light=light)
        return requested_fingerprint(cfg, sar)


def differences(stored, requested):
    """[(key, stored value, requested value)] where two identities differ, sorted by key."""
    missing = object()
    out = []
    for key in sorted(set(stored) | set(requested)):
        a, b = stored.get(key, missing), requested.get(key, missing)
        if a != b:
            out.append((key, None if a is missing else a, None if b is missing else b))
    return out


def describe(diffs, limit=8):
    """`KEY: OLD -> NEW` lines (novel lists by digest prefix)."""
    def show(key, value):
        if key == NOVEL_KEY and isinstance(value, str):
            return f"sha256 {value[:12]}"
        return "(absent)" if value is None else repr(value)

    lines = [f"{key}: {show(key, a)} -> {show(key, b)}" for key, a, b in diffs[:limit]]
    if len(diffs) > limit:
        lines.append(f"(+{len(diffs) - limit} more)")
    return lines


# -- folder names ------------------------------------------------------------------------------
def canonical(value):
    """One text per value: 5, 5.0 and "5." -> "5"; 0.50 -> "0.5"; (32, 32) -> "32+32"."""
    if isinstance(value, str):
        try:
            value = ast.literal_eval(value)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            return value
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e16 else repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, (list, tuple)):
        return "+".join(canonical(v) for v in value)
    return str(value)


def named_overrides(opts, defaults=None):
    """[(key, canonical value)] of trailing KEY VALUE pairs that name a folder: sorted by key,
    the last value of a repeated key, location keys (MODEL.BACKBONE.PATH, ...) left out, and
    so are keys set to their value in `defaults` ({key: value}, see file_defaults)."""
    pairs = {}
    for key, value in zip(opts[0::2], opts[1::2]):
        if key not in UNNAMED_KEYS:
            pairs[key] = canonical(value)
    defaults = defaults or {}
    return sorted((k, v) for k, v in pairs.items()
                  if not (k in defaults and canonical(defaults[k]) == v))


def _yaml_entries(path):
    import yaml

    with open(path, encoding="utf-8") as f:
        return flatten(yaml.safe_load(f) or {})


_defaults_cache = {}


def file_defaults(files):
    """{key: value} a config gets before any override: sar_prompt's own defaults
    (config/keys.py), then each config file's entries in turn (train.py merges the dataset's
    file, then the trainer's). Dassl's own defaults are not read (it may not be installed),
    so an override of a key only Dassl sets always names its folder. {} when a file cannot
    be read (the run itself then says why)."""
    from yacs.config import CfgNode

    from sar_prompt.config.keys import extend_cfg

    try:
        stamp = tuple((str(f), Path(f).stat().st_mtime_ns) for f in files)
        if stamp not in _defaults_cache:
            cfg = CfgNode({"TRAINER": {}, "DATASET": {}, "MODEL": {"BACKBONE": {}}})
            flat = flatten(config_dict(extend_cfg(cfg)))
            for path in files:
                flat.update(_yaml_entries(path))
            _defaults_cache[stamp] = flat
        return _defaults_cache[stamp]
    except (OSError, ValueError, TypeError, AttributeError):
        return {}
    except Exception as exc:  # a yaml syntax error
        if type(exc).__module__.startswith("yaml"):
            return {}
        raise


def _short_hash(text):
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:8]


def override_tag(opts, defaults=None):
    """The readable tag of `opts` ("" without any), e.g. "SAR.WEIGHT=5,OPTIM.MAX_EPOCH=2".
    Characters outside [A-Za-z0-9._=+,-] become "_"; then, or when longer than MAX_TAG, a
    hash of the exact overrides is appended ("-h1a2b3c4d"), so two names never collide.
    `defaults`: as named_overrides."""
    pairs = named_overrides(opts, defaults)
    if not pairs:
        return ""
    text = ",".join(f"{k[len('TRAINER.'):] if k.startswith('TRAINER.') else k}={v}"
                    for k, v in pairs)
    readable = _BAD.sub("_", text)
    if readable == text and len(text) <= MAX_TAG:
        return text
    return f"{readable[:MAX_TAG - 10]}-h{_short_hash(json.dumps(pairs))}"


def check_tag(tag):
    if tag and (_BAD.search(tag) or tag.startswith(".")):
        from sar_prompt.errors import ConfigError

        raise ConfigError(f"--tag / TAG {tag!r}: a folder-name tag may use only letters, "
                          "digits and . _ = + , - (and not start with a dot).")
    return tag


def config_folder(config, opts=(), tag="", point=(), defaults=None):
    """The config folder of a run: `<config>` without overrides, else `<config>__<tag>`:
    the overrides' tag, or an explicit `tag` in its place (then a sweep's `point`, overrides
    also in `opts`, is still named after it: `<config>__<tag>,SAR.WEIGHT=5`). Overrides to
    a value `defaults` already gives name nothing (named_overrides)."""
    if tag:
        suffix = ",".join(p for p in (check_tag(tag), override_tag(list(point), defaults))
                          if p)
    else:
        suffix = override_tag(list(opts), defaults)
    return f"{config}{SEPARATOR}{suffix}" if suffix else str(config)


def overrides_of_folder(name):
    """The tag part of a config folder's name ("" for none)."""
    return name.split(SEPARATOR, 1)[1] if SEPARATOR in name else ""
