#!/usr/bin/env python3
"""Warden from Python: stubs generated from proto/ by grpcio-tools, then the README's session.

Reads WARDEN_ADDR (default 127.0.0.1:50051), WARDEN_OPERATOR_TOKEN, and WARDEN_CA_FILE (the PEM CA
of a server that serves TLS; unset: plaintext); creates an organisation,
signs its owner in, creates an API key, checks a permission for the owner (allowed) and for an
invited read-only teammate (denied), and branches on the ErrorInfo reason of a refused check.
Exits non-zero when any answer is not the expected one.
"""
import os
import pathlib
import secrets
import sys

import grpc
from grpc_tools import protoc

HERE = pathlib.Path(__file__).resolve().parent
PROTO_ROOT = HERE.parent.parent / "proto"
GENERATED = HERE / "generated"


def generate_stubs() -> None:
    """Compiles every .proto under proto/ into generated/ (bundled protoc; no system install)."""
    GENERATED.mkdir(exist_ok=True)
    files = sorted(str(p.relative_to(PROTO_ROOT)) for p in PROTO_ROOT.rglob("*.proto"))
    well_known = pathlib.Path(protoc.__file__).parent / "_proto"
    args = ["grpc_tools.protoc", f"-I{PROTO_ROOT}", f"-I{well_known}",
            f"--python_out={GENERATED}", f"--grpc_python_out={GENERATED}", *files]
    if protoc.main(args) != 0:
        sys.exit("protoc failed")
    sys.path.insert(0, str(GENERATED))


generate_stubs()

from google.rpc import error_details_pb2  # noqa: E402  (after generation, by design)
from grpc_status import rpc_status  # noqa: E402
from warden.v1 import (  # noqa: E402
    api_key_service_pb2, api_key_service_pb2_grpc, auth_service_pb2, auth_service_pb2_grpc,
    authorization_service_pb2, authorization_service_pb2_grpc, errors_pb2, grant_pb2,
    notification_service_pb2, notification_service_pb2_grpc, organization_service_pb2,
    organization_service_pb2_grpc, user_service_pb2, user_service_pb2_grpc,
)

PASSWORD = "vivid orchard lantern mosaic"


def expect(what: str, ok: bool) -> None:
    print(("ok   " if ok else "FAIL ") + what)
    if not ok:
        sys.exit(1)


def bearer(token: str):
    return (("authorization", f"Bearer {token}"),)


def error_reason(error: grpc.RpcError) -> str:
    """The `reason` of the google.rpc.ErrorInfo every Warden error carries ("" if none)."""
    status = rpc_status.from_call(error)
    for detail in status.details if status else []:
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info) and info.domain == "warden":
            return info.reason
    return ""


def main() -> None:
    address = os.environ.get("WARDEN_ADDR", "127.0.0.1:50051")
    operator = os.environ["WARDEN_OPERATOR_TOKEN"]
    run = secrets.token_hex(4)  # Emails are unique across organisations: one set per run.
    owner_email, teammate_email = f"ada-{run}@example.com", f"alan-{run}@example.com"
    ca_file = os.environ.get("WARDEN_CA_FILE")
    if ca_file:
        credentials = grpc.ssl_channel_credentials(pathlib.Path(ca_file).read_bytes())
        channel = grpc.secure_channel(address, credentials)
    else:
        channel = grpc.insecure_channel(address)
    organizations = organization_service_pb2_grpc.OrganizationServiceStub(channel)
    auth = auth_service_pb2_grpc.AuthServiceStub(channel)
    api_keys = api_key_service_pb2_grpc.ApiKeyServiceStub(channel)
    checks = authorization_service_pb2_grpc.AuthorizationServiceStub(channel)
    users = user_service_pb2_grpc.UserServiceStub(channel)
    outbox = notification_service_pb2_grpc.NotificationServiceStub(channel)

    created = organizations.CreateOrganization(organization_service_pb2.CreateOrganizationRequest(
        name=f"Acme {run}", owner_email=owner_email, owner_first_name="Ada",
        owner_last_name="Lovelace", owner_password=PASSWORD), metadata=bearer(operator))
    org, owner = created.organization.id, created.owner.id
    print(f"organisation {org}, owner {owner}")

    access = auth.SignIn(auth_service_pb2.SignInRequest(
        email=owner_email, password=PASSWORD)).access_token
    expect("owner signed in", bool(access))
    key = api_keys.CreateApiKey(api_key_service_pb2.CreateApiKeyRequest(
        organization_id=org, name="backend"), metadata=bearer(access)).secret
    expect("API key created", bool(key))

    def check(user: str, permission: str):
        return checks.CheckPermission(authorization_service_pb2.CheckPermissionRequest(
            organization_id=org, user_id=user, permission=permission, explain=True),
            metadata=bearer(key))

    decision = check(owner, "payments.refund")
    print(f"owner payments.refund: allowed={decision.allowed} ({decision.reason})")
    expect("owner may refund", decision.allowed)

    # A read-only teammate: invited by the owner, the token read from the outbox (operator).
    users.InviteUser(user_service_pb2.InviteUserRequest(
        organization_id=org, email=teammate_email, first_name="Alan", last_name="Turing",
        grants=[grant_pb2.Grant(role_id="read_only", all_entities=True)]),
        metadata=bearer(access))
    pending = outbox.ListPendingNotifications(
        notification_service_pb2.ListPendingNotificationsRequest(page_size=500),
        metadata=bearer(operator)).notifications
    invitation = next((n for n in pending if n.recipient == teammate_email), None)
    expect("invitation found in the outbox", invitation is not None)
    outbox.AcknowledgeNotifications(notification_service_pb2.AcknowledgeNotificationsRequest(
        ids=[invitation.id]), metadata=bearer(operator))
    teammate = users.AcceptInvitation(user_service_pb2.AcceptInvitationRequest(
        token=invitation.token, password="alan chooses a long passphrase")).user.id

    decision = check(teammate, "payments.refund")
    print(f"teammate payments.refund: allowed={decision.allowed} ({decision.reason})")
    expect("read-only teammate may not refund", not decision.allowed)

    # Branch on the ErrorInfo reason, never on the message.
    try:
        check(owner, "payments.teleport")
        expect("an unknown permission is refused", False)
    except grpc.RpcError as error:
        reason = error_reason(error)
        invalid = errors_pb2.ErrorReason.Name(errors_pb2.ERROR_REASON_INVALID_FIELD)
        if reason == invalid.removeprefix("ERROR_REASON_"):
            print(f"unknown permission refused: {error.code().name} {reason}")
        elif reason == "THROTTLED":
            sys.exit("throttled: retry later")
        expect("an unknown permission is refused with INVALID_FIELD",
               error.code() == grpc.StatusCode.INVALID_ARGUMENT and reason == "INVALID_FIELD")
    print("python quickstart: all answers as expected")


if __name__ == "__main__":
    main()
