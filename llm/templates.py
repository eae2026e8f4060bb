"""Text templates: what text of each node type the encoder sees (configurable)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import pandas as pd

from scenerec.records import Dataset

_URLISH = re.compile(r"^(https?://|www\.)", re.IGNORECASE)
_IDISH_KEYS = re.compile(r"(^|_)(id|ids|url|uri|href|image|picture|asin|sku|isbn)($|_)", re.IGNORECASE)


@dataclass(frozen=True)
class TextTemplates:
    """Format strings per node type; unknown or empty fields are left out cleanly.

    * ``item``: fields ``title``, ``description``, ``attributes`` (the most telling attributes as ``key: value``
      pairs, at most ``max_attributes``; ids, URLs and values the title or description already contain are left
      out; or only ``attribute_keys`` when given), ``scene``;
    * ``entity``: ``name`` (the id when there is no name), ``type``, ``id``;
    * ``scene``: ``name`` (the id when there is no name), ``description``, ``id``.

    An entity with neither name nor type, and a scene with neither name nor description, get no text (``""``): its
    id alone (e.g. a Freebase mid such as ``m.04ctbw8``) says nothing an encoder could use. The feature step gives
    nodes with an empty text no embedding. An item's text is never replaced by its id.
    """

    item: str = "{title}. {description}. {attributes}"
    entity: str = "{name} ({type})"
    scene: str = "{name}: {description}"
    max_attributes: int = 4
    attribute_keys: tuple[str, ...] | None = None
    max_chars: int = 2000

    def _attributes(self, text: str, seen: str = "") -> str:
        """``key: value`` pairs of the most telling attributes; a value already in ``seen`` (the title and
        description, lower-cased) is not repeated."""
        if not text:
            return ""
        try:
            attrs = json.loads(text)
        except json.JSONDecodeError:
            return ""
        keys = (
            self.attribute_keys if self.attribute_keys is not None else [k for k in attrs if not _IDISH_KEYS.search(k)]
        )
        parts = []
        for k in keys:
            v = attrs.get(k)
            if v in (None, "") or (isinstance(v, str) and _URLISH.match(v)):
                continue
            if str(v).strip().lower() in seen:
                continue
            parts.append(f"{k}: {v}")
            if len(parts) >= self.max_attributes:
                break
        return "; ".join(parts)

    def _fill(self, template: str, fields: dict[str, str]) -> str:
        text = template.format_map(_Blank(fields))
        # Tidy separators left by empty fields: ". . x" -> "x", "name ()" -> "name".
        text = re.sub(r"\(\s*\)", "", text)
        text = re.sub(r"(\s*[.;:,]\s*)+(?=[.;:,]|$)", "", text)
        text = re.sub(r"^\s*[.;:,]\s*", "", text)
        text = re.sub(r"\s+", " ", text).strip()
        return text[: self.max_chars]

    def item_text(self, title: str, description: str = "", attributes: str = "", scene: str = "") -> str:
        """The text of one item (``attributes``: the JSON object string the canonical item table holds)."""
        attrs = self._attributes(attributes, f"{title} {description}".lower())
        return self._fill(self.item, {"title": title, "description": description, "attributes": attrs, "scene": scene})

    def items(self, ds: Dataset) -> list[str]:
        rows = ds.items[["id", "scene", "title", "description", "attributes"]].to_dict("records")
        return [
            self.item_text(str(r["title"]), str(r["description"]), str(r["attributes"]), str(r["scene"])) for r in rows
        ]

    def _named(self, template: str, frame: pd.DataFrame, detail: str) -> list[str]:
        """Texts of nodes with a ``name`` and one ``detail`` column: the id stands in for a missing name, and a
        node with neither name nor detail gets no text (``""``)."""
        out = []
        for r in frame[["id", "name", detail]].to_dict("records"):
            node_id, name, extra = str(r["id"]), _text(r["name"]), _text(r[detail])
            out.append(
                self._fill(template, {"name": name or node_id, detail: extra, "id": node_id}) if name or extra else ""
            )
        return out

    def entities(self, ds: Dataset) -> list[str]:
        return self._named(self.entity, ds.entities, "type")

    def scenes(self, ds: Dataset) -> list[str]:
        return self._named(self.scene, ds.scenes, "description")

    def for_label(self, label: str, ds: Dataset) -> list[str]:
        """Texts of every node of ``label`` (``Item``, ``Entity``, ``Scene``), in the dataset's row order."""
        if label == "Item":
            return self.items(ds)
        if label == "Entity":
            return self.entities(ds)
        if label == "Scene":
            return self.scenes(ds)
        raise ValueError(f"no text template for label {label!r} (expected Item, Entity or Scene)")


def _text(value: object) -> str:
    """A field as text: missing values (None, NaN, pandas NA) and blanks are ``""``."""
    if value is None or value is pd.NA or (isinstance(value, float) and value != value):
        return ""
    return str(value).strip()


class _Blank(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return ""


def texts_frame(ds: Dataset, templates: TextTemplates | None = None) -> pd.DataFrame:
    """All texts the encoder sees, one row per node: ``label``, ``id``, ``text`` (for inspection)."""
    t = templates or TextTemplates()
    frames = []
    for label, table in (("Scene", ds.scenes), ("Item", ds.items), ("Entity", ds.entities)):
        frames.append(pd.DataFrame({"label": label, "id": table["id"].astype(str), "text": t.for_label(label, ds)}))
    return pd.concat(frames, ignore_index=True)
