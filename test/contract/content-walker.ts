import { ScalarType, createFileRegistry, fromBinary, type DescField, type DescMessage, type FileRegistry } from "@bufbuild/protobuf";
import { FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";

/** What may not appear anywhere in the requests and responses of a service that must never carry message content. */
export interface ContentPolicy {
  /** Fully qualified message types that hold content. */
  forbiddenMessages: readonly string[];
  /** Field names that mean content, whatever their type. */
  forbiddenFieldNames: readonly string[];
  /** The only names a bytes field may have: digests, ids, keys, MACs, signatures. */
  allowedBytesFields: readonly string[];
}

export const BROKER_CONTENT_POLICY: ContentPolicy = {
  forbiddenMessages: ["uims.common.v1.Payload", "uims.common.v1.Attachment", "uims.common.v1.InstantMessage"],
  forbiddenFieldNames: ["body", "content", "data", "payload", "attachments"],
  allowedBytesFields: [
    "content_digest",
    "key",
    "mac",
    "nonce",
    "outer_digest",
    "release_id",
    "session_key",
    "signature",
    "token_sha256",
  ],
};

export interface Violation {
  /** How the message is reached, e.g. "SubmitRequest.meta -> uims.common.v1.MetaInformation". */
  path: string;
  problem: string;
}

export function loadRegistry(image: Uint8Array): FileRegistry {
  return createFileRegistry(fromBinary(FileDescriptorSetSchema, image));
}

function fieldMessage(field: DescField): DescMessage | undefined {
  switch (field.fieldKind) {
    case "message":
      return field.message;
    case "list":
      return field.listKind === "message" ? field.message : undefined;
    case "map":
      return field.mapKind === "message" ? field.message : undefined;
    default:
      return undefined;
  }
}

function isBytes(field: DescField): boolean {
  switch (field.fieldKind) {
    case "scalar":
      return field.scalar === ScalarType.BYTES;
    case "list":
      return field.listKind === "scalar" && field.scalar === ScalarType.BYTES;
    case "map":
      return field.mapKind === "scalar" && field.scalar === ScalarType.BYTES;
    default:
      return false;
  }
}

/**
 * Walks every message reachable from the request and response types of `serviceTypeName`
 * (through singular, repeated, map and oneof fields) and reports everything the policy forbids.
 * Each reachable message is visited once; the path shows the first way it was reached.
 */
export function findContentCarriers(registry: FileRegistry, serviceTypeName: string, policy: ContentPolicy): Violation[] {
  const service = registry.getService(serviceTypeName);
  if (!service) throw new Error(`service ${serviceTypeName} is not in the image`);
  const violations: Violation[] = [];
  const seen = new Set<string>();
  const queue: Array<{ message: DescMessage; path: string }> = [];
  const enqueue = (message: DescMessage, path: string) => {
    if (seen.has(message.typeName)) return;
    seen.add(message.typeName);
    queue.push({ message, path });
  };
  for (const method of service.methods) {
    enqueue(method.input, `${service.name}.${method.name} request ${method.input.typeName}`);
    enqueue(method.output, `${service.name}.${method.name} response ${method.output.typeName}`);
  }
  for (let item = queue.shift(); item; item = queue.shift()) {
    const { message, path } = item;
    if (policy.forbiddenMessages.includes(message.typeName)) {
      violations.push({ path, problem: `carries content message ${message.typeName}` });
    }
    for (const field of message.fields) {
      const fieldPath = `${path} . ${field.name}`;
      if (policy.forbiddenFieldNames.includes(field.name)) {
        violations.push({ path: fieldPath, problem: `field ${message.typeName}.${field.name} is named like content` });
      }
      if (isBytes(field) && !policy.allowedBytesFields.includes(field.name)) {
        violations.push({
          path: fieldPath,
          problem: `bytes field ${message.typeName}.${field.name} is not a digest, id, key, MAC or signature (allow-list)`,
        });
      }
      const child = fieldMessage(field);
      if (child) enqueue(child, `${fieldPath} -> ${child.typeName}`);
    }
  }
  return violations;
}

/** Every message type reachable from a service's requests and responses, sorted. */
export function reachableMessages(registry: FileRegistry, serviceTypeName: string): string[] {
  const service = registry.getService(serviceTypeName);
  if (!service) throw new Error(`service ${serviceTypeName} is not in the image`);
  const names = new Set<string>();
  const collect = (message: DescMessage) => {
    if (names.has(message.typeName)) return;
    names.add(message.typeName);
    for (const field of message.fields) {
      const child = fieldMessage(field);
      if (child) collect(child);
    }
  };
  for (const method of service.methods) {
    collect(method.input);
    collect(method.output);
  }
  return [...names].sort();
}
