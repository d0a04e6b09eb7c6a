#!/usr/bin/python3
"""Cross-language wire check for the public client API, from stubs made by scripts/gen-python.sh.

Usage:
  wire_check.py --stubs DIR encode
      prints JSON {"SendRequest": HEX, "SendResponse": HEX} of fixed messages built in Python
  wire_check.py --stubs DIR decode TYPE HEX
      parses HEX as uims.client.v1.TYPE and prints it as proto JSON (field names as in the .proto)

The contract test compares both directions with the TypeScript stubs in gen/.
"""

import argparse
import json
import sys


def build(client_pb2, message_pb2, types_pb2):
    request = client_pb2.SendRequest(
        recipient="sms:+491701234567",
        payload=message_pb2.Payload(
            content_type="text/plain; charset=utf-8",
            body=b"\x00\xffhello \xe2\x82\xac",
            attachments=[types_pb2.Attachment(filename="a.png", content_type="image/png", data=bytes(range(256)))],
            subject="Gr\u00fc\u00dfe \U0001f44b",
        ),
        idempotency_key="retry-1",
        priority=types_pb2.PRIORITY_HIGH,
        ttl_seconds=3600,
    )
    response = client_pb2.SendResponse(
        message_id="m-1",
        status=types_pb2.MessageStatus(
            message_id="m-1",
            state=types_pb2.MESSAGE_STATE_ROUTED,
            medium=types_pb2.MEDIUM_SMS,
            events=[
                types_pb2.StatusEvent(state=types_pb2.MESSAGE_STATE_ACCEPTED, medium=types_pb2.MEDIUM_IM, at_unix_ms=1733320000123, attempt=1),
                types_pb2.StatusEvent(
                    state=types_pb2.MESSAGE_STATE_ROUTED,
                    medium=types_pb2.MEDIUM_SMS,
                    at_unix_ms=1733320000456,
                    attempt=2,
                    failure_kind=types_pb2.FAILURE_KIND_TEMPORARY,
                    reason="recipient offline",
                    gateway_id="gw-sms-1",
                ),
            ],
            trace_id="4bf92f3577b34da6a3ce929d0e0e4736",
            segments=2,
            recipient="bob",
        ),
        duplicate=True,
    )
    return {"SendRequest": request, "SendResponse": response}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--stubs", required=True, help="directory made by scripts/gen-python.sh")
    parser.add_argument("mode", choices=["encode", "decode"])
    parser.add_argument("type", nargs="?")
    parser.add_argument("hex", nargs="?")
    args = parser.parse_args()
    sys.path.insert(0, args.stubs)

    from google.protobuf import json_format
    from uims.client.v1 import client_pb2
    from uims.common.v1 import message_pb2, types_pb2

    if args.mode == "encode":
        messages = build(client_pb2, message_pb2, types_pb2)
        print(json.dumps({name: message.SerializeToString().hex() for name, message in messages.items()}))
        return 0
    if not args.type or args.hex is None:
        parser.error("decode needs TYPE and HEX")
    message = getattr(client_pb2, args.type)()
    message.ParseFromString(bytes.fromhex(args.hex))
    print(json_format.MessageToJson(message, preserving_proto_field_name=True, indent=None))
    return 0


if __name__ == "__main__":
    sys.exit(main())
