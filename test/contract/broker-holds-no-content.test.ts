import type { FileRegistry } from "@bufbuild/protobuf";
import { ContractCopy, bufImage } from "./contract-tree";
import { BROKER_CONTENT_POLICY, findContentCarriers, loadRegistry, reachableMessages } from "./content-walker";

// The product's central claim: the broker sees meta information only. Every service the broker
// serves is checked here, from the contract as it is in proto/ now.
const BROKER_SERVICES = ["uims.broker.v1.BrokerService", "uims.admin.v1.AdminService"];

let registry: FileRegistry;
beforeAll(() => {
  registry = loadRegistry(bufImage());
});

describe.each(BROKER_SERVICES)("%s", (service) => {
  test("no request or response reaches a content message, a content-named field or an unlisted bytes field", () => {
    expect(findContentCarriers(registry, service, BROKER_CONTENT_POLICY)).toEqual([]);
  });
});

test("the walk reaches nested types (so an empty result means something)", () => {
  expect(reachableMessages(registry, "uims.broker.v1.BrokerService")).toEqual(
    expect.arrayContaining([
      "uims.common.v1.CallAuth",
      "uims.common.v1.CallError",
      "uims.common.v1.ConversionPlan",
      "uims.common.v1.MetaInformation",
      "uims.common.v1.Release",
      "uims.common.v1.SessionKey",
      "uims.common.v1.TraceContext",
    ]),
  );
  expect(reachableMessages(registry, "uims.admin.v1.AdminService")).toEqual(
    expect.arrayContaining(["google.protobuf.FieldMask", "uims.admin.v1.QuietHours", "uims.common.v1.StatusEvent"]),
  );
});

test("the walker reports the content that GatewayService carries on purpose", () => {
  const problems = findContentCarriers(registry, "uims.gateway.v1.GatewayService", BROKER_CONTENT_POLICY).map((v) => v.problem);
  expect(problems).toEqual(
    expect.arrayContaining([
      "carries content message uims.common.v1.InstantMessage",
      "carries content message uims.common.v1.Payload",
      "carries content message uims.common.v1.Attachment",
      "field uims.common.v1.InstantMessage.payload is named like content",
      "field uims.common.v1.Payload.body is named like content",
      "field uims.common.v1.Payload.attachments is named like content",
      "field uims.common.v1.Attachment.data is named like content",
      expect.stringMatching(/^bytes field uims\.common\.v1\.Payload\.body is not/),
      expect.stringMatching(/^bytes field uims\.common\.v1\.Attachment\.data is not/),
    ]),
  );
});

test("the walker reports content added to the broker's contract", () => {
  const copy = new ContractCopy();
  try {
    const proto = "proto/uims/broker/v1/broker.proto";
    copy.replace(
      proto,
      "  string detail = 5;\n}",
      "  string detail = 5;\n  // Opaque diagnostics.\n  bytes blob = 6;\n}",
    );
    copy.replace(
      proto,
      "  uims.common.v1.TraceContext trace = 11;\n}",
      "  uims.common.v1.TraceContext trace = 11;\n  // What was delivered.\n  uims.common.v1.Payload delivered = 12;\n}",
    );
    const broken = loadRegistry(bufImage(copy.dir));
    const violations = findContentCarriers(broken, "uims.broker.v1.BrokerService", BROKER_CONTENT_POLICY);
    expect(violations).toEqual(
      expect.arrayContaining([
        {
          path: "BrokerService.Heartbeat request uims.broker.v1.HeartbeatRequest . blob",
          problem: "bytes field uims.broker.v1.HeartbeatRequest.blob is not a digest, id, key, MAC or signature (allow-list)",
        },
        expect.objectContaining({
          path: expect.stringContaining("uims.broker.v1.ReportRequest . delivered -> uims.common.v1.Payload"),
          problem: "carries content message uims.common.v1.Payload",
        }),
      ]),
    );
  } finally {
    copy.remove();
  }
});
