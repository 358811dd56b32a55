# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Credentials on the node: ``OVE_SECRET_<VAR>=<reference>`` becomes ``<VAR>=<value>`` before training.

A reference is a Secret Manager version (``projects/<p>/secrets/<name>/versions/<v>``, read with the job's
service account through the Secret Manager REST API) or ``file:<path>`` (a mounted secret file; also how
the entry point runs off the cloud). The job request only ever holds the reference.
"""

from __future__ import annotations

import base64
import os
from collections.abc import MutableMapping
from pathlib import Path

from ove_ros.training.cloud.jobs import SECRET_ENV_PREFIX

SECRET_MANAGER_URL = "https://secretmanager.googleapis.com/v1/{name}:access"


class SecretError(RuntimeError):
    """A secret reference that cannot be read."""


def read_secret_manager(name: str) -> str:
    """The payload of a Secret Manager secret version (needs roles/secretmanager.secretAccessor)."""
    import google.auth
    from google.auth.transport.requests import AuthorizedSession

    creds, _ = google.auth.default(scopes=["https://www.googleapis.com/auth/cloud-platform"])
    response = AuthorizedSession(creds).get(SECRET_MANAGER_URL.format(name=name), timeout=30)
    if response.status_code != 200:
        raise SecretError(
            f"Secret Manager refused {name} (HTTP {response.status_code}): grant the job's service account "
            "roles/secretmanager.secretAccessor on the secret"
        )
    return base64.b64decode(response.json()["payload"]["data"]).decode("utf-8")


def read_reference(ref: str) -> str:
    if ref.startswith("file:"):
        path = Path(ref[len("file:") :])
        if not path.is_file():
            raise SecretError(f"secret file {path} does not exist")
        return path.read_text().strip()
    if ref.startswith("projects/") and "/secrets/" in ref:
        return read_secret_manager(ref).strip()
    raise SecretError(f"secret reference {ref!r} is neither projects/.../secrets/... nor file:<path>")


def resolve_secrets(env: MutableMapping[str, str] = os.environ) -> list[str]:
    """Set every ``<VAR>`` named by an ``OVE_SECRET_<VAR>`` reference; returns the variables set.

    A variable already set (e.g. by the person running the entry point) is left alone.
    """
    done = []
    for key in sorted(k for k in env if k.startswith(SECRET_ENV_PREFIX)):
        var = key[len(SECRET_ENV_PREFIX) :]
        if var and not env.get(var):
            env[var] = read_reference(env[key])
            done.append(var)
    return done
