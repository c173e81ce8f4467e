"""Resolve any model id a provider, a gateway or a billing file uses to an entry of the dataset.

One function, ``resolve_model``, handles date and version suffixes, ``-latest``/``-preview``, Bedrock
ids (``anthropic.claude-...-v1:0``), cross-region inference prefixes (``us.``, ``eu.``, ``apac.``,
``global.``), ARNs, Gemini's ``models/`` prefix, Vertex ``@date`` suffixes, OpenAI fine-tunes
(``ft:base:org::id``) and user aliases (Azure deployment names). Unknown ids never raise: they come
back with a size class when one can be found, else with ``kind == "unknown"``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from .config import Config, get_config
from .datasets import Datasets, ModelEntry, load, size_class_for

_BEDROCK_VENDORS = (
    "anthropic|meta|mistral|amazon|cohere|ai21|deepseek|openai|qwen|writer|stability|twelvelabs|luma|"
    "google|nvidia|minimax|moonshot|moonshotai|zai|kimi"
)
_GEO_PREFIX = re.compile(rf"^(?:us|eu|apac|global|us-gov|jp|au|ca|in|sa|me|af|ap)\.(?=(?:{_BEDROCK_VENDORS})\.)")
_VENDOR_PREFIX = re.compile(rf"^(?:{_BEDROCK_VENDORS})\.")
# A Bedrock custom (fine-tuned) model ARN names its base model: .../custom-model/<base model id>/<id>.
_CUSTOM_MODEL_ARN = re.compile(r"^arn:[^:]*:bedrock:[^:]*:[^:]*:custom-model/([^/]+)/")
_BEDROCK_VERSION = re.compile(r"(?:-v\d+(?::\d+)*(?::\d+k)?|:\d+(?::\d+k)?|:\d+k)$")

# Suffixes tried one after another (each candidate id is looked up before the next is stripped).
_SUFFIXES = (
    re.compile(r"-(?:\d{8}|\d{4}-\d{2}-\d{2}|\d{2}-\d{4}|\d{4})$"),  # dates: -20250514, -2024-08-06, -0613
    re.compile(r"-latest$"),
    re.compile(r"-(?:preview|exp)(?:-\d{2}-\d{2}|-\d{4})?$"),
    re.compile(r"-(?:instruct|chat|it)$"),
)
_SEPARATORS = re.compile(r"[^a-z0-9]+")
_PARAMS = re.compile(r"(?<![a-z0-9.])(?:(\d+)x)?(\d+(?:\.\d+)?)b(?![a-z0-9])")
_ACTIVE = re.compile(r"-a\d+(?:\.\d+)?b\b")


def canonical(model_id: str) -> str:
    """Lower case with every separator removed: 'Llama-3.1 8B' and 'llama3_1-8b' compare equal."""
    return _SEPARATORS.sub("", model_id.lower())


@lru_cache(maxsize=4096)
def clean_model_id(model_id: str) -> str:
    """Strip paths, ARNs, Vertex dates, fine-tune wrappers and Bedrock prefixes/versions (cached: it runs on
    every priced call, and a process sees few distinct ids)."""
    s = model_id.strip().lower()
    if s.startswith("ft:"):
        s = s[3:].split(":", 1)[0]
    s = clean_model_id_path(s)
    if "@" in s:
        s = s.split("@", 1)[0]
    s = _GEO_PREFIX.sub("", s)
    s = _VENDOR_PREFIX.sub("", s)
    s = _BEDROCK_VERSION.sub("", s)
    return s


def candidates(model_id: str) -> list[str]:
    """The successively shortened forms of an id, most specific first."""
    s = clean_model_id(model_id)
    out = [s]
    for pattern in _SUFFIXES:
        while True:
            shorter = pattern.sub("", s)
            if shorter == s or not shorter:
                break
            s = shorter
            out.append(s)
    return out


def params_from_id(model_id: str) -> float | None:
    """A parameter count written in the id ('qwen2.5-7b-instruct' -> 7, 'mixtral-8x7b' -> 56)."""
    s = _ACTIVE.sub("", model_id)
    m = _PARAMS.search(s)
    if not m:
        return None
    experts, size = m.group(1), float(m.group(2))
    return size * int(experts) if experts else size


@dataclass(frozen=True, slots=True)
class ModelMatch:
    """How a model id was resolved.

    kind: measured | published | sized | custom | class (by family rule or parameters in the id)
    | unsized (known model, size not public) | unknown.
    """

    requested: str | None
    kind: str
    entry: ModelEntry | None
    size_class: str | None
    flags: tuple[str, ...] = ()
    via: str | None = None  # what matched: 'alias', 'family rule ...', 'parameters in the id', ...
    custom_wh_per_token: float | None = None
    custom_source: str | None = None

    @property
    def id(self) -> str | None:
        return self.entry.id if self.entry else None


def _index(ds: Datasets, config: Config) -> dict[str, str]:
    index: dict[str, str] = {}
    for mid, entry in ds.models.items():
        for name in (mid, *entry.aliases):
            index.setdefault(canonical(name), mid)
    return index


@lru_cache(maxsize=4)
def _dataset_index(ds_digest: str) -> dict[str, str]:
    return _index(load(), Config())


def _lookup(ds: Datasets, config: Config, model_id: str) -> tuple[str | None, str | None]:
    """(dataset id or custom id, 'custom'|'dataset'|None) for the first candidate that matches."""
    index = _dataset_index(ds.digest)
    custom = {canonical(k): k for k in config.models}
    for m in config.models.values():
        for a in m.aliases:
            custom.setdefault(canonical(a), m.id)
    user_aliases = {canonical(k): v for k, v in config.aliases.items()}
    for cand in [model_id.strip().lower(), *candidates(model_id), *_vendor_named(model_id)]:
        key = canonical(cand)
        if key in user_aliases:
            return _lookup(ds, Config(models=config.models), user_aliases[key])
        if key in custom:
            return custom[key], "custom"
        if key in index:
            return index[key], "dataset"
    return None, None


def _vendor_named(model_id: str) -> list[str]:
    """Bedrock ids whose vendor prefix is part of the model's name ('deepseek.r1-v1:0' is DeepSeek-R1):
    the candidates with the vendor put back, tried after all the others."""
    s = _GEO_PREFIX.sub("", clean_model_id_path(model_id))
    vendor = _VENDOR_PREFIX.match(s)
    if vendor is None:
        return []
    name = vendor.group(0)[:-1]
    return [f"{name}-{cand}" for cand in candidates(model_id)]


def clean_model_id_path(model_id: str) -> str:
    """The id without an ARN's or a path's leading parts (lower case); a custom model's ARN gives its base."""
    s = model_id.strip().lower()
    custom = _CUSTOM_MODEL_ARN.match(s)
    if custom:
        return custom.group(1)
    return s.rsplit("/", 1)[1] if "/" in s else s


def _resolve(model_id: str | None, config: Config) -> ModelMatch:
    ds = load()
    if not model_id or not model_id.strip():
        g = ds.global_average
        return ModelMatch(model_id, "unknown", None, None, ("model_missing",), via=g.id if g else None)
    found, where = _lookup(ds, config, model_id)
    if where == "custom":
        custom = config.models[found]  # type: ignore[index]
        if custom.same_as:
            base = _resolve(custom.same_as, Config(aliases=config.aliases))
            return ModelMatch(
                model_id,
                base.kind,
                base.entry,
                base.size_class,
                base.flags,
                via=f"user config same_as {custom.same_as}",
            )
        if custom.params_b is not None:
            cls = size_class_for(custom.params_b)
            return ModelMatch(
                model_id,
                "class",
                None,
                cls,
                (),
                via=f"user config params_b {custom.params_b}",
                custom_source=custom.source,
            )
        return ModelMatch(
            model_id,
            "custom",
            None,
            None,
            (),
            via="user config wh_per_token",
            custom_wh_per_token=custom.wh_per_token,
            custom_source=custom.source,
        )
    if found is not None:
        entry = ds.models[found]
        if entry.kind in ("measured", "published"):
            return ModelMatch(model_id, entry.kind, entry, entry.size_class)
        if entry.kind == "sized":
            return ModelMatch(model_id, "sized", entry, entry.size_class, via=f"{entry.params_b:g}B parameters")
        rule = _family_rule(ds, entry.id)
        if rule is not None and rule.size_class is not None:
            return ModelMatch(
                model_id,
                "class",
                entry,
                rule.size_class,
                ("model_size_unknown", "size_class_assumed"),
                via=f"size not public; family rule: {rule.family}",
            )
        return ModelMatch(model_id, "unsized", entry, None, ("model_size_unknown",))
    cleaned = candidates(model_id)[-1]
    params = params_from_id(cleaned)
    if params is not None:
        return ModelMatch(
            model_id,
            "class",
            None,
            size_class_for(params),
            ("size_from_model_id",),
            via=f"{params:g}B parameters read from the id",
        )
    rule = _family_rule(ds, cleaned)
    if rule is not None:
        if rule.same_as is not None:
            sibling = ds.models[rule.same_as]
            return ModelMatch(
                model_id,
                sibling.kind,
                sibling,
                sibling.size_class,
                ("figure_from_sibling",),
                via=f"family rule: {rule.family}",
            )
        return ModelMatch(
            model_id,
            "class",
            None,
            rule.size_class,
            ("size_class_assumed",),
            via=f"family rule: {rule.family}",
        )
    return ModelMatch(model_id, "unknown", None, None, ("model_unknown",))


def _family_rule(ds: Datasets, cleaned_id: str):
    """The first families.toml rule matching a cleaned id, or None."""
    for rule in ds.families:
        if rule.pattern.search(cleaned_id):
            return rule
    return None


@lru_cache(maxsize=8192)
def _resolve_cached(model_id: str | None, config: Config) -> ModelMatch:
    return _resolve(model_id, config)


def resolve_model(model_id: str | None, config: Config | None = None) -> ModelMatch:
    """Resolve a model id to the dataset; never raises for an unknown or malformed id."""
    if model_id is not None and not isinstance(model_id, str):
        model_id = str(model_id)
    return _resolve_cached(model_id, config if config is not None else get_config())
