"""What every key of a spec can be: the options of the spec's sections and of each registered component.

Read from the pydantic models themselves (the section models of :mod:`ntframe.spec`, each component's
``Options``): name (the alias if any), a short human type (``int > 0``, ``'bank' | 'stream'``), the default, and
the doc — the field's ``description``, else its attribute docstring (the string literal right under the field,
found in the source of the class and of its base classes). Used by the CLI to list a plugin's options and by
``tools/options_doc.py`` to write ``docs/options.md``, which a test keeps equal to the models.

An option is a dict ``{"name", "type", "default", "required", "doc"}``; a nested model (``budget`` of the
mapper) is one entry for itself followed by one per key inside it, named with dots (``budget.evaluations``;
``inputs[].shape`` for a list of models).
"""

from __future__ import annotations

import ast
import inspect
import textwrap
import types
from enum import Enum
from pathlib import PurePath
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import annotated_types
from pydantic import BaseModel
from pydantic_core import PydanticSerializationError, to_jsonable_python

from ntframe.components import FAMILIES
from ntframe.errors import SpecError
from ntframe.host import PluginHost
from ntframe.spec import SELECTORS, Spec
from ntframe.yamlio import did_you_mean

SECTIONS: tuple[str, ...] = ("workload", "architecture", "mapper", "cost_model", "memory")
"""The spec sections, in the order a spec writes them."""

OWN_DISTRIBUTION = "ntframe"
"""Components of this distribution are the ones ``docs/options.md`` documents."""

_NUMBER_TYPES = {int: "int", float: "float", str: "str", bool: "bool", bytes: "bytes", type(None): "null"}


# --- the type of an option, as a short text -------------------------------------------------------------------

def _literal(value: Any) -> str:
    """A literal value as a spec would write it: strings quoted, the rest as YAML reads them."""
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)


def _bounds_text(metadata: list[Any]) -> str:
    """``> 0``, ``in [0, 1]``, ``multiple of 8``... from annotated_types metadata (empty when there is none)."""
    low = high = None                                   # (value, inclusive)
    extra = []
    for item in metadata:
        if isinstance(item, annotated_types.Interval):
            if item.gt is not None:
                low = (item.gt, False)
            if item.ge is not None:
                low = (item.ge, True)
            if item.lt is not None:
                high = (item.lt, False)
            if item.le is not None:
                high = (item.le, True)
        elif isinstance(item, annotated_types.Gt):
            low = (item.gt, False)
        elif isinstance(item, annotated_types.Ge):
            low = (item.ge, True)
        elif isinstance(item, annotated_types.Lt):
            high = (item.lt, False)
        elif isinstance(item, annotated_types.Le):
            high = (item.le, True)
        elif isinstance(item, annotated_types.MultipleOf):
            extra.append(f"multiple of {item.multiple_of!r}")
    parts = []
    if low is not None and high is not None:
        parts.append(f"in {'[' if low[1] else '('}{low[0]!r}, {high[0]!r}{']' if high[1] else ')'}")
    elif low is not None:
        parts.append(f"{'>=' if low[1] else '>'} {low[0]!r}")
    elif high is not None:
        parts.append(f"{'<=' if high[1] else '<'} {high[0]!r}")
    return ", ".join(parts + extra)


def _length_text(metadata: list[Any], unit: str) -> str:
    """``(1 to 3 items)``, ``(at least 1 character)``... from MinLen/MaxLen metadata (empty when there is none)."""
    low = high = None
    for item in metadata:
        if isinstance(item, annotated_types.MinLen):
            low = item.min_length
        elif isinstance(item, annotated_types.MaxLen):
            high = item.max_length
        elif isinstance(item, annotated_types.Len):
            low, high = item.min_length, item.max_length
    if low and high is not None:
        return f"({low} to {high} {unit}s)"
    if low:
        return f"(at least {low} {unit}{'s' if low != 1 else ''})"
    if high is not None:
        return f"(at most {high} {unit}{'s' if high != 1 else ''})"
    return ""


def _join(*parts: str) -> str:
    return " ".join(part for part in parts if part)


def type_text(annotation: Any, metadata: list[Any] | None = None) -> str:
    """A short human text for a type annotation and its constraints: ``int > 0``, ``float in [0, 1]``,
    ``'bank' | 'stream'``, ``mapping of str to float``, ``list of 'forward' | 'update'``, ``int > 0 or null``."""
    metadata = list(metadata or [])
    origin = get_origin(annotation)
    args = get_args(annotation)
    if origin is Annotated:
        return type_text(args[0], [*annotation.__metadata__, *metadata])
    if origin is Union or origin is types.UnionType:
        members = [arg for arg in args if arg is not type(None)]
        text = " or ".join(type_text(arg, metadata) for arg in members)
        return f"{text} or null" if len(members) < len(args) else text
    if origin is Literal:
        return " | ".join(_literal(value) for value in args)
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return " | ".join(_literal(member) for member in annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "mapping"
    if annotation is Any:
        return "any"
    if annotation is bool:                              # bool is an int: no bounds for it
        return "bool"
    if annotation in _NUMBER_TYPES:
        unit = "character" if annotation in (str, bytes) else ""
        return _join(_NUMBER_TYPES[annotation], _bounds_text(metadata), _length_text(metadata, unit) if unit else "")
    if isinstance(annotation, type) and issubclass(annotation, PurePath):
        return "path"
    if origin in (list, set, frozenset) or annotation in (list, set, frozenset):
        item = f"list of {type_text(args[0])}" if args else "list"
        return _join(item, _length_text(metadata, "item"))
    if origin is tuple or annotation is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return _join(f"list of {type_text(args[0])}", _length_text(metadata, "item"))
        if args:
            return "[" + ", ".join(type_text(arg) for arg in args) + "]"
        return "list"
    if origin is dict or annotation is dict:
        text = f"mapping of {type_text(args[0])} to {type_text(args[1])}" if len(args) == 2 else "mapping"
        return _join(text, _length_text(metadata, "key"))
    name = getattr(annotation, "__name__", None) or str(annotation)
    return _join(name, _bounds_text(metadata))


# --- docs, defaults, nested models ------------------------------------------------------------------------------

def _one_paragraph(text: str) -> str:
    return " ".join(inspect.cleandoc(text).split())


def _class_attribute_docstrings(cls: type) -> dict[str, str]:
    """Attribute docstrings written in the body of ``cls`` itself (not its bases); empty without source."""
    try:
        source = textwrap.dedent(inspect.getsource(cls))
        tree = ast.parse(source)
    except (OSError, TypeError, SyntaxError, IndentationError):
        return {}
    node = next((n for n in tree.body if isinstance(n, ast.ClassDef)), None)
    if node is None:
        return {}
    docs: dict[str, str] = {}
    for statement, following in zip(node.body, node.body[1:]):
        if (isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name)
                and isinstance(following, ast.Expr) and isinstance(following.value, ast.Constant)
                and isinstance(following.value.value, str)):
            docs[statement.target.id] = _one_paragraph(following.value.value)
    return docs


def attribute_docstrings(model: type) -> dict[str, str]:
    """Field name -> attribute docstring, looked up in ``model`` and then its base classes (the nearest wins)."""
    docs: dict[str, str] = {}
    for cls in model.__mro__:
        if cls in (object, BaseModel):
            continue
        for name, doc in _class_attribute_docstrings(cls).items():
            docs.setdefault(name, doc)
    return docs


def _jsonable(value: Any) -> Any:
    try:
        return to_jsonable_python(value)
    except (PydanticSerializationError, TypeError, ValueError):
        return str(value)


def _nested_model(annotation: Any) -> tuple[type[BaseModel] | None, bool]:
    """(the pydantic model a field holds, whether as a list of them), looking through Optional and Annotated;
    (None, False) when the field holds no model or a choice between several."""
    origin = get_origin(annotation)
    args = get_args(annotation)
    if origin is Annotated:
        return _nested_model(args[0])
    if origin is Union or origin is types.UnionType:
        members = [arg for arg in args if arg is not type(None)]
        return _nested_model(members[0]) if len(members) == 1 else (None, False)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, False
    if origin in (list, tuple) and args and (origin is list or (len(args) == 2 and args[1] is Ellipsis)):
        inner, in_list = _nested_model(args[0])
        return (inner, True) if inner is not None and not in_list else (None, False)
    return None, False


def describe_model(model: type[BaseModel], prefix: str = "") -> list[dict]:
    """One entry per option of ``model``, in declaration order: ``{"name", "type", "default", "required",
    "doc"}`` (``default`` is a JSON value, None when ``required``). A nested model's keys follow its own entry,
    named ``parent.key`` (``parent[].key`` for a list of models)."""
    return _describe(model, prefix, ())


def _describe(model: type[BaseModel], prefix: str, outer: tuple[type, ...]) -> list[dict]:
    docs = attribute_docstrings(model)
    entries: list[dict] = []
    for field_name, field in model.model_fields.items():
        name = prefix + (field.alias or field_name)
        required = field.is_required()
        default = None
        if not required:
            try:
                default = _jsonable(field.get_default(call_default_factory=True, validated_data={}))
            except (TypeError, KeyError, AttributeError, ValueError):  # a factory that needs other fields
                default = None
        nested, in_list = _nested_model(field.annotation)
        doc = _one_paragraph(field.description) if field.description else docs.get(field_name, "")
        if not doc and nested is not None and nested.__doc__ and nested.__doc__ != BaseModel.__doc__:
            doc = _one_paragraph(nested.__doc__)
        entries.append({"name": name, "type": type_text(field.annotation, field.metadata), "default": default,
                        "required": required, "doc": doc})
        if nested is not None and nested not in (*outer, model):          # a model holding itself: once
            entries += _describe(nested, f"{name}[]." if in_list else f"{name}.", (*outer, model))
    return entries


# --- spec sections and plugins --------------------------------------------------------------------------------

def section_model(section: str) -> type[BaseModel]:
    """The pydantic model of a spec section (``WorkloadSection`` for ``workload``...)."""
    if section not in SECTIONS:
        raise SpecError(f"no spec section named '{section}'; sections: {', '.join(SECTIONS)}"
                        f"{did_you_mean(section, list(SECTIONS))}")
    return Spec.model_fields[section].annotation


def section_core_keys(section: str) -> list[dict]:
    """The core keys of a spec section (its model's fields), in :func:`describe_model`'s format, the selector
    key (``frontend``, ``name``, ``backend``) first."""
    entries = describe_model(section_model(section))
    if section not in SELECTORS:
        return entries
    key, family = SELECTORS[section]
    selector = [e for e in entries if e["name"] == key]
    for entry in selector:
        if not entry["doc"]:
            entry["doc"] = (f"The {family.replace('_', ' ')} component; the section's other keys are its "
                            f"options.")
    return selector + [e for e in entries if e["name"] != key]


def _section_of(family: str) -> tuple[str | None, str | None]:
    """(spec section, selector key) that selects a component of ``family``."""
    for section, (key, fam) in SELECTORS.items():
        if fam == family:
            return section, key
    return None, None


def _component(family: str, name: str, cls: type) -> dict:
    section, selector = _section_of(family)
    return {"family": family, "name": name, "description": getattr(cls, "description", "") or "",
            "section": section, "selector": selector, "options": describe_model(cls.Options)}


def describe_plugin(host: PluginHost, name: str) -> list[dict]:
    """Plugins and components called ``name`` (an entry-point name, or a component name, which may exist in
    several families): one dict per plugin, ``{"plugin", "distribution", "version", "module", "error",
    "blocked", "components": [{"family", "name", "description", "section", "selector", "options"}]}``; a
    plugin found by one of its components lists only the matching components. SpecError when nothing matches."""
    wanted: dict[str, list[tuple[str, str]]] = {}         # plugin key -> components to list
    for key, info in host.plugins.items():
        if name in (key, info.name):
            wanted[key] = list(info.components)
    for (family, component), reg in sorted(host.components.items()):
        if component != name:
            continue
        key = reg.plugin if reg.plugin in host.plugins else next(
            (k for k, info in host.plugins.items() if info.name == reg.plugin), reg.plugin)
        chosen = wanted.setdefault(key, [])
        if (family, component) not in chosen:
            chosen.append((family, component))
    if not wanted:
        plugins = sorted(host.plugins)
        components = sorted({component for _, component in host.components})
        raise SpecError(f"no plugin or component named '{name}'; plugins: {', '.join(plugins) or '(none)'}; "
                        f"components: {', '.join(components) or '(none)'}"
                        f"{did_you_mean(name, sorted(set(plugins) | set(components)))}")
    described = []
    for key in sorted(wanted):
        info = host.plugins.get(key)
        components = [_component(family, component, host.components[(family, component)].cls)
                      for family, component in sorted(wanted[key]) if (family, component) in host.components]
        described.append({"plugin": info.name if info else key,
                          "distribution": info.distribution if info else "unknown",
                          "version": info.version if info else "unknown",
                          "module": info.module if info else "unknown",
                          "error": info.error if info else None, "blocked": info.blocked if info else False,
                          "components": components})
    return described


# --- rendering ------------------------------------------------------------------------------------------------

def format_default(entry: dict) -> str:
    """An entry's default as a spec would write it (``'bank'``, ``30000``, ``null``, ``{}``); ``required``."""
    if entry["required"]:
        return "required"
    return _flow(entry["default"])


def _flow(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_flow(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_flow(v) for v in value) + "]"
    return _literal(value)


def selection_text(component: dict) -> str:
    """How a spec selects a component, e.g. ``memory: {backend: hmc-analytic, ...}`` (required options named)."""
    if component["section"] is None:
        return f"({component['family']}: not selected by a spec section)"
    options = [o for o in component["options"] if "." not in o["name"] and "[" not in o["name"]]
    keys = [f"{component['selector']}: {component['name']}"] + [f"{o['name']}: ..." for o in options
                                                                 if o["required"]]
    if any(not o["required"] for o in options):
        keys.append("...")
    return f"{component['section']}: {{{', '.join(keys)}}}"


def _table_lines(rows: list[list[str]], widths: list[int], indent: str) -> list[str]:
    """Rows of cells wrapped to column widths (the last column unpadded), each row on as many lines as its
    tallest cell needs."""
    lines = []
    for row in rows:
        # " |" is kept with the alternative before it, so a wrapped choice never starts a line with "|"
        wrapped = [[line.replace("\u00a0", " ") for line in textwrap.wrap(
            cell.replace(" |", "\u00a0|"), width, break_long_words=False, break_on_hyphens=False)] or [""]
            for cell, width in zip(row, widths)]
        for i in range(max(len(cell) for cell in wrapped)):
            parts = [(cell[i] if i < len(cell) else "").ljust(width) for cell, width in zip(wrapped, widths)]
            lines.append((indent + "  ".join(parts[:-1] + [parts[-1].rstrip()])).rstrip())
    return lines


def render_text(described: list[dict], width: int = 110) -> str:
    """A terminal listing of :func:`describe_plugin`'s result: a header per plugin, then per component its
    family, name, description, how to select it and an aligned table of options (name, type, default, doc;
    long cells wrapped to ``width`` columns in all)."""
    lines: list[str] = []
    for plugin in described:
        state = " [blocked]" if plugin["blocked"] else ""
        lines.append(f"plugin {plugin['plugin']} {plugin['version']} (distribution {plugin['distribution']}, "
                     f"module {plugin['module']}){state}")
        if plugin["error"]:
            lines.append(f"  error: {plugin['error']}")
        if not plugin["components"] and not plugin["error"] and not plugin["blocked"]:
            lines.append("  (no components)")
        for component in plugin["components"]:
            lines.append(f"  {component['family']} {component['name']}: {component['description']}")
            lines.append(f"    select: {selection_text(component)}")
            options = component["options"]
            if not options:
                lines.append("    (no options)")
                continue
            rows = [["option", "type", "default", "doc"]]
            rows += [[o["name"], o["type"], format_default(o), o["doc"]] for o in options]
            widths = [max(len(r[0]) for r in rows), min(max(len(r[1]) for r in rows), 30),
                      min(max(len(r[2]) for r in rows), 16)]
            widths.append(max(30, width - 4 - sum(widths) - 2 * len(widths)))
            lines += _table_lines(rows, widths, "    ")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _code(text: str) -> str:
    fence = "``" if "`" in text else "`"
    pad = " " if "`" in text else ""
    return f"{fence}{pad}{_cell(text)}{pad}{fence}"


def _markdown_table(entries: list[dict], first: str) -> list[str]:
    if not entries:
        return ["(no options)"]
    lines = [f"| {first} | type | default | what |", "|---|---|---|---|"]
    for entry in entries:
        default = "required" if entry["required"] else _code(format_default(entry))
        lines.append(f"| {_code(entry['name'])} | {_code(entry['type'])} | {default} | {_cell(entry['doc'])} |")
    return lines


def family_title(family: str) -> str:
    """``memory_backend`` -> ``Memory backends``."""
    return family.replace("_", " ").capitalize() + "s"


def render_markdown(host: PluginHost) -> str:
    """The text of ``docs/options.md``: the core keys of every spec section, then the options of every component
    of ntframe's own distribution (third-party plugins never appear), by family and name. Deterministic."""
    lines = [
        "# Spec options",
        "",
        ("Every key a spec may hold: the core keys of each section, then the options of each component ntframe "
         "ships. This page is generated from the option models (the section models of `ntframe/spec.py` and each "
         "component's `Options`) by `python tools/options_doc.py --write`, and a test (`tests/test_options.py`) "
         "fails when it differs from them: edit the models' attribute docstrings, not this page."),
        "",
        "## Spec sections",
        "",
    ]
    own = {key: info for key, info in host.plugins.items() if info.distribution == OWN_DISTRIBUTION}
    components = [host.components[c] for info in own.values() for c in info.components if c in host.components]
    for section in SECTIONS:
        lines.append(f"### `{section}`")
        lines.append("")
        if section in SELECTORS:
            key, family = SELECTORS[section]
            names = sorted(reg.name for reg in components if reg.family == family)
            listed = ", ".join(f"`{name}`" for name in names)
            lines.append(f"`{key}` selects the {family.replace('_', ' ')} ({listed}; see "
                         f"[{family_title(family)}](#{family_title(family).lower().replace(' ', '-')})); "
                         f"every other key of the section is an option of that component.")
        else:
            lines.append("No component: every key is a core key.")
        lines.append("")
        lines += _markdown_table(section_core_keys(section), "key")
        lines.append("")
    for family in FAMILIES:
        members = sorted((reg for reg in components if reg.family == family), key=lambda reg: reg.name)
        if not members:
            continue
        lines.append(f"## {family_title(family)}")
        lines.append("")
        for reg in members:
            component = _component(reg.family, reg.name, reg.cls)
            lines.append(f"### `{reg.name}` ({reg.family}, plugin `{reg.plugin}`)")
            lines.append("")
            if component["description"]:
                text = component["description"]
                lines.append(text + ("" if text.endswith(".") else "."))
                lines.append("")
            lines.append(f"Select: `{selection_text(component)}`")
            lines.append("")
            lines += _markdown_table(component["options"], "option")
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"
