#!/usr/bin/python3
"""A uims client written only from the .proto files: sends a message through the public API and
reads it from the recipient's live inbox, with stubs made by scripts/gen-python.sh.

Usage: client_roundtrip.py --stubs DIR --sender-gateway HOST:PORT --sender-token T
                           --recipient-gateway HOST:PORT --recipient-token T --to RECIPIENT --text TEXT

Prints one JSON line {"message_id", "received_text", "received_sender", "state"} and exits 0 when the
recipient received the text; exits 1 otherwise.
"""

import argparse
import json
import sys
import time


def main() -> int:
    p = argparse.ArgumentParser()
    for name in ("--stubs", "--sender-gateway", "--sender-token", "--recipient-gateway", "--recipient-token", "--to", "--text"):
        p.add_argument(name, required=True)
    args = p.parse_args()
    sys.path.insert(0, args.stubs)
    import grpc
    from uims.client.v1 import client_pb2, client_pb2_grpc
    from uims.common.v1 import message_pb2, types_pb2

    sender = client_pb2_grpc.ClientServiceStub(grpc.insecure_channel(args.sender_gateway))
    recipient = client_pb2_grpc.ClientServiceStub(grpc.insecure_channel(args.recipient_gateway))
    sender_auth = [("authorization", f"Bearer {args.sender_token}")]
    recipient_auth = [("authorization", f"Bearer {args.recipient_token}")]

    # Open the inbox first so that the recipient counts as online.
    inbox = recipient.Inbox(client_pb2.InboxRequest(), metadata=recipient_auth, timeout=20)
    time.sleep(0.5)
    sent = sender.Send(
        client_pb2.SendRequest(
            recipient=args.to,
            payload=message_pb2.Payload(content_type="text/plain; charset=utf-8", body=args.text.encode("utf-8")),
            priority=types_pb2.PRIORITY_NORMAL,
        ),
        metadata=sender_auth,
        timeout=10,
    )
    received = None
    for item in inbox:
        if item.message.message_id == sent.message_id:
            received = item.message
            break
    inbox.cancel()
    state = None
    for _ in range(50):
        status = sender.GetStatus(client_pb2.GetStatusRequest(message_id=sent.message_id), metadata=sender_auth, timeout=5).status
        state = types_pb2.MessageState.Name(status.state)
        if status.state == types_pb2.MESSAGE_STATE_DELIVERED:
            break
        time.sleep(0.1)
    print(json.dumps({
        "message_id": sent.message_id,
        "received_text": received.payload.body.decode("utf-8") if received else None,
        "received_sender": received.sender if received else None,
        "state": state,
    }))
    return 0 if received is not None and received.payload.body.decode("utf-8") == args.text else 1


if __name__ == "__main__":
    sys.exit(main())
