"""The raw load as one multi-asset: the five landing tables of the dbt source
`sparkify`, landed by `load_raw.py --json` (its exit codes: sparkify.loader.cli.EXIT_CODES).
"""

from collections.abc import Iterator, Mapping

from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    AssetSpec,
    Failure,
    MaterializeResult,
    multi_asset,
)

from sparkify.loader.cli import EXIT_BY_KIND, EXIT_CODES
from sparkify.orchestration import commands
from sparkify.orchestration.settings import Settings

MEANING = {exit.code: exit.meaning for exit in EXIT_CODES}
# Each landing table and the summary's count of what this run put in it.
ROW_COUNTS = {"events": "event_rows", "songs": "song_rows", "rejects": "rejects"}


def raw_assets(keys: Mapping[str, AssetKey], settings: Settings) -> AssetsDefinition:
    """keys: the dbt source's asset key of each landing table, by table name."""

    @multi_asset(
        name="raw_load",
        specs=[_spec(table, key, settings) for table, key in sorted(keys.items())],
        can_subset=False,
    )
    def raw_load(context: AssetExecutionContext) -> Iterator[MaterializeResult]:
        try:
            code, summary = commands.loader_json(
                settings.loader_args(), ok=(EXIT_BY_KIND["ok"], EXIT_BY_KIND["skipped"])
            )
        except commands.CommandFailed as failed:
            raise Failure(
                description=f"load_raw.py exit {failed.exit_code}: {failed.said}",
                metadata={
                    "exit_code": failed.exit_code,
                    "meaning": MEANING.get(failed.exit_code, "unknown exit code"),
                },
            ) from None
        if code == EXIT_BY_KIND["skipped"]:
            context.log.warning(
                "load_raw.py exit %d: %s (%s)",
                code,
                MEANING[code],
                summary["files_unreadable"] or summary["paths_unreadable"],
            )
        shared = {
            "files_loaded": summary["files_loaded"],
            "files_unchanged": summary["files_unchanged"],
            "loads": summary["loads"],
            "exit_code": code,
        }
        for table, key in sorted(keys.items()):
            counted = ROW_COUNTS.get(table)
            rows = {"rows_landed": summary[counted]} if counted else {}
            yield MaterializeResult(asset_key=key, metadata={**shared, **rows})

    return raw_load


def _spec(table: str, key: AssetKey, settings: Settings) -> AssetSpec:
    where = f"lake {settings.lake}" if settings.target == "spark" else "PostgreSQL raw"
    return AssetSpec(
        key=key,
        group_name="raw",
        kinds={"python"},
        description=f"raw.{table}: landed by load_raw.py from {settings.feed} ({where})",
    )
