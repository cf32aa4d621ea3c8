"""The README documents every environment variable the settings read (name, default, meaning)."""

import re

from tests.helpers import REPO

READERS = re.compile(
    r"""(?:env\.(?:str|bool|int|float|list|json|url|path)|_required|Env\(\)\.str)\(\s*["']([A-Z][A-Z0-9_]+)["']"""
)


def settings_variables() -> set[str]:
    names: set[str] = set()
    for path in (REPO / "enrs" / "settings").glob("*.py"):
        names.update(READERS.findall(path.read_text(encoding="utf-8")))
    return names


def test_settings_read_variables() -> None:
    # Guard the regex itself: these are read today and must be found.
    assert {"SECRET_KEY", "DATABASE_URL", "REDIS_URL", "ENRS_REGION_CODE", "TRUSTED_PROXY_CIDRS"} <= (
        settings_variables()
    )


def test_readme_configuration_table_lists_every_variable() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    table = readme.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^\| `([A-Z][A-Z0-9_]+)` \|", table, flags=re.MULTILINE))
    missing = settings_variables() - documented
    assert not missing, f"read by enrs/settings but missing from the README table: {sorted(missing)}"
