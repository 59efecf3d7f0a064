"""Regenerate the generated parts of docs/search-space.md from the vocabulary and the presets.

    python scripts/gen_search_space_doc.py          # rewrite the doc in place
    python scripts/gen_search_space_doc.py --check  # exit 1 if the doc is out of date

The doc's hand-written text stays; only the text between the ``<!-- BEGIN name -->`` and
``<!-- END name -->`` markers (``vocabulary`` and ``presets``) is replaced.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from search_spaces.dimensions import Dimension  # noqa: E402
from search_spaces.presets import load_preset, preset_names, preset_space  # noqa: E402
from search_spaces.vocabulary import VOCABULARY, HyperParameter  # noqa: E402

DOC = REPO / "docs" / "search-space.md"
GROUPS = ("architecture", "training", "augmentation")


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "`true`" if value else "`false`"
    if isinstance(value, str):
        return f'`"{value}"`'
    return f"`{value!r}`"


def _allowed(hp: HyperParameter) -> str:
    if hp.kind == "bool":
        return "`true`, `false`"
    if hp.kind == "categorical":
        return ", ".join(_value(c) for c in hp.choices or ())
    close = ")" if hp.high_exclusive else "]"
    kind = "integer" if hp.kind == "int" else "number"
    return f"{kind} in [{hp.low!r}, {hp.high!r}{close}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def vocabulary_table() -> str:
    lines: list[str] = []
    for group in GROUPS:
        lines += [
            f"### {group.capitalize()}",
            "",
            "| Name | Kind | Default | Allowed values | What it does | Seed technique |",
            "|---|---|---|---|---|---|",
        ]
        for hp in VOCABULARY.values():
            if hp.group != group:
                continue
            what = hp.description
            if hp.applies_to:
                applies = "; ".join(
                    f"{k} in {', '.join(str(v) for v in vals)}" for k, vals in hp.applies_to.items()
                )
                what += f" (Only matters when {applies}.)"
            lines.append(
                f"| `{hp.name}` | {hp.kind} | {_value(hp.default)} | {_allowed(hp)} | "
                f"{_cell(what)} | {_cell(hp.seed_technique)} |"
            )
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def _describe(dim: Dimension) -> str:
    body = dim.to_json()
    dtype = body["type"]
    if dtype in ("float", "int"):
        text = f"{dtype} {body['low']!r} .. {body['high']!r}"
        if "step" in body:
            text += f" step {body['step']!r}"
        if body.get("log"):
            text += " (log)"
    elif dtype == "categorical":
        text = "one of " + ", ".join(_value(c) for c in body["choices"])
    else:
        text = "fixed " + _value(body["value"])
    if "when" in body:
        conds = "; ".join(
            f"{k} in {', '.join(str(v) for v in vals)}" for k, vals in body["when"].items()
        )
        text += f", when {conds}"
    return text


def presets_section() -> str:
    lines: list[str] = []
    for name in preset_names():
        space = preset_space(name)
        load_preset(name)  # the raw file parses
        lines += [f"#### `{name}` ({len(space)} dimensions)", ""]
        lines += [f"- `{dim.name}`: {_describe(dim)}" for dim in space]
        try:
            lines += ["", f"Grid size: {space.grid_size()} points."]
        except ValueError:
            lines += ["", "Not enumerable as a grid (has continuous or log dimensions)."]
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


SECTIONS = {"vocabulary": vocabulary_table, "presets": presets_section}


def render(text: str) -> str:
    for name, build in SECTIONS.items():
        pattern = re.compile(rf"(<!-- BEGIN {name} -->\n).*?(<!-- END {name} -->)", flags=re.DOTALL)
        match = pattern.search(text)
        if match is None:
            raise SystemExit(f"{DOC}: missing the markers of section '{name}'")
        replacement = match.group(1) + "\n" + build() + "\n" + match.group(2)
        text = text[: match.start()] + replacement + text[match.end() :]
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the doc is out of date")
    args = parser.parse_args(argv)
    current = DOC.read_text(encoding="utf-8")
    fresh = render(current)
    if args.check:
        if fresh != current:
            print(f"{DOC} is out of date: run python scripts/gen_search_space_doc.py")
            return 1
        return 0
    DOC.write_text(fresh, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
