#!/usr/bin/env python3
"""Warden's SCIM 2.0 endpoints checked by an outside suite: `scim2-tester` (python-scim) runs every
check it offers for Users and Groups (discovery, CRUD, PATCH add/remove/replace, query attributes)
against a fresh organisation and SCIM token made over gRPC.

Reads WARDEN_ADDR, WARDEN_HTTP_URL, WARDEN_OPERATOR_TOKEN (as standard_interfaces.py). Prints one
line per check; exits non-zero when a check ends in DEVIATION, ERROR or CRITICAL.
"""
import os
import pathlib
import secrets
import ssl
import sys

import grpc
import httpx2
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_tester import Status, check_server

from quickstart import (  # Generates the stubs on import.
    PASSWORD, bearer, auth_service_pb2, auth_service_pb2_grpc, organization_service_pb2,
    organization_service_pb2_grpc,
)
from warden.v1 import scim_service_pb2, scim_service_pb2_grpc  # noqa: E402

FAILED = {Status.DEVIATION, Status.ERROR, Status.CRITICAL}

# Checks Warden skips by design, each with its reason (README "SCIM 2.0 provisioning" lists them):
# a result whose check and reason match is reported SKIPPED instead of failing.
KNOWN = [
    ("", "userName: must be an email address",
     "a Warden user is its email: scim2-tester creates users with a random userName and no emails"),
    ("check_remove_attribute", "did not remove attribute 'active'",
     "active maps to the user's status, which always has a value"),
    ("check_remove_attribute", "did not remove attribute 'emails'",
     "emails holds the user's email address, which every Warden user has"),
    ("check_remove_attribute", "did not remove attribute 'displayName'",
     "displayName is derived from name.givenName and name.familyName"),
]


def known(result) -> str | None:
    for check, text, why in KNOWN:
        if (not check or result.title == check) and text in (result.reason or ""):
            return why
    return None


def scim_token(ca_file: str | None) -> str:
    address = os.environ.get("WARDEN_ADDR", "127.0.0.1:50051")
    if ca_file:
        credentials = grpc.ssl_channel_credentials(pathlib.Path(ca_file).read_bytes())
        channel = grpc.secure_channel(address, credentials)
    else:
        channel = grpc.insecure_channel(address)
    email = f"scim-{secrets.token_hex(4)}@example.com"
    created = organization_service_pb2_grpc.OrganizationServiceStub(channel).CreateOrganization(
        organization_service_pb2.CreateOrganizationRequest(
            name="SCIM compliance", owner_email=email, owner_first_name="Grace",
            owner_last_name="Hopper", owner_password=PASSWORD),
        metadata=bearer(os.environ["WARDEN_OPERATOR_TOKEN"]))
    access = auth_service_pb2_grpc.AuthServiceStub(channel).SignIn(
        auth_service_pb2.SignInRequest(email=email, password=PASSWORD)).access_token
    reply = scim_service_pb2_grpc.ScimServiceStub(channel).CreateScimToken(
        scim_service_pb2.CreateScimTokenRequest(
            organization_id=created.organization.id, name="scim2-tester"),
        metadata=bearer(access))
    return reply.secret


def main() -> None:
    base = os.environ.get("WARDEN_HTTP_URL", "http://127.0.0.1:8080").rstrip("/")
    ca_file = os.environ.get("WARDEN_CA_FILE")
    verify = ssl.create_default_context(cafile=ca_file) if ca_file else True
    http = httpx2.Client(base_url=f"{base}/scim/v2", verify=verify,
                         headers={"Authorization": f"Bearer {scim_token(ca_file)}"})
    client = SyncSCIMClient(http)
    client.discover()
    results = check_server(client, resource_types=["User", "Group"])
    failed = skipped = 0
    for result in results:
        why = known(result) if result.status in FAILED else None
        if why:
            skipped += 1
            print(f"SKIPPED    {result.title}: {why} ({result.reason})")
            continue
        print(f"{result.status.name:10} {result.title}: {result.reason or ''}")
        failed += result.status in FAILED
    print(f"{len(results)} checks, {failed} failed, {skipped} skipped by design")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
