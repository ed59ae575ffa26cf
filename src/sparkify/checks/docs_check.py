"""The docs site's rules, checked over dbt's target/manifest.json and catalog.json.

    python -m sparkify.checks.docs_check [--target-path target] [--check]

prints the documentation coverage of the project (sources, models, seeds, analyses,
exposures, macros and every column the database holds), then any broken rule:

- every resource, column, macro and macro argument has a description;
- wording used in several places comes from a doc block, not copies;
- every model and seed has a primary key (dbt infers it from constraints and tests),
  and it is held: by PostgreSQL (an enforced contract's `primary_key` constraint
  holds uniqueness and not-null, a unique index on the key uniqueness, a `not_null`
  constraint not-null), or else by tests: `unique` + `not_null` on a single column,
  or `unique_combination_of_columns` + `not_null` on each column of a composite key
  (a key column whose meta says `nullable_key: true` holds one null on purpose and
  needs no `not_null`);
- only staging models read sources, and no staging model reads another one;
- no SQL names a relation itself: schema-qualified names (`raw.events`) and bare
  relation names outside `ref()`/`source()` are refused.

With --check it exits 1 when a rule is broken. The generic rules loop over the
manifest, so a new model, column or macro is held to them without a change here.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

PACKAGE = "sparkify"
STAGING_DIR = "models/staging/"
# Wording repeated at least this many words long must come from a doc block.
SHARED_WORDING_MIN_WORDS = 5


@dataclass
class Coverage:
    """How many things of one kind are documented, and which are not."""

    kind: str
    total: int = 0
    missing: list[str] = field(default_factory=list)

    @property
    def documented(self) -> int:
        return self.total - len(self.missing)

    @property
    def percent(self) -> float:
        return 100.0 if self.total == 0 else 100.0 * self.documented / self.total

    def count(self, name: str, description: str | None) -> None:
        self.total += 1
        if not (description or "").strip():
            self.missing.append(name)


def load_artifacts(target: Path) -> tuple[dict, dict]:
    """The manifest and catalog that `dbt docs generate` wrote into `target`."""
    manifest = json.loads((target / "manifest.json").read_text())
    catalog = json.loads((target / "catalog.json").read_text())
    return manifest, catalog


def _own(resources: dict) -> list[dict]:
    return [res for res in resources.values() if res.get("package_name") == PACKAGE]


def _columns(resource: dict, catalog_entry: dict | None) -> dict[str, str]:
    """Every column of a resource, named in its YAML or found in the database, with its
    description ('' when undocumented)."""
    documented = {
        name.lower(): col.get("description", "") for name, col in resource["columns"].items()
    }
    in_database = {name.lower() for name in (catalog_entry or {}).get("columns", {})}
    return {name: documented.get(name, "") for name in sorted(set(documented) | in_database)}


def macro_signature(macro: dict) -> list[str]:
    """The argument names in a macro's (or generic test's) Jinja signature."""
    found = re.search(
        r"{%-?\s*(?:macro|test|materialization)\s+\w+\s*\((.*?)\)\s*-?%}",
        macro["macro_sql"],
        flags=re.DOTALL,
    )
    if not found or not found.group(1).strip():
        return []
    names, depth, current = [], 0, ""
    for char in found.group(1) + ",":
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        if char == "," and depth == 0:
            names.append(current.split("=")[0].strip())
            current = ""
        else:
            current += char
    return [name for name in names if name]


def coverage(manifest: dict, catalog: dict) -> list[Coverage]:
    """Documentation coverage of every kind of resource of the project."""
    kinds = {
        kind: Coverage(kind)
        for kind in (
            "sources",
            "source columns",
            "models",
            "model columns",
            "seeds",
            "seed columns",
            "snapshots",
            "snapshot columns",
            "analyses",
            "exposures",
            "macros",
            "macro arguments",
        )
    }
    for source in _own(manifest["sources"]):
        name = f"{source['source_name']}.{source['name']}"
        described = source["description"] if source["source_description"].strip() else ""
        kinds["sources"].count(name, described)
        entry = catalog.get("sources", {}).get(source["unique_id"])
        for column, text in _columns(source, entry).items():
            kinds["source columns"].count(f"{name}.{column}", text)

    plural = {"model": "models", "seed": "seeds", "snapshot": "snapshots", "analysis": "analyses"}
    for node in _own(manifest["nodes"]):
        kind = plural.get(node["resource_type"])
        if kind is None:
            continue
        kinds[kind].count(node["name"], node["description"])
        if node["resource_type"] == "analysis":
            continue
        entry = catalog.get("nodes", {}).get(node["unique_id"])
        for column, text in _columns(node, entry).items():
            kinds[f"{kind[:-1]} columns"].count(f"{node['name']}.{column}", text)

    for exposure in _own(manifest["exposures"]):
        kinds["exposures"].count(exposure["name"], exposure["description"])

    macros = _own(manifest["macros"])
    names = {macro["name"] for macro in macros}
    for macro in macros:
        kinds["macros"].count(macro["name"], macro["description"])
        declared = {arg["name"]: arg.get("description", "") for arg in macro["arguments"]}
        # An adapter implementation (postgres__x) takes the arguments of the
        # dispatching macro x, which documents them.
        prefix, _, base = macro["name"].partition("__")
        is_implementation = bool(base) and base in names and prefix != "test"
        signature = [] if is_implementation else macro_signature(macro)
        for arg in sorted(set(signature) | set(declared)):
            kinds["macro arguments"].count(f"{macro['name']}({arg})", declared.get(arg, ""))
    return list(kinds.values())


def _tests_by_node(manifest: dict) -> dict[str, list[dict]]:
    tests: dict[str, list[dict]] = defaultdict(list)
    for node in manifest["nodes"].values():
        if node["resource_type"] != "test" or not node.get("test_metadata"):
            continue
        if not node["config"].get("enabled", True):
            continue
        # A warn-severity test reports; it does not hold a key.
        if str(node["config"].get("severity", "error")).lower() != "error":
            continue
        for parent in node["depends_on"]["nodes"]:
            tests[parent].append(node)
    return tests


def _nullable_key(node: dict, column: str) -> bool:
    """A key column declared to hold a null on purpose (column meta
    `nullable_key: true`, e.g. one row for the plays without a date): its
    `unique` test still counts the null, but no not_null test is asked for."""
    for name, info in node["columns"].items():
        if name.lower() == column.lower():
            meta = {**info.get("meta", {}), **info.get("config", {}).get("meta", {})}
            return meta.get("nullable_key") is True
    return False


def primary_key_problems(manifest: dict) -> list[str]:
    """Models and seeds without a primary key, or whose key is not tested."""
    problems = []
    tests = _tests_by_node(manifest)
    for node in _own(manifest["nodes"]):
        if node["resource_type"] not in ("model", "seed", "snapshot"):
            continue
        own_tests = tests.get(node["unique_id"], [])

        def tested(test_name: str, column: str, own_tests: list[dict] = own_tests) -> bool:
            return any(
                t["test_metadata"]["name"] == test_name
                and (t.get("column_name") or "").lower() == column.lower()
                for t in own_tests
            )

        # dbt infers models' keys (constraints first, then tests); a model whose
        # key is a unique index (an incremental table without a contract) and
        # seeds and snapshots get none: their key is the index's columns, or the
        # columns tested unique + not_null.
        indexes = _unique_indexes(node)
        key = (
            node.get("primary_key")
            or (sorted(indexes[0]) if indexes else [])
            or [
                column
                for column in node["columns"]
                if tested("unique", column) and tested("not_null", column)
            ]
        )
        if not key:
            problems.append(f"{node['name']}: no primary key (no key constraint or tests)")
            continue
        combinations = [
            set(t["test_metadata"]["kwargs"].get("combination_of_columns") or [])
            for t in own_tests
            if t["test_metadata"]["name"] == "unique_combination_of_columns"
        ]
        enforced = _enforced_constraints(node)
        unique = (
            any(tested("unique", column) for column in key)
            or any(combination and combination <= set(key) for combination in combinations)
            or enforced["primary_key"] == {c.lower() for c in key}
            or any(index <= {c.lower() for c in key} for index in _unique_indexes(node))
        )
        if not unique:
            problems.append(f"{node['name']}: primary key {sorted(key)} has no uniqueness test")
        for column in key:
            if _nullable_key(node, column) or column.lower() in enforced["not_null"]:
                continue
            if not tested("not_null", column):
                problems.append(f"{node['name']}: primary key column {column} has no not_null test")
    return problems


def _enforced_constraints(node: dict) -> dict[str, set[str]]:
    """The columns an enforced contract makes PostgreSQL hold: the primary key's
    (unique and not null) and the not-null ones."""
    held: dict[str, set[str]] = {"primary_key": set(), "not_null": set()}
    if not node.get("contract", {}).get("enforced"):
        return held
    for name, column in node["columns"].items():
        for constraint in column.get("constraints", []):
            if constraint["type"] in held:
                held[constraint["type"]].add(name.lower())
    for constraint in node.get("constraints", []):
        if constraint["type"] in held:
            held[constraint["type"]].update(c.lower() for c in constraint.get("columns", []))
    held["not_null"] |= held["primary_key"]
    return held


def _unique_indexes(node: dict) -> list[set[str]]:
    """The column sets of the unique indexes a model's config asks for."""
    return [
        {c.lower() for c in index["columns"]}
        for index in node["config"].get("indexes") or []
        if index.get("unique")
    ]


def layer_problems(manifest: dict) -> list[str]:
    """Sources read outside staging, and staging models that read staging models."""
    problems = []
    models = {
        uid: node for uid, node in manifest["nodes"].items() if node["resource_type"] == "model"
    }

    def is_staging(node: dict) -> bool:
        return node["original_file_path"].startswith(STAGING_DIR)

    for node in _own(models):
        parents = node["depends_on"]["nodes"]
        if not is_staging(node):
            for parent in parents:
                if parent.startswith("source."):
                    problems.append(f"{node['name']}: reads source {parent} outside staging")
        else:
            for parent in parents:
                if parent in models and is_staging(models[parent]):
                    problems.append(f"{node['name']}: staging model reads staging {parent}")
    return problems


_JINJA = re.compile(r"{{.*?}}|{%.*?%}|{#.*?#}", flags=re.DOTALL)
_SQL_COMMENT = re.compile(r"--[^\n]*|/\*.*?\*/", flags=re.DOTALL)
_STRING = re.compile(r"'(?:[^']|'')*'")
_CTE_OR_ALIAS = re.compile(r"\b(\w+)\s+as\s*\(", flags=re.IGNORECASE)
_FROM_TARGET = re.compile(r"\b(?:from|join)\s+(\w+)\b(?!\s*\()", flags=re.IGNORECASE)


def sql_without_jinja(raw_code: str) -> str:
    """The SQL text with Jinja, comments and string literals taken out: what is left
    names relations only if someone wrote a name by hand."""
    code = _JINJA.sub(" __jinja__ ", raw_code)
    code = _SQL_COMMENT.sub(" ", code)
    return _STRING.sub("''", code).lower()


def hard_coded_relations(manifest: dict) -> list[str]:
    """SQL that names a relation of the warehouse itself instead of ref() or source()."""
    schemas, relations = {"public"}, set()
    for node in manifest["nodes"].values():
        if node["resource_type"] in ("model", "seed", "snapshot"):
            schemas.add(node["schema"].lower())
            relations.update({node["name"].lower(), (node.get("alias") or node["name"]).lower()})
    for source in manifest["sources"].values():
        schemas.add(source["schema"].lower())
        relations.add((source.get("identifier") or source["name"]).lower())
    qualified = re.compile(
        r'(?<![\w."])"?(' + "|".join(map(re.escape, sorted(schemas))) + r')"?\s*\.\s*"?[a-z_]'
    )
    problems = []
    for node in _own(manifest["nodes"]):
        is_singular_test = node["resource_type"] == "test" and not node.get("test_metadata")
        if node["resource_type"] not in ("model", "analysis", "snapshot") and not is_singular_test:
            continue
        code = sql_without_jinja(node["raw_code"])
        for found in qualified.finditer(code):
            problems.append(f"{node['name']}: schema-qualified name {found.group(0)!r}…")
        local_names = {name.lower() for name in _CTE_OR_ALIAS.findall(code)}
        for found in _FROM_TARGET.finditer(code):
            name = found.group(1)
            if name in relations and name not in local_names:
                problems.append(f"{node['name']}: reads relation {name!r} without ref()/source()")
    return problems


def _descriptions(manifest: dict) -> list[tuple[str, str]]:
    """(place, description) of everything the project describes."""
    places: list[tuple[str, str]] = []
    for source in _own(manifest["sources"]):
        name = f"source {source['source_name']}.{source['name']}"
        places.append((name, source["description"]))
        places += [(f"{name}.{col}", c["description"]) for col, c in source["columns"].items()]
    for node in _own(manifest["nodes"]):
        if node["resource_type"] in ("model", "seed", "snapshot", "analysis"):
            places.append((node["name"], node["description"]))
            places += [
                (f"{node['name']}.{col}", c["description"]) for col, c in node["columns"].items()
            ]
    for exposure in _own(manifest["exposures"]):
        places.append((f"exposure {exposure['name']}", exposure["description"]))
    for macro in _own(manifest["macros"]):
        places.append((f"macro {macro['name']}", macro["description"]))
        places += [(f"{macro['name']}({a['name']})", a["description"]) for a in macro["arguments"]]
    return places


def _normal(text: str) -> str:
    return " ".join(text.split())


def repeated_wording(manifest: dict) -> list[str]:
    """Descriptions written out word for word in several places instead of a doc block.

    A doc block renders into every description that uses it, so identical texts are
    fine when what is left after taking the doc blocks' contents out is short.
    """
    blocks = sorted(
        (_normal(doc["block_contents"]) for doc in _own(manifest["docs"])),
        key=len,
        reverse=True,
    )
    by_text: dict[str, list[str]] = defaultdict(list)
    for place, text in _descriptions(manifest):
        if _normal(text):
            by_text[_normal(text)].append(place)
    problems = []
    for text, places in sorted(by_text.items()):
        if len(places) < 2:
            continue
        rest = text
        for block in blocks:
            if block:
                rest = rest.replace(block, " ")
        if len(rest.split()) >= SHARED_WORDING_MIN_WORDS:
            shown = text if len(text) <= 70 else text[:67] + "..."
            problems.append(
                f"'{shown}' is written out in {', '.join(places)}: put it in a doc block"
            )
    return problems


def problems(manifest: dict, catalog: dict) -> list[str]:
    """Every broken rule: undocumented things first, then the structural rules."""
    found = [
        f"undocumented {cov.kind[:-1] if cov.kind.endswith('s') else cov.kind}: {name}"
        for cov in coverage(manifest, catalog)
        for name in cov.missing
    ]
    return (
        found
        + repeated_wording(manifest)
        + primary_key_problems(manifest)
        + layer_problems(manifest)
        + hard_coded_relations(manifest)
    )


def coverage_table(rows: list[Coverage]) -> str:
    width = max(len(row.kind) for row in rows)
    lines = [f"{'documentation coverage':<{width}}  documented / total"]
    for row in rows:
        if row.total:
            lines.append(
                f"{row.kind:<{width}}  {row.documented:>5} / {row.total:<5} {row.percent:6.1f}%"
            )
    total = sum(row.total for row in rows)
    documented = sum(row.documented for row in rows)
    percent = 100.0 * documented / total if total else 100.0
    lines.append(f"{'all':<{width}}  {documented:>5} / {total:<5} {percent:6.1f}%")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sparkify.checks.docs_check", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--target-path", type=Path, default=Path("target"))
    parser.add_argument("--check", action="store_true", help="exit 1 when a rule is broken")
    args = parser.parse_args(argv)
    try:
        manifest, catalog = load_artifacts(args.target_path)
    except FileNotFoundError as exc:
        print(
            f"docs_check: {exc.filename} is missing: run `make docs-build` first", file=sys.stderr
        )
        return 2
    print(coverage_table(coverage(manifest, catalog)))
    broken = problems(manifest, catalog)
    for problem in broken:
        print(f"  rule broken: {problem}")
    if not broken:
        print("docs rules: all hold")
    return 1 if broken and args.check else 0


if __name__ == "__main__":
    sys.exit(main())
