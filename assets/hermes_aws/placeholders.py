"""Recognise secrets that still hold the library's placeholder value.

The constructs create every token the user did not import as a Secrets Manager
secret holding ``SecretPlaceholder.VALUE`` (src/secrets.ts), to be filled in
after the first deploy. ECS injects secret values as environment variables, so
a placeholder shows up as an environment variable whose value contains it
(a comma-separated multi-workspace value counts too).

Standard library only: the container health check imports this.
"""

from __future__ import annotations

from collections.abc import Mapping

PLACEHOLDER = "HERMES_PLACEHOLDER_SET_ME"

# The settings document may mention the placeholder in free text without being a secret.
_IGNORED = frozenset({"HERMES_AWS_SETTINGS"})


def find_placeholders(environ: Mapping[str, str]) -> list[str]:
    """Names of environment variables whose value contains the placeholder, sorted."""
    return sorted(
        name for name, value in environ.items()
        if name not in _IGNORED and PLACEHOLDER in (value or "")
    )


def describe(names: list[str], *, brief: bool = False) -> str:
    """One line telling an operator which secrets to fill in and how (``brief``: for JSON events)."""
    which = ", ".join(names)
    if brief:
        return (
            f"waiting for secrets: {which} still hold{'s' if len(names) == 1 else ''} {PLACEHOLDER}; "
            "put the real value in the Secrets Manager secret, then force a new deployment"
        )
    return (
        f"waiting for secrets: {which} still hold{'s' if len(names) == 1 else ''} the placeholder "
        f"{PLACEHOLDER}. Store the real value in the Secrets Manager secret behind each "
        "(`aws secretsmanager put-secret-value --secret-id <secret> --secret-string <value>`; "
        "the secret's description says what to paste), then start a new task "
        "(`aws ecs update-service --cluster <cluster> --service <service> --force-new-deployment`): "
        "ECS reads secrets only when a task starts."
    )
