#!/usr/bin/env python3
"""Warden through standard clients that know nothing of Warden: PyJWT's `PyJWKClient` verifies an
access token from the `jwks_uri` that OpenID discovery names, before and after RotateSigningKey,
and plain HTTP replays the AuthZEN specification's evaluation request (its identifiers swapped for
Warden's) and compares the decision with CheckPermission's.

Reads WARDEN_ADDR, WARDEN_HTTP_URL (the HTTP listener, e.g. http://127.0.0.1:8080),
WARDEN_OPERATOR_TOKEN and WARDEN_CA_FILE (as quickstart.py). Exits non-zero on any unexpected answer.
"""
import json
import os
import pathlib
import secrets
import ssl
import urllib.error
import urllib.request

import grpc
import jwt

from quickstart import (  # Generates the stubs on import.
    PASSWORD, bearer, expect, api_key_service_pb2, auth_service_pb2, auth_service_pb2_grpc,
    api_key_service_pb2_grpc, authorization_service_pb2, authorization_service_pb2_grpc,
    organization_service_pb2, organization_service_pb2_grpc,
)


def main() -> None:
    address = os.environ.get("WARDEN_ADDR", "127.0.0.1:50051")
    base = os.environ.get("WARDEN_HTTP_URL", "http://127.0.0.1:8080").rstrip("/")
    operator = os.environ["WARDEN_OPERATOR_TOKEN"]
    ca_file = os.environ.get("WARDEN_CA_FILE")
    context = ssl.create_default_context(cafile=ca_file) if ca_file else None
    if ca_file:
        credentials = grpc.ssl_channel_credentials(pathlib.Path(ca_file).read_bytes())
        channel = grpc.secure_channel(address, credentials)
    else:
        channel = grpc.insecure_channel(address)
    auth = auth_service_pb2_grpc.AuthServiceStub(channel)

    email = f"grace-{secrets.token_hex(4)}@example.com"
    created = organization_service_pb2_grpc.OrganizationServiceStub(channel).CreateOrganization(
        organization_service_pb2.CreateOrganizationRequest(
            name="Standard clients", owner_email=email, owner_first_name="Grace",
            owner_last_name="Hopper", owner_password=PASSWORD), metadata=bearer(operator))
    org, owner = created.organization.id, created.owner.id

    def sign_in() -> str:
        return auth.SignIn(auth_service_pb2.SignInRequest(email=email, password=PASSWORD)).access_token

    def get(path: str) -> dict:
        with urllib.request.urlopen(f"{base}{path}", context=context, timeout=10) as response:
            return json.load(response)

    def verify(token: str) -> dict:
        """PyJWT from the discovery document alone: its jwks_uri, its issuer."""
        discovery = get("/.well-known/openid-configuration")
        client = jwt.PyJWKClient(discovery["jwks_uri"], ssl_context=context)
        key = client.get_signing_key_from_jwt(token)
        return jwt.decode(token, key, algorithms=["EdDSA"], issuer=discovery["issuer"],
                          audience="warden")

    first = sign_in()
    expect("PyJWKClient verifies an access token from jwks_uri", verify(first)["sub"] == owner)
    auth.RotateSigningKey(auth_service_pb2.RotateSigningKeyRequest(), metadata=bearer(operator))
    second = sign_in()
    expect("a token of the rotated key verifies", verify(second)["sub"] == owner)
    expect("the earlier token still verifies", verify(first)["sub"] == owner)
    expect("the two tokens have different kids",
           jwt.get_unverified_header(first)["kid"] != jwt.get_unverified_header(second)["kid"])

    key = api_key_service_pb2_grpc.ApiKeyServiceStub(channel).CreateApiKey(
        api_key_service_pb2.CreateApiKeyRequest(organization_id=org, name="pep"),
        metadata=bearer(second)).secret
    metadata = get("/.well-known/authzen-configuration")
    expect("AuthZEN metadata names the evaluation endpoint",
           metadata["access_evaluation_endpoint"] == f"{base}/access/v1/evaluation")

    def evaluate(body: dict, token: str | None = key) -> tuple[int, dict]:
        request = urllib.request.Request(
            metadata["access_evaluation_endpoint"], data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json",
                     "X-Request-ID": "bfe9eb29-ab87-4ca3-be83-a1d5d8305716",
                     **({"Authorization": f"Bearer {token}"} if token else {})})
        try:
            with urllib.request.urlopen(request, context=context, timeout=10) as response:
                expect("X-Request-ID echoed", response.headers["X-Request-ID"]
                       == "bfe9eb29-ab87-4ca3-be83-a1d5d8305716")
                return response.status, json.load(response)
        except urllib.error.HTTPError as error:
            return error.code, json.load(error)

    checks = authorization_service_pb2_grpc.AuthorizationServiceStub(channel)
    for permission in ["payments.refund", "payments.read"]:
        # The specification's example request, with Warden's identifiers.
        status, answer = evaluate({
            "subject": {"type": "user", "id": owner},
            "resource": {"type": "organization", "id": org},
            "action": {"name": permission, "properties": {"method": "GET"}},
            "context": {"time": "1985-10-26T01:22-07:00", "explain": True},
        })
        grpc_answer = checks.CheckPermission(authorization_service_pb2.CheckPermissionRequest(
            organization_id=org, user_id=owner, permission=permission, explain=True),
            metadata=bearer(key))
        expect(f"AuthZEN {permission}: {answer} equals CheckPermission's",
               status == 200 and answer == {"decision": grpc_answer.allowed,
                                            "context": {"reason": grpc_answer.reason}})
    status, answer = evaluate({"subject": {"type": "user", "id": owner}}, token=None)
    expect("no API key: 401", status == 401 and answer["error"]["code"] == "unauthenticated")
    status, answer = evaluate({"subject": {"type": "user", "id": owner}})
    expect(f"missing action: 400 ({answer['error']['message']})",
           status == 400 and answer["error"]["field"] == "action")
    print("python standard interfaces: all answers as expected")


if __name__ == "__main__":
    main()
