// Warden from TypeScript: @grpc/grpc-js with @grpc/proto-loader reading proto/ at run time, typed
// by proto-loader-gen-types (`npm run generate`). Reads WARDEN_ADDR (default 127.0.0.1:50051),
// WARDEN_OPERATOR_TOKEN, and WARDEN_CA_FILE (the PEM CA of a server that serves TLS; unset:
// plaintext); creates an organisation, signs its owner in, creates an API key, checks a
// permission for the owner (allowed) and for an invited read-only teammate (denied), and branches
// on the ErrorInfo reason of a refused check. Exits non-zero when an answer is not the expected one.
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import * as protobuf from "protobufjs";
import { randomBytes } from "node:crypto";
import { readFileSync, readdirSync } from "node:fs";
import * as path from "node:path";

import type { ProtoGrpcType as ApiKeys } from "./generated/api_key_service";
import type { ProtoGrpcType as Auth } from "./generated/auth_service";
import type { ProtoGrpcType as Authorization } from "./generated/authorization_service";
import type { ProtoGrpcType as Notifications } from "./generated/notification_service";
import type { ProtoGrpcType as Organizations } from "./generated/organization_service";
import type { ProtoGrpcType as Users } from "./generated/user_service";

const PROTO_ROOT = path.resolve(__dirname, "..", "..", "..", "proto");
const PASSWORD = "vivid orchard lantern mosaic";

// google.rpc.Status and ErrorInfo, the two messages needed to read `grpc-status-details-bin`.
const rpc = protobuf.Root.fromJSON({
  nested: {
    google: {
      nested: {
        protobuf: { nested: { Any: { fields: { type_url: { type: "string", id: 1 }, value: { type: "bytes", id: 2 } } } } },
        rpc: {
          nested: {
            Status: {
              fields: {
                code: { type: "int32", id: 1 },
                message: { type: "string", id: 2 },
                details: { rule: "repeated", type: "google.protobuf.Any", id: 3 },
              },
            },
            ErrorInfo: {
              fields: {
                reason: { type: "string", id: 1 },
                domain: { type: "string", id: 2 },
              },
            },
          },
        },
      },
    },
  },
});

/** The `reason` of the google.rpc.ErrorInfo every Warden error carries ("" if none). */
function errorReason(error: grpc.ServiceError): string {
  const [bytes] = error.metadata?.get("grpc-status-details-bin") ?? [];
  if (!(bytes instanceof Buffer)) return "";
  const status = rpc.lookupType("google.rpc.Status").decode(bytes) as unknown as {
    details: { type_url: string; value: Uint8Array }[];
  };
  for (const any of status.details) {
    if (any.type_url.endsWith("/google.rpc.ErrorInfo")) {
      const info = rpc.lookupType("google.rpc.ErrorInfo").decode(any.value) as unknown as { reason: string; domain: string };
      if (info.domain === "warden") return info.reason;
    }
  }
  return "";
}

function expect(what: string, ok: boolean): void {
  console.log(`${ok ? "ok  " : "FAIL"} ${what}`);
  if (!ok) process.exit(1);
}

function bearer(token: string): grpc.Metadata {
  const metadata = new grpc.Metadata();
  metadata.set("authorization", `Bearer ${token}`);
  return metadata;
}

/**
 * Turns a generated unary method into a promise. The types come from the method's last overload,
 * `(request, callback)`; the call passes metadata too, which every overload accepts.
 */
function unary<Req, Res>(
  client: grpc.Client,
  method: (request: Req, callback: grpc.requestCallback<Res>) => grpc.ClientUnaryCall,
  request: Req,
  metadata: grpc.Metadata = new grpc.Metadata(),
): Promise<Res> {
  const withMetadata = method as unknown as (
    request: Req, metadata: grpc.Metadata, callback: grpc.requestCallback<Res>) => grpc.ClientUnaryCall;
  return new Promise((resolve, reject) =>
    withMetadata.call(client, request, metadata, (error, reply) =>
      error || reply === undefined ? reject(error) : resolve(reply),
    ),
  );
}

async function main(): Promise<void> {
  const address = process.env.WARDEN_ADDR ?? "127.0.0.1:50051";
  const operator = process.env.WARDEN_OPERATOR_TOKEN;
  if (!operator) throw new Error("set WARDEN_OPERATOR_TOKEN");
  const files = readdirSync(path.join(PROTO_ROOT, "warden", "v1")).map((f) => `warden/v1/${f}`);
  const definition = protoLoader.loadSync(files, {
    includeDirs: [PROTO_ROOT],
    longs: String,
    enums: String,
    defaults: true,
    oneofs: true,
  });
  const v1 = (grpc.loadPackageDefinition(definition) as unknown as ApiKeys & Auth & Authorization &
    Notifications & Organizations & Users).warden.v1;
  const caFile = process.env.WARDEN_CA_FILE;
  const credentials = caFile
    ? grpc.credentials.createSsl(readFileSync(caFile))
    : grpc.credentials.createInsecure();
  const organizations = new v1.OrganizationService(address, credentials);
  const auth = new v1.AuthService(address, credentials);
  const apiKeys = new v1.ApiKeyService(address, credentials);
  const checks = new v1.AuthorizationService(address, credentials);
  const users = new v1.UserService(address, credentials);
  const outbox = new v1.NotificationService(address, credentials);

  const run = randomBytes(4).toString("hex"); // Emails are unique across organisations.
  const ownerEmail = `ada-${run}@example.com`;
  const teammateEmail = `alan-${run}@example.com`;

  const created = await unary(organizations, organizations.CreateOrganization, {
    name: `Acme ${run}`, ownerEmail, ownerFirstName: "Ada", ownerLastName: "Lovelace", ownerPassword: PASSWORD,
  }, bearer(operator));
  const org = created.organization!.id;
  const owner = created.owner!.id;
  console.log(`organisation ${org}, owner ${owner}`);

  const { accessToken } = await unary(auth, auth.SignIn, { email: ownerEmail, password: PASSWORD });
  expect("owner signed in", accessToken.length > 0);
  const { secret: key } = await unary(apiKeys, apiKeys.CreateApiKey, { organizationId: org, name: "backend" }, bearer(accessToken));
  expect("API key created", key.length > 0);

  const check = (userId: string, permission: string) =>
    unary(checks, checks.CheckPermission, { organizationId: org, userId, permission, explain: true }, bearer(key));

  let decision = await check(owner, "payments.refund");
  console.log(`owner payments.refund: allowed=${decision.allowed} (${decision.reason})`);
  expect("owner may refund", decision.allowed);

  // A read-only teammate: invited by the owner, the token read from the outbox (operator).
  await unary(users, users.InviteUser, {
    organizationId: org, email: teammateEmail, firstName: "Alan", lastName: "Turing",
    grants: [{ roleId: "read_only", allEntities: true }],
  }, bearer(accessToken));
  const { notifications } = await unary(outbox, outbox.ListPendingNotifications, { pageSize: 500 }, bearer(operator));
  const invitation = notifications.find((n) => n.recipient === teammateEmail);
  expect("invitation found in the outbox", invitation !== undefined);
  await unary(outbox, outbox.AcknowledgeNotifications, { ids: [invitation!.id] }, bearer(operator));
  const accepted = await unary(users, users.AcceptInvitation, { token: invitation!.token, password: "alan chooses a long passphrase" });
  const teammate = accepted.user!.id;

  decision = await check(teammate, "payments.refund");
  console.log(`teammate payments.refund: allowed=${decision.allowed} (${decision.reason})`);
  expect("read-only teammate may not refund", !decision.allowed);

  // Branch on the ErrorInfo reason, never on the message.
  try {
    await check(owner, "payments.teleport");
    expect("an unknown permission is refused", false);
  } catch (caught) {
    const error = caught as grpc.ServiceError;
    const reason = errorReason(error);
    switch (reason) {
      case "INVALID_FIELD":
        console.log(`unknown permission refused: ${grpc.status[error.code]} ${reason}`);
        break;
      case "THROTTLED":
        throw new Error("throttled: retry later");
      default:
        break;
    }
    expect("an unknown permission is refused with INVALID_FIELD",
      error.code === grpc.status.INVALID_ARGUMENT && reason === "INVALID_FIELD");
  }
  for (const client of [organizations, auth, apiKeys, checks, users, outbox]) client.close();
  console.log("typescript quickstart: all answers as expected");
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
