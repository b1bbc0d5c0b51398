"""``--set KEY=VALUE`` parsing shared by the command lines (``otlp_aiops.cli`` and
``otlp_aiops.features.cli``): one place, so that neither command line imports the other."""

from __future__ import annotations

import typer


def parse_settings(items: list[str] | None, option: str = "--set") -> dict[str, object]:
    """``KEY=VALUE`` strings (VALUE is YAML) -> a dict; a malformed item is a one-line error naming
    it (``error: --set 'a=[1,': the value is not valid YAML (…)``, exit 2), never a traceback."""
    import yaml

    out: dict[str, object] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        why = None
        if not sep or not key.strip():
            why = "expected KEY=VALUE"
        else:
            try:
                out[key.strip()] = yaml.safe_load(value)
            except yaml.YAMLError as e:
                problem = str(getattr(e, "problem", None) or e).splitlines()[0]
                why = f"the value is not valid YAML ({problem})"
        if why:
            typer.echo(f"error: {option} {item!r}: {why}", err=True)
            raise typer.Exit(2)
    return out
